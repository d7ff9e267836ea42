import { For } from "solid-js";
import { CodeBlock } from "./CopyButton";

/** Secrets the server shows once (passwords, keys): each with a copy button, and the warning. */
export function ShownOnce(props: { items: { label: string; value: string; testId?: string }[]; what?: string }) {
  return (
    <div>
      <div class="once" role="note">
        <strong>Copy {props.what ?? "these"} now</strong> — you will not see {props.what === "it" ? "it" : "them"} again.
      </div>
      <div class="secret-list">
        <For each={props.items}>
          {(item) => (
            <div>
              <div class="label">{item.label}</div>
              <CodeBlock text={item.value} label={item.label} testId={item.testId} />
            </div>
          )}
        </For>
      </div>
    </div>
  );
}

import { createSignal } from "solid-js";
import { notify } from "./toast";

/**
 * navigator.clipboard exists only in secure contexts (https or localhost); an AtlasHub on a LAN
 * address over http gets the older execCommand path.
 */
export async function copyText(text: string) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("The browser refused to copy.");
}

export function CopyButton(props: { text: string; label?: string; class?: string }) {
  const [copied, setCopied] = createSignal(false);
  const copy = async () => {
    try {
      await copyText(props.text);
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    } catch (err) {
      notify.error("Could not copy", err);
    }
  };
  return (
    <button type="button" class={props.class ?? "btn small"} onClick={copy} aria-label={props.label ? `Copy ${props.label}` : "Copy"}>
      {copied() ? "Copied" : "Copy"}
    </button>
  );
}

/** Monospace text with a copy button beside it. */
export function CodeBlock(props: { text: string; label?: string; testId?: string }) {
  return (
    <div class="code">
      <pre data-testid={props.testId}>{props.text}</pre>
      <CopyButton text={props.text} label={props.label} />
    </div>
  );
}

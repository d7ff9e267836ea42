import { For, type JSX, type Resource } from "solid-js";

/**
 * A resource's value that never throws: undefined while loading the first time or after an error
 * (shown by the page from `resource.error`), the last value while reloading.
 */
export function safe<T>(r: Resource<T>): () => T | undefined {
  return () => (r.state === "errored" ? undefined : r.latest);
}

/** Placeholder rows while a table loads. */
export function SkeletonRows(props: { rows?: number; cols: number }) {
  return (
    <For each={Array.from({ length: props.rows ?? 4 })}>
      {() => (
        <tr aria-hidden="true">
          <For each={Array.from({ length: props.cols })}>
            {(_, i) => (
              <td>
                <span class="skeleton" style={{ width: `${[60, 40, 70, 30, 50][i() % 5]}%` }} />
              </td>
            )}
          </For>
        </tr>
      )}
    </For>
  );
}

export function SkeletonBlock(props: { lines?: number }) {
  return (
    <div aria-busy="true" aria-label="Loading" style={{ display: "flex", "flex-direction": "column", gap: "10px" }}>
      <For each={Array.from({ length: props.lines ?? 4 })}>{(_, i) => <span class="skeleton" style={{ width: `${[70, 45, 60, 35][i() % 4]}%` }} />}</For>
    </div>
  );
}

/** What an empty list means and what to do about it. */
export function Empty(props: { title: string; children?: JSX.Element; action?: JSX.Element }) {
  return (
    <div class="empty">
      <h2>{props.title}</h2>
      {props.children && <p>{props.children}</p>}
      {props.action && <div class="btn-row">{props.action}</div>}
    </div>
  );
}

/** An error in place of content, with a retry. */
export function LoadError(props: { error: unknown; retry?: () => void }) {
  const message = () => (props.error instanceof Error ? props.error.message : String(props.error));
  return (
    <div class="empty" role="alert">
      <h2>Could not load this</h2>
      <p>{message()}</p>
      {props.retry && (
        <div class="btn-row">
          <button class="btn" onClick={() => props.retry!()}>
            Try again
          </button>
        </div>
      )}
    </div>
  );
}

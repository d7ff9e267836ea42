import { For, Match, Show, Switch, type JSX } from "solid-js";
import { LoadError, SkeletonRows } from "./States";

/**
 * A list's table as every list page shows it: the load error with a retry, what an empty list means,
 * or the table, with placeholder rows until the list has loaded (`items` undefined till then).
 */
export function ListTable<T>(props: {
  items: T[] | undefined;
  error: unknown;
  retry?: () => void;
  empty: JSX.Element;
  /** The header row. */
  head: JSX.Element;
  /** Columns and rows of the placeholder. */
  cols: number;
  loadingRows?: number;
  class?: string;
  labelledBy?: string;
  children: (item: T) => JSX.Element;
}) {
  return (
    <Switch>
      <Match when={props.error}>
        <LoadError error={props.error} retry={props.retry} />
      </Match>
      <Match when={props.items?.length === 0}>{props.empty}</Match>
      <Match when={true}>
        <div class="table-wrap">
          <table class={props.class ?? "data"} aria-labelledby={props.labelledBy}>
            <thead>{props.head}</thead>
            <tbody>
              <Show when={props.items} fallback={<SkeletonRows cols={props.cols} rows={props.loadingRows} />}>
                <For each={props.items}>{props.children}</For>
              </Show>
            </tbody>
          </table>
        </div>
      </Match>
    </Switch>
  );
}

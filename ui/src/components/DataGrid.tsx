import { Popover } from "@kobalte/core/popover";
import { createMemo, createSignal, For, Index, onCleanup, onMount, Show } from "solid-js";
import type { SqlColumn } from "../api";
import { CopyButton } from "./CopyButton";

const ROW_HEIGHT = 27;
const OVERSCAN = 10;

/** A value as the grid shows it (and copies it); null stays null. */
export function cellText(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export interface Sort {
  column: string;
  dir: "asc" | "desc";
}

/**
 * A dense, virtualised grid of query results (only the rows in view are in the DOM): column types
 * in the headers, NULL shown apart from text, long values cut with the full value and a copy
 * button a click away. Sorting is the caller's (`onSort`: the table browser sorts on the server).
 */
export function DataGrid(props: {
  columns: SqlColumn[];
  rows: unknown[][];
  sort?: Sort;
  onSort?: (sort: Sort | undefined) => void;
  height?: number;
  label: string;
  rowActions?: (row: unknown[], index: number) => import("solid-js").JSX.Element;
}) {
  let scroller!: HTMLDivElement;
  const [scrollTop, setScrollTop] = createSignal(0);
  const [viewport, setViewport] = createSignal(props.height ?? 480);
  const [open, setOpen] = createSignal<{ el: HTMLElement; column: SqlColumn; value: string | null }>();
  // The cell keyboard users are on (one tab stop for the whole grid; arrows move, Enter opens).
  const [active, setActive] = createSignal({ r: 0, c: 0 });
  const cellAt = (r: number, c: number) => scroller.querySelector<HTMLElement>(`td[data-r="${r}"][data-c="${c}"]`);
  const moveTo = (r: number, c: number) => {
    r = Math.max(0, Math.min(props.rows.length - 1, r));
    c = Math.max(0, Math.min(props.columns.length - 1, c));
    setActive({ r, c });
    // Bring the row into view (it may not be rendered yet), then focus it once it is.
    const top = r * ROW_HEIGHT;
    const header = 38;
    if (top < scroller.scrollTop) scroller.scrollTop = top;
    else if (top + ROW_HEIGHT + header > scroller.scrollTop + scroller.clientHeight) scroller.scrollTop = top + ROW_HEIGHT + header - scroller.clientHeight;
    setScrollTop(scroller.scrollTop);
    requestAnimationFrame(() => cellAt(r, c)?.focus());
  };
  const onKeyDown = (e: KeyboardEvent) => {
    const cell = (e.target as HTMLElement).closest?.("td[data-r]") as HTMLElement | null;
    if (!cell) return;
    const { r, c } = active();
    const page = Math.max(1, Math.floor(scroller.clientHeight / ROW_HEIGHT) - 1);
    const moves: Record<string, [number, number]> = {
      ArrowDown: [r + 1, c],
      ArrowUp: [r - 1, c],
      ArrowRight: [r, c + 1],
      ArrowLeft: [r, c - 1],
      PageDown: [r + page, c],
      PageUp: [r - page, c],
      Home: e.ctrlKey ? [0, 0] : [r, 0],
      End: e.ctrlKey ? [props.rows.length - 1, props.columns.length - 1] : [r, props.columns.length - 1],
    };
    const to = moves[e.key];
    if (to) {
      e.preventDefault();
      moveTo(to[0], to[1]);
    } else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      cell.click();
    }
  };

  onMount(() => {
    const ro = new ResizeObserver(() => setViewport(scroller.clientHeight));
    ro.observe(scroller);
    onCleanup(() => ro.disconnect());
  });

  // Column widths from the header and the first rows' text: a fixed layout keeps columns from
  // jumping while rows scroll in and out.
  const widths = createMemo(() =>
    props.columns.map((c, i) => {
      let chars = Math.max(c.name.length, c.type.length);
      for (const row of props.rows.slice(0, 200)) chars = Math.max(chars, (cellText(row[i]) ?? "NULL").length);
      return Math.round(Math.min(320, Math.max(64, chars * 7.4 + 22)));
    }),
  );
  const range = createMemo(() => {
    const first = Math.max(0, Math.floor(scrollTop() / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(props.rows.length, Math.ceil((scrollTop() + viewport()) / ROW_HEIGHT) + OVERSCAN);
    return { first, last };
  });
  const visible = createMemo(() => props.rows.slice(range().first, range().last));

  const clickSort = (name: string) => {
    if (!props.onSort) return;
    const s = props.sort;
    props.onSort(s?.column !== name ? { column: name, dir: "asc" } : s.dir === "asc" ? { column: name, dir: "desc" } : undefined);
  };

  return (
    <div
      class="grid-scroll"
      ref={scroller}
      style={{ "max-height": `${props.height ?? 480}px` }}
      onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}
      onKeyDown={onKeyDown}
      role="region"
      aria-label={`${props.label}: arrow keys move between cells, Enter shows a value in full`}
    >
      <table class="grid" aria-rowcount={props.rows.length + 1} style={{ width: `${widths().reduce((a, b) => a + b, 0) + (props.rowActions ? 90 : 0) + 48}px` }}>
        <colgroup>
          <col style={{ width: "48px" }} />
          <Show when={props.rowActions}>
            <col style={{ width: "90px" }} />
          </Show>
          <For each={widths()}>{(w) => <col style={{ width: `${w}px` }} />}</For>
        </colgroup>
        <thead>
          <tr>
            <th class="rownum" aria-label="Row number">
              #
            </th>
            <Show when={props.rowActions}>
              <th>
                <span class="sr-only">Actions</span>
              </th>
            </Show>
            <For each={props.columns}>
              {(c) => (
                <th aria-sort={props.sort?.column === c.name ? (props.sort.dir === "asc" ? "ascending" : "descending") : undefined}>
                  <Show when={props.onSort} fallback={<ColumnHead column={c} />}>
                    <button type="button" class="th-button" onClick={() => clickSort(c.name)} title={`Sort by ${c.name}`} aria-label={`Sort by ${c.name} (${c.type})`}>
                      <ColumnHead column={c} />
                      <span class="sort-mark" aria-hidden="true">
                        {props.sort?.column === c.name ? (props.sort.dir === "asc" ? "▲" : "▼") : ""}
                      </span>
                    </button>
                  </Show>
                </th>
              )}
            </For>
          </tr>
        </thead>
        <tbody>
          <tr aria-hidden="true" style={{ height: `${range().first * ROW_HEIGHT}px` }} />
          <Index each={visible()}>
            {(row, i) => (
              <tr style={{ height: `${ROW_HEIGHT}px` }}>
                <td class="rownum">{range().first + i + 1}</td>
                <Show when={props.rowActions}>
                  <td class="actions">{props.rowActions!(row(), range().first + i)}</td>
                </Show>
                <Index each={props.columns}>
                  {(col, j) => {
                    const text = () => cellText(row()[j]);
                    const r = () => range().first + i;
                    return (
                      <td
                        class={text() === null ? "cell null" : "cell"}
                        data-r={r()}
                        data-c={j}
                        onClick={(e) => {
                          setActive({ r: r(), c: j });
                          setOpen({ el: e.currentTarget, column: col(), value: text() });
                        }}
                        onFocus={() => setActive({ r: r(), c: j })}
                        tabIndex={active().r === r() && active().c === j ? 0 : -1}
                      >
                        {text() ?? "NULL"}
                      </td>
                    );
                  }}
                </Index>
              </tr>
            )}
          </Index>
          <tr aria-hidden="true" style={{ height: `${(props.rows.length - range().last) * ROW_HEIGHT}px` }} />
        </tbody>
      </table>
      <Popover
        open={!!open()}
        onOpenChange={(o) => {
          if (o) return;
          const el = open()?.el;
          setOpen(undefined);
          // Back to the cell the value came from, for keyboard users.
          if (el?.isConnected) requestAnimationFrame(() => el.focus());
        }} anchorRef={() => open()?.el} placement="bottom-start" gutter={4}>
        <Popover.Portal>
          <Popover.Content class="cell-popover">
            <Show when={open()}>
              {(o) => (
                <>
                  <div class="cell-popover-head">
                    <Popover.Title class="mono">{o().column.name}</Popover.Title>
                    <span class="muted mono">{o().column.type}</span>
                    <div style={{ flex: 1 }} />
                    <Show when={o().value !== null}>
                      <CopyButton text={o().value!} label={`value of ${o().column.name}`} />
                    </Show>
                    <Popover.CloseButton class="btn ghost small icon" aria-label="Close">
                      ✕
                    </Popover.CloseButton>
                  </div>
                  <Show when={o().value !== null} fallback={<div class="null">NULL</div>}>
                    <pre class="cell-full">{o().value}</pre>
                  </Show>
                </>
              )}
            </Show>
          </Popover.Content>
        </Popover.Portal>
      </Popover>
    </div>
  );
}

function ColumnHead(props: { column: SqlColumn }) {
  return (
    <span class="col-head">
      <span class="col-name">{props.column.name}</span>
      <span class="col-type">{props.column.type}</span>
    </span>
  );
}

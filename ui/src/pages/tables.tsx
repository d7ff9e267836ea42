import { useSearchParams } from "@solidjs/router";
import { A } from "@solidjs/router";
import { createMemo, createResource, createSignal, For, Match, Show, Switch } from "solid-js";
import { api, type DataFormat } from "../api";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { cellText, DataGrid, type Sort } from "../components/DataGrid";
import { Modal } from "../components/Modal";
import { condition, FILTER_OPS, ident, literal, restFilters, where, type Filter, type FilterOp } from "../components/sqlText";
import { Empty, LoadError, SkeletonBlock, safe } from "../components/States";
import { createSubmit, FormError } from "../components/Submit";
import { notify } from "../components/toast";
import { loadColumns, loadTables, TABLE_KIND, type ColumnInfo } from "../components/schema";
import { useProject, useProjectCrumbs } from "./project";

// The admin API has no table endpoint: the browser reads through the SQL endpoint (as the owner
// role), with every name quoted as an identifier and every value as a literal. Exports stream from
// the server with the same filters.
const PAGE = 100;

/** Filters in the URL: column.op.value, separated by "~" (e.g. age.gte.30~name.ilike.*ann*). */
function parseFilters(text: string | undefined): Filter[] {
  if (!text) return [];
  return text.split("~").flatMap((part) => {
    const m = /^(.+?)\.(eq|neq|lt|lte|gt|gte|like|ilike|in|is)\.(.*)$/s.exec(part);
    return m ? [{ column: m[1]!, op: m[2] as FilterOp, value: m[3]! }] : [];
  });
}
const formatFilters = (filters: Filter[]) => filters.map((f) => `${f.column}.${f.op}.${f.value}`).join("~") || undefined;

export default function Tables() {
  useProjectCrumbs("Tables");
  const { id } = useProject();
  const [params, setParams] = useSearchParams<{ table?: string; page?: string; sort?: string; filter?: string }>();
  const [tablesRes, { refetch: refetchTables }] = createResource(id, loadTables);
  const tables = safe(tablesRes);
  const table = () => (tables()?.some((t) => t.name === params.table) ? params.table : undefined);
  const [columnsRes] = createResource(
    () => (table() ? { pid: id(), table: table()! } : undefined),
    (k) => loadColumns(k.pid, k.table),
  );
  const columns = safe(columnsRes);
  const page = () => Math.max(0, Number(params.page ?? 0) || 0);
  const sort = (): Sort | undefined => {
    const m = /^(.+)\.(asc|desc)$/.exec(params.sort ?? "");
    return m ? { column: m[1]!, dir: m[2] as "asc" | "desc" } : undefined;
  };
  const filters = createMemo(() => parseFilters(params.filter));
  const [filterError, setFilterError] = createSignal<string>();

  // One page of rows and the count, both with the same filters.
  const [dataRes, { refetch: refetchData }] = createResource(
    () => (table() ? { pid: id(), table: table()!, page: page(), sort: sort(), filters: filters() } : undefined),
    async (k) => {
      let clause: string;
      try {
        clause = where(k.filters);
        setFilterError(undefined);
      } catch (err) {
        setFilterError((err as Error).message);
        clause = "";
      }
      const from = `public.${ident(k.table)}${clause}`;
      const order = k.sort ? ` order by ${ident(k.sort.column)} ${k.sort.dir} nulls last` : "";
      const [rows, count] = await Promise.all([
        api.sql(k.pid, `select * from ${from}${order} limit ${PAGE} offset ${k.page * PAGE}`),
        api.sql(k.pid, `select count(*)::bigint::text from ${from}`),
      ]);
      return { ...rows, total: Number(count.rows[0]?.[0] ?? 0) };
    },
  );
  const data = safe(dataRes);

  const pk = () => (columns() ?? []).filter((c) => c.pk);
  const [toDelete, setToDelete] = createSignal<unknown[]>();
  const [inserting, setInserting] = createSignal(false);

  const go = (next: Partial<{ table: string; page: number; sort: Sort | undefined; filters: Filter[] }>) =>
    setParams({
      table: next.table ?? params.table,
      page: next.page ? String(next.page) : undefined,
      sort: "sort" in next ? (next.sort ? `${next.sort.column}.${next.sort.dir}` : undefined) : next.table ? undefined : params.sort,
      filter: "filters" in next ? formatFilters(next.filters!) : next.table ? undefined : params.filter,
    });

  return (
    <>
      <div class="page-head">
        <h1>Tables</h1>
        <span class="sub">The public schema, read as the owner role through the SQL endpoint.</span>
        <div class="spacer" />
        <Show when={table()}>
          <A class="btn" href={`/projects/${id()}/database?import=${encodeURIComponent(table()!)}`}>
            Import into {table()}
          </A>
        </Show>
        <A class="btn" href={`/projects/${id()}/sql`}>
          Open SQL editor
        </A>
      </div>
      <Switch>
        <Match when={tablesRes.error}>
          <LoadError error={tablesRes.error} retry={refetchTables} />
        </Match>
        <Match when={!tables()}>
          <SkeletonBlock />
        </Match>
        <Match when={tables()!.length === 0}>
          <div class="panel">
            <Empty title="No tables yet" action={<A class="btn primary" href={`/projects/${id()}/sql`}>Create one in the SQL editor</A>}>
              Create tables with SQL (<code>create table …</code>) or with your migrations; they show up here.
            </Empty>
          </div>
        </Match>
        <Match when={true}>
          <div class="split">
            <nav class="panel flush" aria-label="Tables">
              <ul class="side-list">
                <For each={tables()}>
                  {(t) => (
                    <li>
                      <A href={`/projects/${id()}/tables?table=${encodeURIComponent(t.name)}`} classList={{ current: t.name === table() }} title={`${TABLE_KIND[t.kind] ?? t.kind}, about ${t.estimate} rows`}>
                        <span class="mono" style={{ overflow: "hidden", "text-overflow": "ellipsis" }}>
                          {t.name}
                        </span>
                        <Show when={t.kind !== "r" && t.kind !== "p"}>
                          <span class="badge plain">{TABLE_KIND[t.kind] ?? t.kind}</span>
                        </Show>
                      </A>
                    </li>
                  )}
                </For>
              </ul>
            </nav>
            <section class="panel flush" aria-label={table() ? `Rows of ${table()}` : "Rows"}>
              <Show when={table()} fallback={<Empty title="Pick a table">Choose a table on the left to browse its rows.</Empty>}>
                <FilterBar
                  columns={(columns() ?? []).map((c) => c.name)}
                  filters={filters()}
                  onChange={(f) => go({ filters: f, page: 0 })}
                  onInsert={() => setInserting(true)}
                  canInsert={tables()!.find((t) => t.name === table())?.kind === "r" || tables()!.find((t) => t.name === table())?.kind === "p"}
                />
                <Show when={filterError()}>
                  <div class="alert error sql-error" role="alert">
                    {filterError()}
                  </div>
                </Show>
                <Switch>
                  <Match when={dataRes.error}>
                    <LoadError error={dataRes.error} retry={refetchData} />
                  </Match>
                  <Match when={!data()}>
                    <div style={{ padding: "12px" }}>
                      <SkeletonBlock lines={6} />
                    </div>
                  </Match>
                  <Match when={data()}>
                    {(d) => (
                      <>
                        <Show when={d().rows.length} fallback={<Empty title="No rows">{filters().length ? "No row matches the filters." : "This table is empty."}</Empty>}>
                          <DataGrid
                            columns={d().columns}
                            rows={d().rows}
                            label={`Rows of ${table()}`}
                            sort={sort()}
                            onSort={(s) => go({ sort: s, page: 0 })}
                            height={560}
                            rowActions={
                              pk().length
                                ? (row) => (
                                    <button class="btn small" onClick={() => setToDelete(row)}>
                                      Delete
                                    </button>
                                  )
                                : undefined
                            }
                          />
                        </Show>
                        <div class="pager" data-testid="table-pager">
                          <ExportLinks filtered={filters().length > 0} url={(format) => api.tables.exportUrl(id(), table()!, format, restFilters(filters()))} />
                          <div style={{ flex: 1 }} />
                          <span>
                            {d().total === 0 ? "0 rows" : `Rows ${page() * PAGE + 1}–${page() * PAGE + d().rows.length} of ${d().total.toLocaleString()}`}
                          </span>
                          <button class="btn small" disabled={page() === 0} onClick={() => go({ page: page() - 1 })}>
                            Previous
                          </button>
                          <button class="btn small" disabled={(page() + 1) * PAGE >= d().total} onClick={() => go({ page: page() + 1 })}>
                            Next
                          </button>
                        </div>
                      </>
                    )}
                  </Match>
                </Switch>
              </Show>
            </section>
          </div>
        </Match>
      </Switch>

      <ConfirmDialog
        open={!!toDelete()}
        onOpenChange={(open) => !open && setToDelete(undefined)}
        title="Delete row"
        confirmLabel="Delete row"
        danger
        onConfirm={async () => {
          const cols = data()!.columns.map((c) => c.name);
          const match = pk().map((k) => {
            const v = cellText(toDelete()![cols.indexOf(k.name)]);
            return v === null ? `${ident(k.name)} is null` : `${ident(k.name)} = ${literal(v)}`;
          });
          const r = await api.sql(id(), `delete from public.${ident(table()!)} where ${match.join(" and ")}`);
          notify.success(`Deleted ${r.row_count ?? 0} row${r.row_count === 1 ? "" : "s"}`);
          refetchData();
        }}
      >
        <p>
          Deletes the row of <code>{table()}</code> where{" "}
          {pk()
            .map((k) => `${k.name} = ${cellText(toDelete()?.[data()?.columns.findIndex((c) => c.name === k.name) ?? -1])}`)
            .join(", ")}
          .
        </p>
      </ConfirmDialog>

      <InsertRow
        open={inserting()}
        onOpenChange={setInserting}
        table={table() ?? ""}
        columns={columns() ?? []}
        onInserted={() => {
          setInserting(false);
          refetchData();
        }}
      />
    </>
  );
}

const EXPORTS: { format: DataFormat; label: string }[] = [
  { format: "csv", label: "CSV" },
  { format: "json", label: "JSON" },
  { format: "ndjson", label: "NDJSON" },
];

/** Downloads of the table from the server (streamed, every row, not just this page), with the filters. */
function ExportLinks(props: { filtered: boolean; url: (format: DataFormat) => string }) {
  return (
    <div class="btn-group" role="group" aria-label={props.filtered ? "Export the filtered rows" : "Export all rows"}>
      <span class="small-text">{props.filtered ? "Export filtered rows" : "Export"}</span>
      <For each={EXPORTS}>
        {(x) => (
          <a class="btn small" href={props.url(x.format)} download="" aria-label={`Export ${x.label}`}>
            {x.label}
          </a>
        )}
      </For>
    </div>
  );
}

function FilterBar(props: {
  columns: string[];
  filters: Filter[];
  onChange: (f: Filter[]) => void;
  onInsert: () => void;
  canInsert: boolean;
}) {
  const [column, setColumn] = createSignal("");
  const [op, setOp] = createSignal<FilterOp>("eq");
  const [value, setValue] = createSignal("");
  const [error, setError] = createSignal<string>();
  const add = (e: Event) => {
    e.preventDefault();
    const f = { column: column() || props.columns[0] || "", op: op(), value: value() };
    if (!f.column) return;
    try {
      condition(f);
    } catch (err) {
      return setError((err as Error).message);
    }
    setError(undefined);
    props.onChange([...props.filters, f]);
    setValue("");
  };
  return (
    <form class="path-bar" onSubmit={add} aria-label="Filter rows">
      <div class="filter-row">
        <label for="filter-column" class="sr-only">
          Column
        </label>
        <select id="filter-column" value={column() || props.columns[0] || ""} onChange={(e) => setColumn(e.currentTarget.value)}>
          <For each={props.columns}>{(c) => <option value={c}>{c}</option>}</For>
        </select>
        <label for="filter-op" class="sr-only">
          Operator
        </label>
        <select id="filter-op" value={op()} onChange={(e) => setOp(e.currentTarget.value as FilterOp)}>
          <For each={FILTER_OPS}>{(o) => <option value={o.op}>{o.op}</option>}</For>
        </select>
        <label for="filter-value" class="sr-only">
          Value
        </label>
        <input
          id="filter-value"
          type="text"
          data-search
          placeholder={op() === "in" ? "a, b, c" : op() === "is" ? "null, not null, true, false" : op().includes("like") ? "*text*" : "value"}
          value={value()}
          onInput={(e) => setValue(e.currentTarget.value)}
        />
        <button type="submit" class="btn small">
          Add filter
        </button>
        <For each={props.filters}>
          {(f, i) => (
            <span class="badge info plain">
              <span class="mono">
                {f.column} {f.op} {f.value}
              </span>
              <button
                type="button"
                class="linkish"
                aria-label={`Remove filter on ${f.column}`}
                onClick={() => props.onChange(props.filters.filter((_, j) => j !== i()))}
              >
                ✕
              </button>
            </span>
          )}
        </For>
        <Show when={error()}>
          <span class="danger-text">{error()}</span>
        </Show>
      </div>
      <div style={{ flex: 1 }} />
      <Show when={props.canInsert}>
        <button type="button" class="btn small primary" onClick={props.onInsert}>
          Insert row
        </button>
      </Show>
    </form>
  );
}

function InsertRow(props: { open: boolean; onOpenChange: (open: boolean) => void; table: string; columns: ColumnInfo[]; onInserted: () => void }) {
  const { id } = useProject();
  const [values, setValues] = createSignal<Record<string, string>>({});
  const insert = createSubmit(async () => {
    // Columns left empty are left out: Postgres fills in their default (or null).
    const given = props.columns.filter((c) => (values()[c.name] ?? "") !== "");
    const query = given.length
      ? `insert into public.${ident(props.table)} (${given.map((c) => ident(c.name)).join(", ")}) values (${given.map((c) => literal(values()[c.name]!)).join(", ")})`
      : `insert into public.${ident(props.table)} default values`;
    await api.sql(id(), query);
    notify.success(`Inserted a row into ${props.table}`);
    setValues({});
    props.onInserted();
  });
  return (
    <Modal open={props.open} onOpenChange={props.onOpenChange} title={`Insert into ${props.table}`}>
      <form onSubmit={insert.submit}>
        <FormError error={insert.error()} />
        <For each={props.columns}>
          {(c) => (
            <div class="field">
              <label for={`insert-${c.name}`}>
                <span class="mono">{c.name}</span> <span class="muted mono">{c.type}</span>
                {c.pk ? <span class="muted"> · primary key</span> : ""}
              </label>
              <input
                id={`insert-${c.name}`}
                type="text"
                placeholder={c.hasDefault ? "default" : c.nullable ? "null" : "required"}
                value={values()[c.name] ?? ""}
                onInput={(e) => setValues({ ...values(), [c.name]: e.currentTarget.value })}
              />
            </div>
          )}
        </For>
        <p class="muted">Empty fields get the column's default (or NULL). Values are cast by Postgres to the column's type.</p>
        <div class="btn-row end">
          <button type="button" class="btn" onClick={() => props.onOpenChange(false)}>
            Cancel
          </button>
          <button type="submit" class="btn primary" disabled={insert.busy()}>
            Insert
          </button>
        </div>
      </form>
    </Modal>
  );
}

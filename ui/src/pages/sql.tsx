import { createResource, createSignal, For, Match, Show, Switch } from "solid-js";
import { api, ApiError, type SqlResult } from "../api";
import { DataGrid } from "../components/DataGrid";
import { relTime } from "../components/format";
import { SqlEditor, type SqlEditorHandle } from "../components/SqlEditor";
import { downloadText, toCsv } from "../components/sqlText";
import { Empty } from "../components/States";
import { useProject, useProjectCrumbs } from "./project";

interface HistoryEntry {
  query: string;
  at: string;
  ok: boolean;
  summary: string;
}
const MAX_HISTORY = 50;

const store = {
  get<T>(key: string, fallback: T): T {
    try {
      const v = localStorage.getItem(key);
      return v === null ? fallback : (JSON.parse(v) as T);
    } catch {
      return fallback;
    }
  },
  set(key: string, value: unknown) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
    } catch {}
  },
};

// Tables and their columns in public, for completion.
const SCHEMA_QUERY = `select c.relname as t, a.attname as c
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where n.nspname = 'public' and c.relkind in ('r', 'v', 'm', 'p', 'f')
order by c.relname, a.attnum`;

export async function loadSchema(projectId: string): Promise<Record<string, string[]>> {
  const r = await api.sql(projectId, SCHEMA_QUERY);
  const schema: Record<string, string[]> = {};
  for (const [table, column] of r.rows as [string, string][]) (schema[table] ??= []).push(column);
  return schema;
}

const summarise = (r: SqlResult) =>
  r.columns.length ? `${r.rows.length}${r.truncated ? "+" : ""} row${r.rows.length === 1 ? "" : "s"}` : `${r.command ?? "OK"}${r.row_count !== null ? ` ${r.row_count}` : ""}`;

export default function Sql() {
  useProjectCrumbs("SQL editor");
  const { id } = useProject();
  const draftKey = `atlashub.sql.draft.${id()}`;
  const historyKey = `atlashub.sql.history.${id()}`;
  const [query, setQuery] = createSignal(store.get(draftKey, "select now();"));
  const [history, setHistory] = createSignal<HistoryEntry[]>(store.get(historyKey, []));
  const [result, setResult] = createSignal<SqlResult>();
  const [error, setError] = createSignal<ApiError>();
  const [running, setRunning] = createSignal(false);
  const [schema, { refetch: refetchSchema }] = createResource(id, (pid) => loadSchema(pid).catch(() => ({})), { initialValue: {} });
  let editor: SqlEditorHandle | undefined;

  const remember = (entry: HistoryEntry) => {
    const next = [entry, ...history().filter((h) => h.query !== entry.query)].slice(0, MAX_HISTORY);
    setHistory(next);
    store.set(historyKey, next);
  };

  const run = async () => {
    const text = query().trim();
    if (!text || running()) return;
    setRunning(true);
    setError(undefined);
    editor?.clearError();
    try {
      const r = await api.sql(id(), text);
      setResult(r);
      remember({ query: text, at: new Date().toISOString(), ok: true, summary: summarise(r) });
      if (r.command && /^(CREATE|ALTER|DROP|COMMENT)/.test(r.command)) refetchSchema();
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError(0, "error", String(err));
      setError(e);
      setResult(undefined);
      const position = Number(e.details?.position);
      if (position > 0) editor?.markError(position, e.message);
      remember({ query: text, at: new Date().toISOString(), ok: false, summary: e.code });
    } finally {
      setRunning(false);
    }
  };

  const downloadCsv = () => {
    const r = result();
    if (!r) return;
    downloadText(`query-${new Date().toISOString().replace(/[:.]/g, "-")}.csv`, toCsv(r.columns.map((c) => c.name), r.rows));
  };

  const isMac = /Mac|iPhone|iPad/.test(navigator.platform);

  return (
    <>
      <div class="page-head">
        <h1>SQL editor</h1>
        <span class="sub">One statement at a time, as the project's owner role; 5 s timeout, up to 5,000 rows.</span>
      </div>
      <div class="split">
        <section class="panel flush history" aria-labelledby="history-title">
          <div class="panel-head" style={{ padding: "10px 12px 0" }}>
            <h2 id="history-title">History</h2>
            <Show when={history().length}>
              <button
                class="btn ghost small"
                onClick={() => {
                  setHistory([]);
                  store.set(historyKey, []);
                }}
              >
                Clear
              </button>
            </Show>
          </div>
          <Show when={history().length} fallback={<p class="muted" style={{ padding: "0 12px 12px" }}>Queries you run appear here (kept in this browser).</p>}>
            <ul class="side-list">
              <For each={history()}>
                {(h) => (
                  <li>
                    <button
                      title={h.query}
                      onClick={() => {
                        editor?.setValue(h.query);
                        editor?.focus();
                      }}
                    >
                      <span style={{ overflow: "hidden", "text-overflow": "ellipsis", "white-space": "nowrap", display: "block", "min-width": 0 }}>
                        <span class={h.ok ? "" : "danger-text"}>{h.ok ? "" : "✕ "}</span>
                        {h.query.replace(/\s+/g, " ")}
                        <span class="sub" style={{ display: "block" }}>
                          {relTime(h.at)} · {h.summary}
                        </span>
                      </span>
                    </button>
                  </li>
                )}
              </For>
            </ul>
          </Show>
        </section>

        <section class="panel flush" aria-label="Query">
          <SqlEditor
            initial={query()}
            schema={schema()}
            onChange={(text) => {
              setQuery(text);
              store.set(draftKey, text);
            }}
            onRun={run}
            ref={(h) => (editor = h)}
          />
          <div class="result-bar">
            <button class="btn primary" onClick={run} disabled={running() || !query().trim()}>
              {running() ? "Running…" : "Run"}
            </button>
            <span class="muted">
              <kbd>{isMac ? "⌘" : "Ctrl"}</kbd> + <kbd>Enter</kbd>
            </span>
            <div class="spacer" />
            <Show when={result()}>
              {(r) => (
                <>
                  <span data-testid="sql-summary">
                    {summarise(r())} · {r().duration_ms} ms
                  </span>
                  <Show when={r().truncated}>
                    <span class="badge warn plain">cut at 5,000 rows</span>
                  </Show>
                  <Show when={r().columns.length}>
                    <button class="btn small" onClick={downloadCsv}>
                      Download CSV
                    </button>
                  </Show>
                </>
              )}
            </Show>
          </div>
          <Switch>
            <Match when={error()}>
              {(e) => (
                <div class="alert error sql-error" role="alert">
                  <strong>{e().code === "sql_error" ? `Error ${e().details?.sqlstate ?? ""}` : e().code}</strong>: {e().message}
                  <Show when={e().details?.position}>
                    <span> (at character {String(e().details!.position)}, marked in the editor)</span>
                  </Show>
                  <Show when={e().details?.detail || e().details?.hint}>
                    <pre>{[e().details?.detail, e().details?.hint && `Hint: ${e().details?.hint}`].filter(Boolean).join("\n")}</pre>
                  </Show>
                </div>
              )}
            </Match>
            <Match when={result()}>
              {(r) => (
                <>
                  <Show when={r().notices.length}>
                    <div class="alert info sql-error">
                      <For each={r().notices}>
                        {(n) => (
                          <div>
                            {n.severity}: {n.message}
                          </div>
                        )}
                      </For>
                    </div>
                  </Show>
                  <Show
                    when={r().columns.length}
                    fallback={
                      <Empty title={r().command ?? "Done"}>{r().row_count !== null ? `${r().row_count} row${r().row_count === 1 ? "" : "s"} affected.` : "The statement ran."}</Empty>
                    }
                  >
                    <Show when={r().rows.length} fallback={<Empty title="No rows">The query returned no rows.</Empty>}>
                      <DataGrid columns={r().columns} rows={r().rows} label="Query results" height={520} />
                    </Show>
                  </Show>
                </>
              )}
            </Match>
            <Match when={true}>
              <Empty title="Run a query">
                Write one statement and press {isMac ? "⌘" : "Ctrl"}+Enter. Table and column names complete as you type.
              </Empty>
            </Match>
          </Switch>
        </section>
      </div>
    </>
  );
}

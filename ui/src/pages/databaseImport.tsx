import { createEffect, createMemo, createResource, createSignal, For, on, Show } from "solid-js";
import { api, ApiError, type DataFormat, type ImportResult, type ImportRowError, type ImportRun } from "../api";
import { formatOf, previewFile } from "../components/filePreview";
import { bytes } from "../components/format";
import { isTable, loadColumns, loadTables, type ColumnInfo } from "../components/schema";
import { safe } from "../components/States";
import { createSubmit, errorText, FormError } from "../components/Submit";
import { notify } from "../components/toast";
import { useProject } from "./project";

// The import wizard: a table and a file, the file's columns mapped onto the table's (read from the
// file's first rows in the browser), a dry run that reports the rows that would fail, then the
// import, all or nothing.
type Mapping = Record<string, string | null>;
type Outcome = ImportResult & { refused?: string };
const FOLLOW_MS = 1000;

/** A v4 UUID; crypto.randomUUID exists only in secure contexts, and an admin may use plain http on a LAN. */
function randomUuid() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const PHASE: Record<NonNullable<ImportRun["phase"]>, string> = { receiving: "Reading the file", inserting: "Inserting", checking_rows: "Checking rows one by one" };

/** Each file column onto the table column of the same name (or case-insensitively), else left out. */
function defaultMapping(fileColumns: string[], tableColumns: ColumnInfo[]): Mapping {
  const names = tableColumns.map((c) => c.name);
  return Object.fromEntries(fileColumns.map((f) => [f, names.find((n) => n === f) ?? names.find((n) => n.toLowerCase() === f.toLowerCase()) ?? null]));
}

export function ImportWizard(props: { initialTable?: string }) {
  const { id } = useProject();
  const [tablesRes] = createResource(id, loadTables);
  const tables = () => safe(tablesRes)()?.filter(isTable);
  const [table, setTable] = createSignal(props.initialTable ?? "");
  const [columnsRes] = createResource(() => (table() ? { pid: id(), table: table() } : undefined), (k) => loadColumns(k.pid, k.table));
  const columns = safe(columnsRes);
  const [file, setFile] = createSignal<File>();
  const [format, setFormat] = createSignal<DataFormat>("csv");
  const [mode, setMode] = createSignal<"insert" | "upsert">("insert");
  const [previewRes] = createResource(() => (file() ? { file: file()!, format: format() } : undefined), (k) => previewFile(k.file, k.format));
  const preview = safe(previewRes);
  const [mapping, setMapping] = createSignal<Mapping>({});
  const [outcome, setOutcome] = createSignal<Outcome>();

  createEffect(() => setMapping(defaultMapping(preview()?.columns ?? [], columns() ?? [])));
  // A result stands for the choices it was made with.
  createEffect(on([table, file, format, mode, mapping], () => setOutcome(undefined), { defer: true }));

  const [progress, setProgress] = createSignal<ImportRun>();
  /** Looks at the run (named by the client) every second while its request goes on. */
  const follow = (importId: string) => {
    const timer = setInterval(() => {
      api.tables
        .importRun(id(), importId)
        .then((r) => r.status === "running" && setProgress(r))
        .catch(() => {}); // not there yet
    }, FOLLOW_MS);
    return () => {
      clearInterval(timer);
      setProgress(undefined);
    };
  };

  const options = (dryRun: boolean) => ({ format: format(), mode: mode(), dry_run: dryRun, mapping: preview()?.columns.length ? mapping() : undefined });
  const run = (dryRun: boolean) =>
    createSubmit(async () => {
      const importId = randomUuid();
      const stop = follow(importId);
      try {
        const result = await api.tables.import(id(), table(), file()!, options(dryRun), importId);
        setOutcome(result);
        if (!dryRun) notify.success(`Imported ${result.rows} row${result.rows === 1 ? "" : "s"} into ${table()}`);
      } catch (err) {
        // All or nothing: the rows that failed come with the refusal.
        if (!(err instanceof ApiError && err.code === "import_failed")) throw err;
        const details = err.details as { rows?: number; errors?: ImportRowError[] } | undefined;
        setOutcome({ dry_run: false, mode: mode(), rows: details?.rows ?? 0, inserted: 0, updated: 0, errors: details?.errors ?? [], refused: err.message });
      } finally {
        stop();
      }
    });
  const dryRun = run(true);
  const importNow = run(false);
  const busy = () => dryRun.busy() || importNow.busy();
  const ready = () => !!table() && !!file() && !previewRes.error;
  const passed = () => outcome()?.dry_run === true && outcome()!.errors.length === 0;

  let fileInput!: HTMLInputElement;
  const chooseFile = (f: File | undefined) => {
    setFile(f);
    if (f) setFormat(formatOf(f.name));
  };

  return (
    <section class="panel" aria-labelledby="import-title">
      <div class="panel-head">
        <h2 id="import-title">Import into a table</h2>
      </div>
      <p class="muted">
        CSV with a header row, NDJSON or a JSON array. Nothing is written unless every row can be; a dry run tells which rows would fail.
      </p>
      <FormError error={dryRun.error() ?? importNow.error()} />
      <div class="form-cols">
        <div class="field">
          <label for="import-table">Table</label>
          <select id="import-table" value={table()} onChange={(e) => setTable(e.currentTarget.value)}>
            <option value="">Choose a table…</option>
            <For each={tables()}>
              {(t) => (
                <option value={t.name} selected={t.name === table()}>
                  {t.name}
                </option>
              )}
            </For>
          </select>
        </div>
        <div class="field">
          <span class="label">File</span>
          <div class="file-pick">
            <input
              ref={fileInput}
              id="import-file"
              type="file"
              class="sr-only"
              tabIndex={-1}
              accept=".csv,.json,.ndjson,.jsonl,text/csv,application/json"
              onChange={(e) => chooseFile(e.currentTarget.files?.[0])}
            />
            <button type="button" class="btn" onClick={() => fileInput.click()} aria-label={file() ? `Change file (${file()!.name})` : "Choose a file to import"}>
              {file() ? "Change…" : "Choose file…"}
            </button>
            <span class={file() ? "file-name mono" : "file-name muted"} title={file()?.name}>
              {file() ? `${file()!.name} · ${bytes(file()!.size)}` : "none chosen"}
            </span>
          </div>
        </div>
        <div class="field">
          <label for="import-format">Format</label>
          <select id="import-format" value={format()} onChange={(e) => setFormat(e.currentTarget.value as DataFormat)}>
            <option value="csv">CSV</option>
            <option value="ndjson">NDJSON</option>
            <option value="json">JSON array</option>
          </select>
        </div>
        <div class="field">
          <label for="import-mode">Rows</label>
          <select id="import-mode" value={mode()} onChange={(e) => setMode(e.currentTarget.value as "insert" | "upsert")}>
            <option value="insert">Insert</option>
            <option value="upsert">Insert or update (primary key)</option>
          </select>
        </div>
      </div>

      <Show when={previewRes.error}>
        <div class="alert error" role="alert">
          The file cannot be read as {format().toUpperCase()}: {errorText(previewRes.error)}
        </div>
      </Show>
      <Show when={preview()?.note}>
        <p class="muted">{preview()!.note}</p>
      </Show>
      <Show when={table() && columns() && !columnsRes.loading && preview()?.columns.length}>
        <MappingTable columns={preview()!.columns} rows={preview()!.rows} tableColumns={columns() ?? []} mapping={mapping()} onChange={setMapping} />
      </Show>

      <div class="btn-row">
        <button class="btn" disabled={!ready() || busy()} onClick={() => dryRun.submit()}>
          {dryRun.busy() ? "Checking…" : "Dry run"}
        </button>
        <button class="btn primary" disabled={!ready() || busy() || !passed()} onClick={() => importNow.submit()} title={passed() ? undefined : "Run a dry run without errors first"}>
          {importNow.busy() ? "Importing…" : "Import"}
        </button>
      </div>
      <Show when={busy() && progress()}>{(p) => <ImportProgress run={p()} fileBytes={file()?.size ?? 0} />}</Show>
      <Show when={outcome()}>{(o) => <ImportOutcome outcome={o()} table={table()} />}</Show>
    </section>
  );
}

function MappingTable(props: { columns: string[]; rows: string[][]; tableColumns: ColumnInfo[]; mapping: Mapping; onChange: (m: Mapping) => void }) {
  const mapped = createMemo(() => new Set(Object.values(props.mapping).filter(Boolean)));
  // Required columns (not null, no default) the file does not fill.
  const missing = () => props.tableColumns.filter((c) => !c.nullable && !c.hasDefault && !mapped().has(c.name)).map((c) => c.name);
  return (
    <>
      <div class="table-wrap" style={{ margin: "4px 0 12px" }}>
        <table class="data" aria-label="Column mapping" data-testid="import-mapping">
          <thead>
            <tr>
              <th>File column</th>
              <th class="hide-narrow">First values</th>
              <th>Table column</th>
            </tr>
          </thead>
          <tbody>
            <For each={props.columns}>
              {(col, i) => (
                <tr>
                  <td class="mono">{col}</td>
                  <td class="hide-narrow muted mono sample">{props.rows.map((r) => r[i()] ?? "").join(" · ")}</td>
                  <td>
                    <select aria-label={`Table column for ${col}`} value={props.mapping[col] ?? ""} onChange={(e) => props.onChange({ ...props.mapping, [col]: e.currentTarget.value || null })}>
                      <option value="">— leave out —</option>
                      {/* selected on the options: they may come after the select's value is set */}
                      <For each={props.tableColumns}>
                        {(c) => (
                          <option value={c.name} selected={props.mapping[col] === c.name}>
                            {`${c.name} (${c.type})`}
                          </option>
                        )}
                      </For>
                    </select>
                  </td>
                </tr>
              )}
            </For>
          </tbody>
        </table>
      </div>
      <Show when={missing().length}>
        <div class="alert warn">Required column{missing().length === 1 ? "" : "s"} with no file column and no default: {missing().join(", ")}.</div>
      </Show>
    </>
  );
}

function ImportProgress(props: { run: ImportRun; fileBytes: number }) {
  const percent = () => Math.min(100, Math.floor((props.run.bytes / Math.max(1, props.fileBytes)) * 100));
  return (
    <div data-testid="import-progress" style={{ "margin-top": "12px" }}>
      <div class="muted small-text" aria-live="polite">
        {props.run.phase ? PHASE[props.run.phase] : "Working"} · {bytes(props.run.bytes)} of {bytes(props.fileBytes)} · {props.run.rows.toLocaleString()} rows
      </div>
      <div class="progress" role="progressbar" aria-label="Import progress" aria-valuemin="0" aria-valuemax="100" aria-valuenow={percent()}>
        <div style={{ width: `${percent()}%` }} />
      </div>
    </div>
  );
}

function ImportOutcome(props: { outcome: Outcome; table: string }) {
  const o = () => props.outcome;
  const summary = () => {
    if (o().refused) return o().refused!;
    const counts = `${o().rows} row${o().rows === 1 ? "" : "s"} in the file: ${o().inserted} inserted${o().mode === "upsert" ? `, ${o().updated} updated` : ""}`;
    if (!o().dry_run) return `Imported into ${props.table}. ${counts}.`;
    return o().errors.length ? `Dry run: ${o().errors.length} row${o().errors.length === 1 ? "" : "s"} would fail; nothing would be written.` : `Dry run passed: ${counts.replace("inserted", "would be inserted")}. Nothing was written.`;
  };
  return (
    <div data-testid="import-result" style={{ "margin-top": "12px" }}>
      <div class={o().errors.length ? "alert error" : "alert info"} role="status">
        {summary()}
      </div>
      <Show when={o().errors.length}>
        <div class="table-wrap">
          <table class="data" aria-label="Rows that fail" data-testid="import-errors">
            <thead>
              <tr>
                <th>Line</th>
                <th>Row</th>
                <th>Problem</th>
              </tr>
            </thead>
            <tbody>
              <For each={o().errors}>
                {(e) => (
                  <tr data-line={e.line ?? ""}>
                    <td class="mono">{e.line ?? "—"}</td>
                    <td class="mono">{e.row}</td>
                    <td>{e.message}</td>
                  </tr>
                )}
              </For>
            </tbody>
          </table>
        </div>
      </Show>
    </div>
  );
}

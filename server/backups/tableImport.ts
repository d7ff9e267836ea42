// Import into one table of a project's public schema from CSV, NDJSON or a JSON array, streamed:
// the file goes through COPY … FROM STDIN into a staging table of text (CSV: one column per file
// column; JSON: one document per row), then one INSERT … SELECT casts and maps it into the table
// (ON CONFLICT … DO UPDATE for upserts). All in one transaction as the project's owner role, so
// triggers, constraints and RLS apply as to the tenant, and nothing is written unless every row
// is (a staging table created and dropped inside the transaction is never seen by anyone else).
// When the INSERT fails — or for a dry run — the rows are tried one by one (each in a
// subtransaction) to report the first 100 that fail, with their line numbers.
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { z } from "zod";
import type { AppContext } from "../context";
import { ApiError, errors } from "../http/errors";
import { getProject } from "../projects/service";
import { findTable } from "../data/plan";
import { quoteIdent } from "../data/render";
import { loadSchema, type Table } from "../data/schema";
import { connectAsOwner } from "./tables";
import { csvTracker, ImportFormatError, jsonArrayToLines } from "./importScan";
import type { ImportProgress } from "./imports";

const ENCODINGS = { utf8: "UTF8", latin1: "LATIN1", win1252: "WIN1252", latin9: "LATIN9", utf16: undefined } as const;

export const importQuery = z.object({
  format: z.enum(["csv", "ndjson", "json"]).default("csv"),
  mode: z.enum(["insert", "upsert"]).default("insert"),
  /** Upsert: the columns of the unique constraint to meet (default: the primary key). */
  on_conflict: z
    .string()
    .transform((v) => v.split(",").map((c) => c.trim()).filter(Boolean))
    .optional(),
  dry_run: z.enum(["true", "false"]).default("false").transform((v) => v === "true"),
  /** {"file column": "table column" | null}; a file column named like a table column needs no entry. */
  mapping: z
    .string()
    .max(100_000)
    .transform((v, ctx) => {
      try {
        return z.record(z.string(), z.string().nullable()).parse(JSON.parse(v));
      } catch {
        ctx.addIssue({ code: "custom", message: 'must be a JSON object {"file column": "table column" | null}' });
        return z.NEVER;
      }
    })
    .optional(),
  encoding: z.enum(Object.keys(ENCODINGS).filter((e) => e !== "utf16") as [string, ...string[]]).default("utf8"),
});
export type ImportOptions = z.infer<typeof importQuery>;

const MAX_REPORTED = 100;

export interface RowError {
  /** The data row (1-based; the CSV header is not a row), or the element of a JSON array. */
  row: number;
  /** The line of the file it starts on (CSV, NDJSON). */
  line?: number;
  message: string;
}

/** `progress` is kept up to date as the import goes (bytes and rows received, then the phase). */
export async function importTable(
  ctx: AppContext,
  projectId: string,
  tableName: string,
  options: ImportOptions,
  source: ReadableStream<Uint8Array>,
  progress: ImportProgress = { phase: "receiving", bytes: 0, rows: 0 },
): Promise<ImportResult> {
  const project = await getProject(ctx, projectId);
  if (project.status !== "ready") throw errors.conflict(`The project is ${project.status}; tables are imported into ready projects only.`);
  const session = await connectAsOwner(ctx, projectId, "atlashub-import");
  const sql = session.sql;
  try {
    const table = findTable(await loadSchema(sql), tableName);
    if (table.kind !== "table") throw errors.unprocessable(`"${table.name}" is a view; import into a table.`);
    const conflict = conflictColumns(table, options);
    const body = source.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          progress.bytes += chunk.byteLength;
          controller.enqueue(chunk);
        },
      }),
    );
    return await sql.begin(async (tx) => {
      const staging = `_atlashub_import_${randomBytes(6).toString("hex")}`;
      const loaded = options.format === "csv" ? await stageCsv(tx, staging, body, options, progress) : await stageJson(tx, staging, body, options, progress);
      const rows = Number((await tx.unsafe(`select count(*) from ${quoteIdent(staging)} where not skip`))[0]!.count);
      Object.assign(progress, { phase: "inserting", rows });
      const badDocuments = options.format === "csv" ? [] : await checkDocuments(tx, staging, loaded.lineOf);
      const outcome = badDocuments.length
        ? { inserted: 0, updated: 0, errors: badDocuments }
        : await runInsert(
            tx,
            await planInsert(tx, table, staging, loaded, options, conflict),
            staging,
            loaded.lineOf,
            progress,
          );
      if (outcome.errors.length > 0 && !options.dry_run) {
        throw new ApiError(422, "import_failed", `${outcome.errors.length >= MAX_REPORTED ? "At least 100" : outcome.errors.length} row(s) cannot be imported; nothing was written.`, {
          rows,
          errors: outcome.errors,
        });
      }
      const result: ImportResult = { dry_run: options.dry_run, mode: options.mode, rows, inserted: outcome.inserted, updated: outcome.updated, errors: outcome.errors };
      // A dry run writes nothing; the staging table goes with the transaction either way.
      if (options.dry_run) throw new DryRun(result);
      await tx.unsafe(`drop table ${quoteIdent(staging)}`);
      return result;
    });
  } catch (err) {
    if (err instanceof DryRun) return err.result;
    throw importError(err);
  } finally {
    await session.end(5);
  }
}

export interface ImportResult {
  dry_run: boolean;
  mode: ImportOptions["mode"];
  rows: number;
  inserted: number;
  updated: number;
  errors: RowError[];
}

class DryRun extends Error {
  constructor(readonly result: ImportResult) {
    super("dry run");
  }
}

interface Staged {
  columns?: string[];
  lineOf: (row: number) => number | undefined;
}

/** CSV into a staging table of one text column per file column (c1…cn), numbered rows. */
async function stageCsv(tx: postgres.TransactionSql, staging: string, body: ReadableStream<Uint8Array>, options: ImportOptions, progress: ImportProgress): Promise<Staged> {
  const tracker = csvTracker();
  const reader = body
    .pipeThrough(tracker.stream)
    .pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          progress.rows = tracker.records();
          controller.enqueue(chunk);
        },
      }),
    )
    .getReader();
  // The header decides the staging table's columns: read until it has passed.
  const held: Uint8Array[] = [];
  while (!tracker.header()) {
    const { done, value } = await reader.read();
    if (done) break;
    held.push(value);
  }
  const columns = tracker.header();
  if (!columns || (columns.length === 1 && columns[0] === "")) throw new ImportFormatError("the file has no header line");
  const names = columns.map((_, i) => `c${i + 1}`);
  await tx.unsafe(`create table ${quoteIdent(staging)} (n bigserial, skip boolean not null default false, ${names.map((c) => `${c} text`).join(", ")})`);
  const rest = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of held) controller.enqueue(chunk);
    },
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
  const encoding = ENCODINGS[options.encoding as keyof typeof ENCODINGS]!;
  await copyIn(tx, `copy ${quoteIdent(staging)} (${names.join(", ")}) from stdin with (format csv, header true, encoding '${encoding}')`, rest);
  return { columns, lineOf: (n) => tracker.lineOf(n) };
}

/** NDJSON (or a JSON array, one element per line) into a staging table of one document per row. */
async function stageJson(tx: postgres.TransactionSql, staging: string, body: ReadableStream<Uint8Array>, options: ImportOptions, progress: ImportProgress): Promise<Staged> {
  await tx.unsafe(`create table ${quoteIdent(staging)} (n bigserial, skip boolean not null default false, doc text)`);
  const lines = (options.format === "json" ? body.pipeThrough(jsonArrayToLines()) : body).pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) progress.rows++;
        controller.enqueue(chunk);
      },
    }),
  );
  // One field per line: JSON never holds the bytes 0x01 and 0x02 raw, so they serve as delimiter and quote.
  await copyIn(tx, `copy ${quoteIdent(staging)} (doc) from stdin with (format csv, delimiter e'\\x01', quote e'\\x02', encoding 'UTF8')`, lines);
  // Blank lines (NDJSON) are rows of their own so that row numbers stay line numbers; they are skipped.
  await tx.unsafe(`update ${quoteIdent(staging)} set skip = true where doc is null or btrim(doc) = ''`);
  return { lineOf: (n) => (options.format === "ndjson" ? n : undefined) };
}

/**
 * Streams `body` into COPY … FROM STDIN. postgres.js hands out the COPY's writable but loses an error
 * the server sends once the data is all sent (bad data found at the end): the writable's finish then
 * never comes. The query's reject is the one place that error reaches, so it is watched there.
 */
async function copyIn(tx: postgres.TransactionSql, statement: string, body: ReadableStream<Uint8Array>) {
  const query = tx.unsafe(statement) as unknown as { reject: (err: unknown) => void; writable(): Promise<Writable> };
  let failed!: (err: unknown) => void;
  const failure = new Promise<never>((_, reject) => (failed = reject));
  failure.catch(() => {});
  const reject = query.reject;
  query.reject = (err) => {
    failed(err);
    reject(err);
  };
  const writable = await query.writable();
  const source = Readable.fromWeb(body as never);
  try {
    await Promise.race([pipeline(source, writable), failure]);
  } catch (err) {
    source.destroy();
    throw err;
  }
}

async function planInsert(tx: postgres.TransactionSql, table: Table, staging: string, loaded: Staged, options: ImportOptions, conflict: string[] | undefined) {
  const json = options.format !== "csv";
  const mapping = json ? await jsonMapping(tx, staging, table, options.mapping) : csvMapping(table, loaded.columns!, options.mapping);
  const defaults = await columnDefaults(tx, table.name);
  for (const column of mapping.keys()) {
    if (defaults.get(column)?.generated) throw errors.unprocessable(`"${column}" is a generated column; leave it out of the mapping.`);
  }
  const overriding = [...mapping.keys()].some((c) => defaults.get(c)?.identityAlways);
  return insertStatement(table, staging, mapping, conflict, { json, overriding });
}

/** table column → expression over the staging row. */
type Mapping = Map<string, string>;

function csvMapping(table: Table, fileColumns: string[], given: Record<string, string | null> | undefined): Mapping {
  const mapping: Mapping = new Map();
  const position = new Map(fileColumns.map((c, i) => [c, i]));
  for (const fileColumn of Object.keys(given ?? {})) {
    if (!position.has(fileColumn)) throw errors.unprocessable(`The mapping names "${fileColumn}", which is not a column of the file's header.`);
  }
  fileColumns.forEach((fileColumn, i) => {
    const target = given && fileColumn in given ? given[fileColumn] : fileColumn;
    if (target === null || target === undefined || target === "") return;
    const column = table.columns.find((c) => c.name === target);
    if (!column) {
      if (given && fileColumn in given) throw errors.unprocessable(`The mapping sends "${fileColumn}" to "${target}", which is not a column of "${table.name}".`);
      return; // a file column that matches nothing is left out
    }
    if (mapping.has(column.name)) throw errors.unprocessable(`Two file columns go to "${column.name}".`);
    mapping.set(column.name, `c${i + 1}::${column.type}`);
  });
  if (mapping.size === 0) throw errors.unprocessable(`No column of the file matches a column of "${table.name}"; give a mapping.`);
  return mapping;
}

/**
 * Each table column from the document key of its name (or the mapping's), for the keys that occur
 * in the file. A row without a key gets the column's default (its DEFAULT expression, or the next
 * identity value), as an INSERT naming only its keys would; an explicit null stays null.
 */
async function jsonMapping(tx: postgres.TransactionSql, staging: string, table: Table, given: Record<string, string | null> | undefined): Promise<Mapping> {
  const present = new Set(
    (await tx.unsafe<{ k: string }[]>(`select distinct jsonb_object_keys(doc::jsonb) as k from ${quoteIdent(staging)} where not skip`)).map((r) => r.k),
  );
  const keyFor = new Map<string, string>();
  for (const [key, target] of Object.entries(given ?? {})) {
    if (target === null) continue;
    if (!table.columns.some((c) => c.name === target)) throw errors.unprocessable(`The mapping sends "${key}" to "${target}", which is not a column of "${table.name}".`);
    keyFor.set(target, key);
  }
  const mapped = new Set(Object.keys(given ?? {}));
  const defaults = await columnDefaults(tx, table.name);
  const mapping: Mapping = new Map();
  for (const column of table.columns) {
    const key = keyFor.get(column.name) ?? (mapped.has(column.name) ? undefined : column.name);
    const info = defaults.get(column.name);
    if (key === undefined || !present.has(key) || info?.generated) continue;
    const literal = `'${key.replaceAll("'", "''")}'`;
    // json/jsonb take the value as it is; everything else its text, cast as Postgres casts text.
    const value = /^jsonb?$/.test(column.type) ? `(j.d -> ${literal})::${column.type}` : `(j.d ->> ${literal})::${column.type}`;
    mapping.set(column.name, info?.default ? `case when j.d ? ${literal} then ${value} else ${info.default} end` : value);
  }
  if (mapping.size === 0) throw errors.unprocessable(`No key of the documents matches a column of "${table.name}"; give a mapping.`);
  return mapping;
}

/** Per column: its default as SQL (identity columns: their sequence's next value), and whether it is generated. */
async function columnDefaults(tx: postgres.TransactionSql, tableName: string) {
  const rows = await tx<{ name: string; expr: string | null; identity: string; generated: string; sequence: string | null }[]>`
    select a.attname as name, pg_get_expr(d.adbin, d.adrelid) as expr, a.attidentity as identity, a.attgenerated as generated,
           case when a.attidentity <> '' then pg_get_serial_sequence(c.oid::regclass::text, a.attname) end as sequence
    from pg_class c join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
    join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    left join pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
    where c.relname = ${tableName}`;
  return new Map(
    rows.map((r) => [
      r.name,
      {
        default: r.sequence ? `nextval('${r.sequence.replaceAll("'", "''")}'::regclass)` : r.expr,
        generated: r.generated !== "",
        identityAlways: r.identity === "a",
      },
    ]),
  );
}

/** Rows that are not a JSON object (or not JSON), at most 100, found one by one when the set-based check fails. */
async function checkDocuments(tx: postgres.TransactionSql, staging: string, lineOf: (n: number) => number | undefined): Promise<RowError[]> {
  const table = quoteIdent(staging);
  try {
    const [bad] = await tx.savepoint((sp) => sp.unsafe(`select count(*)::int as n from ${table} where not skip and jsonb_typeof(doc::jsonb) <> 'object'`));
    if (bad!.n === 0) return [];
  } catch (err) {
    if (!(err instanceof postgres.PostgresError)) throw err;
  }
  const found: RowError[] = [];
  for await (const batch of tx.unsafe<{ n: string }[]>(`select n from ${table} where not skip order by n`).cursor(1000)) {
    for (const { n } of batch) {
      let message: string | undefined;
      try {
        const [row] = await tx.savepoint((sp) => sp.unsafe(`select jsonb_typeof(doc::jsonb) as t from ${table} where n = $1`, [n]));
        if (row!.t !== "object") message = `a ${row!.t}, not an object`;
      } catch (err) {
        if (!(err instanceof postgres.PostgresError)) throw err;
        message = `not JSON: ${err.message}`;
      }
      if (message) {
        const line = lineOf(Number(n));
        found.push({ row: Number(n), ...(line !== undefined ? { line } : {}), message });
        if (found.length >= MAX_REPORTED) return found;
      }
    }
  }
  return found;
}

function conflictColumns(table: Table, options: ImportOptions): string[] | undefined {
  if (options.mode !== "upsert") return undefined;
  const columns = options.on_conflict?.length ? options.on_conflict : table.primaryKey;
  if (columns.length === 0) throw errors.unprocessable(`"${table.name}" has no primary key; name the unique columns to upsert on with on_conflict.`);
  for (const c of columns) if (!table.columns.some((col) => col.name === c)) throw errors.unprocessable(`on_conflict names "${c}", which is not a column of "${table.name}".`);
  return columns;
}

function insertStatement(table: Table, staging: string, mapping: Mapping, conflict: string[] | undefined, options: { json: boolean; overriding: boolean }) {
  const columns = [...mapping.keys()];
  // JSON: each document parsed once per row, whatever the number of columns read from it.
  const from = `${quoteIdent(staging)} s${options.json ? " cross join lateral (select s.doc::jsonb as d) j" : ""}`;
  // A file that gives an identity column's values (ids exported before) keeps them.
  const overriding = options.overriding ? " overriding system value" : "";
  const text = `insert into ${quoteIdent(table.name)} (${columns.map(quoteIdent).join(", ")})${overriding} select ${[...mapping.values()].join(", ")} from ${from}`;
  const tail = (where: string) => {
    let t = `${text} where ${where}`;
    if (conflict) {
      const updates = columns.filter((c) => !conflict.includes(c));
      t += ` on conflict (${conflict.map(quoteIdent).join(", ")}) do ${updates.length ? `update set ${updates.map((c) => `${quoteIdent(c)} = excluded.${quoteIdent(c)}`).join(", ")}` : "nothing"}`;
    }
    // xmax = 0: the row was inserted, not updated by ON CONFLICT.
    return `with done as (${t} returning (xmax = 0) as inserted) select count(*) filter (where inserted) as inserted, count(*) filter (where not inserted) as updated from done`;
  };
  return { all: tail("not s.skip"), one: tail("s.n = $1 and not s.skip") };
}

/**
 * The set-based INSERT in a savepoint; if it fails, each row in its own savepoint to find the first
 * rows that fail (at most 100), reporting the set-based error when every row alone passes (two rows
 * of the file upserting the same key).
 */
async function runInsert(tx: postgres.TransactionSql, insert: { all: string; one: string }, staging: string, lineOf: (n: number) => number | undefined, progress: ImportProgress) {
  try {
    const [counts] = await tx.savepoint((sp) => sp.unsafe(insert.all));
    return { inserted: Number(counts!.inserted), updated: Number(counts!.updated), errors: [] as RowError[] };
  } catch (err) {
    if (!(err instanceof postgres.PostgresError)) throw err;
    progress.phase = "checking_rows";
    const found: RowError[] = [];
    const numbers = await tx.unsafe<{ n: string }[]>(`select n from ${quoteIdent(staging)} where not skip order by n`).cursor(1000);
    outer: for await (const batch of numbers) {
      for (const { n } of batch) {
        try {
          await tx.savepoint((sp) => sp.unsafe(insert.one, [n]));
        } catch (rowErr) {
          if (!(rowErr instanceof postgres.PostgresError)) throw rowErr;
          const row = Number(n);
          const line = lineOf(row);
          found.push({ row, ...(line !== undefined ? { line } : {}), message: describeRowError(rowErr) });
          if (found.length >= MAX_REPORTED) break outer;
        }
      }
    }
    if (found.length === 0) found.push({ row: 0, message: describeRowError(err) });
    return { inserted: 0, updated: 0, errors: found };
  }
}

function describeRowError(err: postgres.PostgresError) {
  return err.detail ? `${err.message} (${err.detail})` : err.message;
}

/** Errors of the file itself (malformed CSV or JSON, a wrong column count, bad bytes) as 422 import_malformed with the line. */
function importError(err: unknown) {
  if (err instanceof ApiError) return err;
  if (err instanceof ImportFormatError) return new ApiError(422, "import_malformed", `The file cannot be read: ${err.message}.`);
  if (err instanceof postgres.PostgresError && /^(22|23|42804)/.test(err.code)) {
    const line = /line (\d+)/.exec(err.where ?? "")?.[1];
    return new ApiError(422, "import_malformed", `The file cannot be read${line ? ` at line ${line}` : ""}: ${err.message}.`, line ? { line: Number(line) } : undefined);
  }
  return err;
}

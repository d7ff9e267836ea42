// Table imports as rows of table_imports, so an admin (or the UI) can follow one while it runs: bytes
// and rows received so far and the phase, written about once a second — also when nothing moved, so
// updated_at is a heartbeat: a row still `running` whose heartbeat stopped 30 s ago belongs to a
// process that died and is shown `interrupted`. Once over, the row keeps the import's answer (result,
// or error as the API answered it). In the control plane, not in memory: any instance behind a load
// balancer answers the poll. Bounded: a project keeps its newest 100 finished imports, none older
// than 7 days (pruned when an import starts).
import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { AppContext } from "../context";
import { ApiError, errors } from "../http/errors";
import { log } from "../platform/log";
import { pageSchema } from "../http/schemas";
import { getProject } from "../projects/service";
import type { ImportOptions, ImportResult } from "./tableImport";

const HEARTBEAT_MS = 1000;
const KEEP_PER_PROJECT = 100;

/** What the importer tells as it goes (read by the heartbeat). */
export interface ImportProgress {
  phase: "receiving" | "inserting" | "checking_rows";
  /** Bytes of the file received so far. */
  bytes: number;
  /** Data rows received so far; once the file is in, all of them. */
  rows: number;
}

export const importIdSchema = z.uuid({ message: "must be a UUID" }).transform((v) => v.toLowerCase());
export const listImportsQuery = pageSchema;

interface ImportRow {
  id: string;
  project_id: string;
  table_name: string;
  options: ImportOptions;
  status: "running" | "succeeded" | "failed" | "interrupted";
  phase: string;
  bytes: string;
  rows: string;
  result: ImportResult | null;
  error: { code: string; message: string; details?: unknown } | null;
  created_by: string | null;
  started_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

export function presentImport(r: ImportRow) {
  return {
    id: r.id,
    project_id: r.project_id,
    table: r.table_name,
    status: r.status,
    phase: r.status === "running" ? r.phase : null,
    bytes: Number(r.bytes),
    rows: Number(r.rows),
    options: r.options,
    result: r.result,
    error: r.error,
    created_by: r.created_by,
    started_at: r.started_at,
    updated_at: r.updated_at,
    finished_at: r.finished_at,
  };
}

const columns = (sql: AppContext["sql"]) => sql`
  id, project_id, table_name, options,
  case when status = 'running' and updated_at < now() - interval '30 seconds' then 'interrupted' else status end as status,
  phase, bytes, rows, result, error, created_by, started_at, updated_at, finished_at`;

export async function getImport(ctx: AppContext, projectId: string, importId: string) {
  await getProject(ctx, projectId);
  const id = importIdSchema.safeParse(importId);
  if (!id.success) throw errors.notFound("import");
  const [row] = await ctx.sql<ImportRow[]>`select ${columns(ctx.sql)} from table_imports where id = ${id.data} and project_id = ${projectId}`;
  if (!row) throw errors.notFound("import");
  return row;
}

/** Newest first. */
export async function listImports(ctx: AppContext, projectId: string, q: z.infer<typeof listImportsQuery>) {
  await getProject(ctx, projectId);
  return ctx.sql<ImportRow[]>`
    select ${columns(ctx.sql)} from table_imports where project_id = ${projectId}
    order by started_at desc, id limit ${q.limit} offset ${q.offset}`;
}

/**
 * Records an import as running (409 import_id_taken when the id is), prunes what is no longer kept,
 * and starts its heartbeat. The caller ends it with succeed() or fail(), once.
 */
export async function beginImport(ctx: AppContext, input: { id?: string; projectId: string; table: string; options: ImportOptions; createdBy: string | null }) {
  await getProject(ctx, input.projectId);
  const id = input.id ?? randomUUID();
  await ctx.sql.begin(async (tx) => {
    await tx`
      delete from table_imports
      where (status <> 'running' and finished_at < now() - interval '7 days')
         or (status = 'running' and updated_at < now() - interval '7 days')
         or id in (select id from table_imports where project_id = ${input.projectId} and status <> 'running'
                   order by started_at desc, id offset ${KEEP_PER_PROJECT - 1})`;
    const [inserted] = await tx`
      insert into table_imports (id, project_id, table_name, options, status, created_by)
      values (${id}, ${input.projectId}, ${input.table}, ${tx.json(input.options as never)}, 'running', ${input.createdBy})
      on conflict (id) do nothing returning id`;
    if (!inserted) throw errors.importIdTaken();
  });

  const progress: ImportProgress = { phase: "receiving", bytes: 0, rows: 0 };
  let writing: Promise<unknown> = Promise.resolve();
  const write = () => {
    const p = { ...progress };
    writing = writing
      .then(() => ctx.sql`update table_imports set phase = ${p.phase}, bytes = ${p.bytes}, rows = ${p.rows}, updated_at = now() where id = ${id} and status = 'running'`)
      .catch((err) => log.warn("import progress not recorded", { import: id, reason: (err as Error).message }));
  };
  const timer = setInterval(write, HEARTBEAT_MS);
  const end = async (status: "succeeded" | "failed", result: ImportResult | null, error: ImportRow["error"]) => {
    clearInterval(timer);
    await writing;
    const p = { ...progress };
    await ctx.sql`
      update table_imports set status = ${status}, phase = 'done', bytes = ${p.bytes}, rows = ${result?.rows ?? p.rows},
        result = ${result ? ctx.sql.json(result as never) : null}, error = ${error ? ctx.sql.json(error as never) : null},
        updated_at = now(), finished_at = now()
      where id = ${id}`.catch((err) => log.warn("import outcome not recorded", { import: id, reason: (err as Error).message }));
  };
  return {
    id,
    progress,
    succeed: (result: ImportResult) => end("succeeded", result, null),
    /** The error as the API answers it; anything but an ApiError only as an internal error (its cause goes to the log). */
    fail: (err: unknown) =>
      end("failed", null, err instanceof ApiError ? { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) } : { code: "internal_error", message: "Something went wrong on our side." }),
  };
}

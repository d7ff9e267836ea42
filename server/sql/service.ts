// The admin SQL editor: one statement, run as the project's owner role in the project's database,
// on a connection of its own that lives for this one statement (so nothing a statement sets, a
// temp table, an open transaction, outlives it), with a 5 s statement timeout and at most 5,000
// rows fetched through a portal: a huge result is never loaded.
import postgres from "postgres";
import { z } from "zod";
import type { AppContext } from "../context";
import { decryptSecret } from "../platform/crypto";
import { errors, ApiError } from "../http/errors";
import { getProject } from "../projects/service";
import { databaseName, roleName } from "../projects/provision";
import { characterPosition, lex, splitStatements } from "./lexer";
import { findDenial, type Denial } from "./deny";

export const STATEMENT_TIMEOUT_MS = 5_000;
export const MAX_ROWS = 5_000;
/** Rows stop being collected past this much text too (5,000 rows of 1 MB would sink a Pi). */
const MAX_RESULT_CHARS = 20_000_000;
const BATCH_ROWS = 250;
const MAX_NOTICES = 100;
/** How long past the statement timeout we wait before dropping the connection ourselves. */
const DEADLINE_GRACE_MS = 2_000;

export const sqlRequestSchema = z.object({
  query: z
    .string()
    .min(1)
    .max(100_000)
    .refine((s) => !s.includes("\u0000"), "must not contain NUL characters"),
});

export interface SqlResult {
  columns: { name: string; type: string }[];
  rows: unknown[][];
  row_count: number | null;
  truncated: boolean;
  duration_ms: number;
  notices: { severity: string; code: string; message: string }[];
  command: string | null;
}

/** 404 for an unknown or purged project, 409 unless it is ready. */
export async function requireReadyProject(ctx: AppContext, projectId: string) {
  const project = await getProject(ctx, projectId);
  if (project.status === "purged") throw errors.notFound("project");
  if (project.status !== "ready") throw errors.conflict(`The project is ${project.status}; SQL runs on ready projects only.`);
}

/**
 * 400 unless the query holds exactly one statement (the position of the second one lets the editor
 * point at it); then the deny-list rule that statement breaks, if any.
 */
export function checkStatement(query: string): Denial | undefined {
  const statements = splitStatements(lex(query));
  if (statements.length === 0) throw errors.sqlEmpty();
  if (statements.length > 1) {
    throw errors.sqlMultipleStatements({ statements: statements.length, position: characterPosition(query, statements[1]![0]!.start) });
  }
  return findDenial(statements[0]!);
}

/** Runs one statement, already through checkStatement, as the project's owner role. */
export async function runStatement(ctx: AppContext, projectId: string, query: string): Promise<SqlResult> {
  const notices: SqlResult["notices"] = [];
  const sql = connectAsOwner(ctx, projectId, await ownerPassword(ctx, projectId), (n) => {
    if (notices.length < MAX_NOTICES) notices.push({ severity: n.severity ?? "NOTICE", code: n.code ?? "", message: n.message ?? "" });
  });
  try {
    // Connected first, so that a failure to connect (503) is told apart from the statement's own (400),
    // and the duration is the statement's alone. (Not sql.reserve(): with fetch_types off, postgres.js
    // never hands a fresh connection to a reservation.) With max: 1, every query below shares it.
    await sql`select 1`.catch(rethrowUnavailable);
    const started = performance.now();
    const fetched = await withDeadline(fetchRows(sql, query), () => sql.end({ timeout: 0 })).catch(rethrowStatementError);
    const duration_ms = Math.round((performance.now() - started) * 10) / 10;
    const columns = await describeColumns(sql, fetched.columns);
    return {
      columns,
      rows: fetched.rows,
      row_count: columns.length > 0 ? fetched.rows.length : fetched.count,
      truncated: fetched.truncated,
      duration_ms,
      notices,
      command: fetched.command,
    };
  } finally {
    await sql.end({ timeout: 1 });
  }
}

async function ownerPassword(ctx: AppContext, projectId: string) {
  const [row] = await ctx.sql<{ password_enc: string }[]>`
    select password_enc from project_roles where project_id = ${projectId} and kind = 'owner'`;
  if (!row) throw errors.databaseUnavailable();
  return decryptSecret(ctx.masterKey, row.password_enc);
}

/**
 * One connection as p_<id>_owner to p_<id>. The startup parameters win over any default the owner
 * set on itself (ALTER ROLE … SET): the timeout holds, and standard_conforming_strings stays on, so
 * '\' ends a string for Postgres exactly as it does for our lexer.
 */
function connectAsOwner(ctx: AppContext, projectId: string, password: string, onnotice: (n: postgres.Notice) => void) {
  const su = ctx.engine.superuser();
  return postgres({
    host: su.host,
    port: su.port,
    ssl: su.ssl,
    database: databaseName(projectId),
    user: roleName(projectId, "owner"),
    password,
    max: 1,
    connect_timeout: 5,
    prepare: false,
    // Array values come back as Postgres writes them ('{1,2}'), and no type query runs at connect.
    fetch_types: false,
    connection: { application_name: "atlashub-sql", statement_timeout: STATEMENT_TIMEOUT_MS, standard_conforming_strings: "on" },
    types: RESULT_TYPES as postgres.Options<{}>["types"],
    onnotice,
  });
}

const asText = (oids: number[]) => ({ to: 25, from: oids, serialize: String, parse: (x: string) => x });
/**
 * Result values as JSON can carry them: booleans, and numbers for int2/int4/oid/float4/float8 when
 * finite; everything else (bigint, numeric, json, dates, bytea as \x…, arrays) as Postgres' text.
 */
const RESULT_TYPES = {
  number: { to: 0, from: [21, 23, 26, 700, 701], serialize: String, parse: (x: string) => (Number.isFinite(+x) ? +x : x) },
  json: asText([114, 3802]),
  date: asText([1082, 1114, 1184]),
  bytea: asText([17]),
};

interface Fetched {
  columns: { name: string; type: number }[];
  rows: unknown[][];
  count: number | null;
  command: string | null;
  truncated: boolean;
}

/**
 * Executes through the extended protocol (Parse/Bind/Execute, never a simple Query), which is what
 * makes Postgres itself refuse several statements, and reads the portal BATCH_ROWS at a time,
 * closing it once MAX_ROWS rows (or MAX_RESULT_CHARS) are in hand.
 */
async function fetchRows(conn: postgres.Sql, query: string): Promise<Fetched> {
  const rows: unknown[][] = [];
  let columns: Fetched["columns"] | undefined;
  let chars = 0;
  let truncated = false;
  const result = await conn.unsafe(query, [], { prepare: false }).values().cursor(BATCH_ROWS, (batch) => {
    columns ??= (batch as unknown as { columns?: Fetched["columns"] }).columns;
    for (const row of batch as unknown[][]) {
      if (rows.length >= MAX_ROWS || chars >= MAX_RESULT_CHARS) {
        truncated = true;
        return conn.CLOSE;
      }
      rows.push(row);
      chars += row.reduce<number>((n, v) => n + (typeof v === "string" ? v.length : 8), 0);
    }
    return undefined;
  });
  const final = result as unknown as { columns?: Fetched["columns"]; count: number | null; command: string | null } | undefined;
  return {
    columns: columns ?? final?.columns ?? [],
    rows,
    count: final?.count ?? null,
    command: truncated ? null : (final?.command ?? null),
    truncated,
  };
}

/** Type names as format_type writes them ("integer", "timestamp with time zone", "text[]"), by the columns' type oids. */
async function describeColumns(conn: postgres.Sql, columns: Fetched["columns"]) {
  const oids = [...new Set(columns.map((c) => c.type))];
  const names = new Map<number, string>();
  if (oids.length > 0) {
    // The statement may have left the session unable to run this (a tiny statement_timeout set
    // through set_config): the oid then stands in for the name.
    const found = await conn<{ oid: number; name: string }[]>`
      select t.oid::int as oid, pg_catalog.format_type(t.oid, null) as name
      from pg_catalog.pg_type t where t.oid = any(${`{${oids.join(",")}}`}::oid[])`.catch(() => []);
    for (const t of found) names.set(t.oid, t.name);
  }
  return columns.map((c) => ({ name: c.name, type: names.get(c.type) ?? String(c.type) }));
}

/** Drops the connection if Postgres has not answered well past the statement timeout (a protocol state postgres.js cannot leave). */
async function withDeadline<T>(work: Promise<T>, abandon: () => Promise<unknown>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      work.catch(() => {}); // settled by the connection's end below; its error is not news
      void abandon();
      reject(errors.sqlTimeout(STATEMENT_TIMEOUT_MS / 1000));
    }, STATEMENT_TIMEOUT_MS + DEADLINE_GRACE_MS);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** The statement's own failure is the user's to read: 400 with Postgres' message, SQLSTATE and position. */
function rethrowStatementError(err: unknown): never {
  if (err instanceof ApiError) throw err;
  if (err instanceof postgres.PostgresError) {
    if (err.code === "57014" && /statement timeout/.test(err.message)) throw errors.sqlTimeout(STATEMENT_TIMEOUT_MS / 1000);
    if (err.code === "42601" && /multiple commands/.test(err.message)) throw errors.sqlMultipleStatements();
    throw errors.sqlError(err.message, postgresDetails(err));
  }
  rethrowUnavailable(err);
}

function postgresDetails(err: postgres.PostgresError) {
  const details: Record<string, unknown> = { sqlstate: err.code };
  if (err.position) details.position = Number(err.position);
  for (const key of ["detail", "hint", "where"] as const) if (err[key]) details[key] = err[key];
  return details;
}

/** Connecting failed (role's connection limit, database closed or gone, server down): 503, never 500. */
function rethrowUnavailable(err: unknown): never {
  if (err instanceof ApiError) throw err;
  const code = (err as { code?: unknown }).code;
  if (err instanceof postgres.PostgresError || (typeof code === "string" && /^(CONNECT_TIMEOUT|CONNECTION_|ECONNREFUSED|ECONNRESET)/.test(code))) {
    throw errors.databaseUnavailable();
  }
  throw err;
}

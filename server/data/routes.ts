import { Hono, type Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import postgres from "postgres";
import { z } from "zod";
import type { AppContext, AppEnv } from "../context";
import { requireApiKey } from "../http/auth";
import { ApiError, parseBody } from "../http/errors";
import { MAX_LIMIT, parsePrefer, parseReadRequest, parseSelect, type LimitRule } from "./parse";
import { publicSchemaOnly } from "./postgrest";
import { findTable, planRead } from "./plan";
import { readResult, renderCount, renderRead, type Rendered } from "./render";
import { renderDelete, renderInsert, renderUpdate, type WriteOptions } from "./write";
import type { Schema, Table } from "./schema";
import type { ProjectPools } from "./pools";

// Requests of one shape render the same text, so each connection prepares it once and reuses it.
const PREPARED = { prepare: true };

// Any JSON: what a write may hold is checked against the table (write.ts).
const ANY_JSON = z.unknown();

// Supabase answers at most 1000 rows (PostgREST's max-rows) and cuts longer limits quietly.
const POSTGREST_LIMITS: LimitRule = { defaultLimit: MAX_LIMIT, overMax: "cap" };

export interface DataApiOptions {
  /** PostgREST's conventions (for supabase-js at /rest/v1) instead of AtlasHub's own (/v1/db). */
  postgrest: boolean;
}

/** /v1/db and /rest/v1: a project's public tables over HTTP, as its app role. */
export function dataRoutes(ctx: AppContext, pools: ProjectPools, { postgrest }: DataApiOptions) {
  const app = new Hono<AppEnv>();
  app.use("*", requireApiKey(ctx));
  if (postgrest) app.use("*", publicSchemaOnly());

  /**
   * Plans and runs a request against the cached schema. A name the cache does not know may be a table
   * or column created a moment ago, and one it knows may have been dropped or renamed since (Postgres
   * then reports it undefined): either way the request runs once more on a fresh read of the schema.
   */
  const withSchema = async <T>(projectId: string, use: (schema: Schema) => Promise<T>): Promise<T> => {
    try {
      return await use(await pools.schema(projectId));
    } catch (err) {
      if (!(err instanceof ApiError) || !["unknown_table", "unknown_column"].includes(err.code)) throw err;
      return use(await pools.schema(projectId, true));
    }
  };
  const query = <T>(projectId: string, { text, params }: Rendered) =>
    pools.run(projectId, (sql) => sql.unsafe<T[]>(text, params, PREPARED)).catch(rethrowAsApiError);

  const write = async (c: Context<AppEnv>, render: (table: Table, params: URLSearchParams, options: WriteOptions) => Rendered) => {
    const projectId = c.get("apiKey").projectId;
    const prefer = parsePrefer(c.req.header("prefer"));
    const params = searchParams(c);
    const options = { returnRows: prefer.returnRows, select: prefer.returnRows ? parseSelect(params.get("select")) : undefined };
    const [row] = await withSchema(projectId, (schema) => query<{ body: string; shown?: number }>(projectId, render(findTable(schema, c.req.param("table")!), params, options)));
    const status = c.req.method === "POST" ? 201 : 200;
    if (prefer.returnRows) {
      if (prefer.count) c.header("Content-Range", `*/${row!.shown}`);
      return sendRows(c, row!.body, status);
    }
    if (!postgrest) return c.body(row!.body, status, { "content-type": "application/json" });
    // PostgREST's return=minimal: no body; the count only when asked for.
    if (prefer.count) c.header("Content-Range", `*/${(JSON.parse(row!.body) as { count: number }).count}`);
    return c.body(null, status === 201 ? 201 : 204);
  };

  app.post("/:table", async (c) => {
    const body = await parseBody(c, ANY_JSON);
    return write(c, (table, params, options) => renderInsert(table, body, params, c.req.header("prefer") ?? "", options));
  });
  app.patch("/:table", async (c) => {
    const body = await parseBody(c, ANY_JSON);
    return write(c, (table, params, options) => renderUpdate(table, body, params, options));
  });
  app.delete("/:table", (c) => write(c, renderDelete));

  const listTables = async (c: Context<AppEnv>) => {
    const schema = await pools.schema(c.get("apiKey").projectId);
    return c.json({ items: [...schema.values()].map((t) => ({ name: t.name, kind: t.kind, primary_key: t.primaryKey, columns: t.columns })) });
  };

  app.get("/:table", async (c) => {
    // /v1/db/tables lists the tables (in PostgREST's namespace every path segment is a table, "tables"
    // too). Told apart here rather than by a route of its own: a static route beside /:table keeps Hono
    // from its fastest router.
    if (!postgrest && c.req.param("table") === "tables") return listTables(c);
    const projectId = c.get("apiKey").projectId;
    const request = parseReadRequest(searchParams(c), postgrest ? POSTGREST_LIMITS : undefined);
    const { plan, rows } = await withSchema(projectId, async (schema) => {
      const plan = planRead(schema, c.req.param("table"), request);
      const read = renderRead(plan);
      return { plan, rows: readResult(read, await query<{ body: string; shown?: number }>(projectId, read)) };
    });
    const prefer = parsePrefer(c.req.header("prefer"));
    if (prefer.count || postgrest) {
      const total = prefer.count ? (await query<{ total: string }>(projectId, renderCount(plan)))[0]!.total : "*";
      const shown = rows.shown;
      c.header("Content-Range", shown ? `${plan.offset}-${plan.offset + shown - 1}/${total}` : `*/${total}`);
    }
    return sendRows(c, rows.body, 200);
  });

  return app;
}

/** The query string, without parsing the rest of the URL. */
function searchParams(c: Context) {
  const url = c.req.url;
  const at = url.indexOf("?");
  return new URLSearchParams(at < 0 ? "" : url.slice(at + 1));
}

/**
 * The rows as the JSON array Postgres built, or, when the client asked for one object
 * (`Accept: application/vnd.pgrst.object+json`, supabase-js `.single()`), that object — 406 unless exactly one row.
 */
function sendRows(c: Context<AppEnv>, body: string, status: ContentfulStatusCode) {
  if (!c.req.header("accept")?.includes("application/vnd.pgrst.object+json")) return c.body(body, status, { "content-type": "application/json" });
  const rows = JSON.parse(body) as unknown[];
  if (rows.length !== 1) {
    throw new ApiError(406, "not_single", "One row was asked for, but the result has " + rows.length + ".", { rows: rows.length });
  }
  return c.body(JSON.stringify(rows[0]), status, { "content-type": "application/vnd.pgrst.object+json; charset=utf-8" });
}

/**
 * Postgres errors as API errors: the constraint or column involved, never the SQL. Data exceptions
 * (class 22) are left to the shared handler (400 invalid_input).
 */
function rethrowAsApiError(err: unknown): never {
  if (!(err instanceof postgres.PostgresError)) throw err;
  const names = { constraint: err.constraint_name, column: err.column_name };
  switch (err.code) {
    case "23505":
      throw new ApiError(409, "unique_violation", "A row with the same unique values already exists.", names);
    case "23503":
      throw new ApiError(409, "foreign_key_violation", "The row refers to a row that does not exist, or is referred to by another.", names);
    case "23502":
      throw new ApiError(400, "not_null_violation", `Column "${err.column_name}" may not be null.`, names);
    case "23514":
      throw new ApiError(400, "check_violation", `A check on the table refused the row (${err.constraint_name}).`, names);
    case "42501":
      throw new ApiError(403, "permission_denied", "The project's app role may not do this.");
    // The schema cache named a table or column that is gone (dropped or renamed a moment ago).
    case "42P01":
      throw new ApiError(400, "unknown_table", "The table does not exist (any more).");
    case "42703":
      throw new ApiError(400, "unknown_column", "A column of the request does not exist (any more).");
    case "57014":
      throw new ApiError(504, "statement_timeout", "The query ran longer than the statement timeout.");
    default:
      throw err;
  }
}

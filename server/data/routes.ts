import { Hono, type Context, type MiddlewareHandler } from "hono";
import postgres from "postgres";
import { z } from "zod";
import type { AppContext, AppEnv } from "../context";
import { checkApiKey } from "../http/auth";
import { ApiError, asApiError, errorResponse, errors, parseBody, renderError } from "../http/errors";
import { allowBrowsers, API_HEADERS, bodyLimit, corsPreflight, finishResponse, logRequest, requestIdOf } from "../http/middleware";
import type { VerifiedKey } from "../keys/service";
import { MAX_LIMIT, parsePrefer, parseReadRequest, parseSelect, type LimitRule } from "./parse";
import { checkPublicSchema, postgrestError } from "./postgrest";
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

type Endpoint = (c: Context<AppEnv>, key: VerifiedKey) => Promise<Response>;

const WRITE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * /v1/db (AtlasHub's conventions) and /rest/v1 (PostgREST's, for supabase-js): a project's public
 * tables over HTTP, as its app role. Bun routes both prefixes straight to this app (server/app.ts).
 *
 * The server's hottest path: what other surfaces do in a chain of middleware (request id, security
 * headers, access log, CORS, body limit, API key, error shape) happens here in one function, `serve`.
 * The chain cost about 4 of a read's 11 µs in the server (measured without the database).
 */
export function dataApp(ctx: AppContext, pools: ProjectPools) {
  const app = new Hono<AppEnv>();
  const served = { v1: servedBy(ctx, false), postgrest: servedBy(ctx, true) };
  for (const postgrest of [false, true]) {
    const prefix = postgrest ? "/rest/v1" : "/v1/db";
    const serve = postgrest ? served.postgrest : served.v1;
    const api = endpoints(pools, postgrest);
    app.get(`${prefix}/:table`, serve(api.read));
    app.post(`${prefix}/:table`, serve(api.insert));
    app.patch(`${prefix}/:table`, serve(api.update));
    app.delete(`${prefix}/:table`, serve(api.remove));
  }
  // Any other path or method: a browser's preflight, or 404 once the key is checked (401 without one).
  const noRoute: Endpoint = async () => {
    throw errors.routeNotFound();
  };
  const notFound = { v1: served.v1(noRoute), postgrest: served.postgrest(noRoute) };
  app.notFound((c) => (c.req.path.startsWith("/rest/v1") ? notFound.postgrest(c) : notFound.v1(c)));
  app.onError(renderError);
  return app;
}

/**
 * Wraps an endpoint in what every data API request gets: a request id, a browser's preflight
 * answered, the body limit on writes, the API key checked (and, for PostgREST, the schema header),
 * any error in the surface's shape, the security and CORS headers, and the access-log line.
 */
function servedBy(ctx: AppContext, postgrest: boolean) {
  const limit = bodyLimit(ctx.config.bodyLimit);
  return (endpoint: Endpoint) =>
    async function serve(c: Context<AppEnv>): Promise<Response> {
      const started = performance.now();
      const requestId = requestIdOf(c.req.header("x-request-id"));
      c.set("requestId", requestId);
      const browser = c.req.header("origin") !== undefined;
      const run = async () => {
        const key = await checkApiKey(ctx, c.req.raw);
        if (postgrest) checkPublicSchema(c.req.raw.headers);
        return endpoint(c, key);
      };
      let res: Response;
      try {
        if (browser && c.req.method === "OPTIONS") res = corsPreflight();
        else if (WRITE_METHODS.has(c.req.method)) res = await withBodyLimit(c, limit, run);
        else res = await run();
      } catch (err) {
        const error = asApiError(err, requestId);
        res = postgrest ? postgrestError(error) : errorResponse(error);
      }
      if (browser) allowBrowsers(res.headers);
      finishResponse(res.headers, requestId, API_HEADERS);
      logRequest(c.req.method, c.req.path, res.status, started, requestId);
      return res;
    };
}

/** Runs `run` under the body-limit middleware (413 past the limit, also for a body sent without a length). */
async function withBodyLimit(c: Context<AppEnv>, limit: MiddlewareHandler, run: () => Promise<Response>) {
  let res: Response | undefined;
  await limit(c, async () => {
    res = await run();
  });
  return res!;
}

function endpoints(pools: ProjectPools, postgrest: boolean): Record<"read" | "insert" | "update" | "remove", Endpoint> {
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

  const write = async (c: Context<AppEnv>, key: VerifiedKey, render: (table: Table, params: URLSearchParams, options: WriteOptions) => Rendered) => {
    const prefer = parsePrefer(c.req.header("prefer"));
    const params = searchParams(c);
    const options = { returnRows: prefer.returnRows, select: prefer.returnRows ? parseSelect(params.get("select")) : undefined };
    const result = await withSchema(key.projectId, (schema) =>
      query<{ body: string; shown: number }>(key.projectId, render(findTable(schema, c.req.param("table")!), params, options)),
    );
    const status = c.req.method === "POST" ? 201 : 200;
    if (prefer.returnRows) {
      const [row] = result;
      return sendRows(c, row!.body, status, prefer.count ? { "Content-Range": `*/${row!.shown}` } : undefined);
    }
    // Without returned rows the statement answers its count only (the command's tag).
    if (!postgrest) return json(`{"count":${result.count}}`, status);
    // PostgREST's return=minimal: no body; the count only when asked for.
    return new Response(null, { status: status === 201 ? 201 : 204, headers: prefer.count ? { "Content-Range": `*/${result.count}` } : undefined });
  };

  const listTables = async (key: VerifiedKey) => {
    const schema = await pools.schema(key.projectId);
    const items = [...schema.values()].map((t) => ({ name: t.name, kind: t.kind, primary_key: t.primaryKey, columns: t.columns }));
    return json(JSON.stringify({ items }), 200);
  };

  return {
    read: async (c, key) => {
      // /v1/db/tables lists the tables (in PostgREST's namespace every path segment is a table, "tables"
      // too). Told apart here rather than by a route of its own: a static route beside /:table keeps Hono
      // from its fastest router.
      if (!postgrest && c.req.param("table") === "tables") return listTables(key);
      const request = parseReadRequest(searchParams(c), postgrest ? POSTGREST_LIMITS : undefined);
      const { plan, rows } = await withSchema(key.projectId, async (schema) => {
        const plan = planRead(schema, c.req.param("table")!, request);
        const read = renderRead(plan);
        return { plan, rows: readResult(read, await query<{ body: string; shown?: number }>(key.projectId, read)) };
      });
      const prefer = parsePrefer(c.req.header("prefer"));
      if (!prefer.count && !postgrest) return sendRows(c, rows.body, 200);
      const total = prefer.count ? (await query<{ total: string }>(key.projectId, renderCount(plan)))[0]!.total : "*";
      const shown = rows.shown;
      return sendRows(c, rows.body, 200, { "Content-Range": shown ? `${plan.offset}-${plan.offset + shown - 1}/${total}` : `*/${total}` });
    },
    insert: async (c, key) => {
      const body = await parseBody(c, ANY_JSON);
      return write(c, key, (table, params, options) => renderInsert(table, body, params, c.req.header("prefer") ?? "", options));
    },
    update: async (c, key) => {
      const body = await parseBody(c, ANY_JSON);
      return write(c, key, (table, params, options) => renderUpdate(table, body, params, options));
    },
    remove: (c, key) => write(c, key, renderDelete),
  };
}

function json(body: string, status: number, headers?: Record<string, string>) {
  return new Response(body, { status, headers: { "content-type": "application/json", ...headers } });
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
function sendRows(c: Context<AppEnv>, body: string, status: number, headers?: Record<string, string>) {
  if (!c.req.header("accept")?.includes("application/vnd.pgrst.object+json")) return json(body, status, headers);
  const rows = JSON.parse(body) as unknown[];
  if (rows.length !== 1) {
    throw new ApiError(406, "not_single", "One row was asked for, but the result has " + rows.length + ".", { rows: rows.length });
  }
  return new Response(JSON.stringify(rows[0]), { status, headers: { "content-type": "application/vnd.pgrst.object+json; charset=utf-8", ...headers } });
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

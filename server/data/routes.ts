import postgres from "postgres";
import type { AppContext } from "../context";
import { checkApiKey } from "../http/auth";
import { ApiError, asApiError, errorResponse, errors, isJsonContentType } from "../http/errors";
import { allowBrowsers, API_HEADERS, clientAddress, corsPreflight, finishResponse, logRequest, requestIdOf } from "../http/middleware";
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

// Supabase answers at most 1000 rows (PostgREST's max-rows) and cuts longer limits quietly.
const POSTGREST_LIMITS: LimitRule = { defaultLimit: MAX_LIMIT, overMax: "cap" };

/** A request to a table: its URL, headers and body, the table named by its path (decoded), and its verified key. */
interface TableRequest {
  req: Request;
  table: string;
  key: VerifiedKey;
}

type Endpoint = (call: TableRequest) => Promise<Response>;
type Handler = (req: Request & { params?: Record<string, string> }, server?: { requestIP(req: Request): { address: string } | null }) => Promise<Response>;

/**
 * /v1/db (AtlasHub's conventions) and /rest/v1 (PostgREST's, for supabase-js): a project's public
 * tables over HTTP, as its app role, as handlers for Bun's own router (server/app.ts).
 *
 * The server's hottest path, so it is served without Hono: what other surfaces do in a chain of
 * middleware (request id, security headers, access log, CORS, body limit, API key, error shape)
 * happens here in one function, `serve`. The chain and the framework cost about 3 of a read's (or
 * an insert's) 11 µs in the server (measured without the database).
 */
export function dataRoutes(ctx: AppContext, pools: ProjectPools): Record<string, Handler> {
  const routes: Record<string, Handler> = {};
  for (const postgrest of [false, true]) {
    const prefix = postgrest ? "/rest/v1" : "/v1/db";
    const api = endpoints(pools, postgrest, ctx.config.bodyLimit);
    const byMethod: Record<string, Endpoint | undefined> = { GET: api.read, HEAD: api.read, POST: api.insert, PATCH: api.update, DELETE: api.remove };
    const serve = servedBy(ctx, postgrest);
    routes[`${prefix}/:table`] = (req, server) => serve(req, server, req.params!.table!, byMethod[req.method]);
    // Any other path: a browser's preflight, or 404 once the key is checked (401 without one).
    routes[prefix] = routes[`${prefix}/*`] = (req, server) => serve(req, server, "", undefined);
  }
  return routes;
}

/**
 * What every data API request gets around its endpoint: a request id, a browser's preflight
 * answered, the API key checked (and, for PostgREST, the schema header), 404 for a method or path
 * with no endpoint, any error in the surface's shape, the security and CORS headers, and the
 * access-log line.
 */
function servedBy(ctx: AppContext, postgrest: boolean) {
  return async function serve(req: Request, server: Parameters<Handler>[1], table: string, endpoint: Endpoint | undefined): Promise<Response> {
    const started = performance.now();
    const headers = req.headers;
    const requestId = requestIdOf(headers.get("x-request-id") ?? undefined);
    const browser = headers.has("origin");
    let res: Response;
    try {
      if (browser && req.method === "OPTIONS") res = corsPreflight();
      else {
        const key = await checkApiKey(ctx, req, () => clientAddress(headers, ctx.config.trustProxy, () => server?.requestIP(req)?.address));
        if (postgrest) checkPublicSchema(headers);
        if (!endpoint) throw errors.routeNotFound();
        res = await endpoint({ req, table, key });
      }
    } catch (err) {
      const error = asApiError(err, requestId);
      res = postgrest ? postgrestError(error) : errorResponse(error);
    }
    if (browser) allowBrowsers(res.headers);
    finishResponse(res.headers, requestId, API_HEADERS);
    logRequest(req.method, pathOf(req.url), res.status, started, requestId);
    return res;
  };
}

function endpoints(pools: ProjectPools, postgrest: boolean, bodyLimit: number): Record<"read" | "insert" | "update" | "remove", Endpoint> {
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

  const write = async ({ req, table, key }: TableRequest, render: (table: Table, params: URLSearchParams, options: WriteOptions) => Rendered) => {
    const prefer = parsePrefer(req.headers.get("prefer") ?? undefined);
    const params = searchParams(req.url);
    const options = { returnRows: prefer.returnRows, select: prefer.returnRows ? parseSelect(params.get("select")) : undefined };
    const result = await withSchema(key.projectId, (schema) => query<{ body: string; shown: number }>(key.projectId, render(findTable(schema, table), params, options)));
    const status = req.method === "POST" ? 201 : 200;
    if (prefer.returnRows) {
      const [row] = result;
      return sendRows(req, row!.body, status, prefer.count ? { "Content-Range": `*/${row!.shown}` } : undefined);
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
    read: async ({ req, table, key }) => {
      // /v1/db/tables lists the tables (in PostgREST's namespace every path segment is a table, "tables" too).
      if (!postgrest && table === "tables") return listTables(key);
      const request = parseReadRequest(searchParams(req.url), postgrest ? POSTGREST_LIMITS : undefined);
      const { plan, rows } = await withSchema(key.projectId, async (schema) => {
        const plan = planRead(schema, table, request);
        const read = renderRead(plan);
        return { plan, rows: readResult(read, await query<{ body: string; shown?: number }>(key.projectId, read)) };
      });
      const prefer = parsePrefer(req.headers.get("prefer") ?? undefined);
      if (!prefer.count && !postgrest) return sendRows(req, rows.body, 200);
      const total = prefer.count ? (await query<{ total: string }>(key.projectId, renderCount(plan)))[0]!.total : "*";
      const shown = rows.shown;
      return sendRows(req, rows.body, 200, { "Content-Range": shown ? `${plan.offset}-${plan.offset + shown - 1}/${total}` : `*/${total}` });
    },
    // Any JSON: write.ts checks the body against the table.
    insert: async (call) => {
      const body = await readBody(call.req, bodyLimit);
      const prefer = call.req.headers.get("prefer") ?? "";
      return write(call, (table, params, options) => renderInsert(table, body, params, prefer, options));
    },
    update: async (call) => {
      const body = await readBody(call.req, bodyLimit);
      return write(call, (table, params, options) => renderUpdate(table, body, params, options));
    },
    remove: (call) => write(call, renderDelete),
  };
}

/** The request's path as sent (percent-encoded), without the query string. */
function pathOf(url: string) {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  const query = url.indexOf("?", start);
  return url.slice(start, query < 0 ? undefined : query);
}

/** The query string, without parsing the rest of the URL. */
function searchParams(url: string) {
  const at = url.indexOf("?");
  return new URLSearchParams(at < 0 ? "" : url.slice(at + 1));
}

/**
 * A write's JSON body, within the body limit: 413 when a declared length is over it (decided
 * before reading anything), or as soon as a body sent without a length (chunked) passes it.
 */
async function readBody(req: Request, limit: number): Promise<unknown> {
  if (!isJsonContentType(req.headers.get("content-type"))) throw errors.unsupportedMediaType();
  const declared = req.headers.get("content-length");
  let text: string;
  if (declared !== null && !req.headers.has("transfer-encoding")) {
    if (Number(declared) > limit) throw errors.payloadTooLarge(limit);
    text = await req.text();
  } else {
    text = await readLimited(req, limit);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw errors.invalidJson();
  }
}

async function readLimited(req: Request, limit: number) {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req.body ?? []) {
    size += chunk.byteLength;
    if (size > limit) throw errors.payloadTooLarge(limit);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function json(body: string, status: number, headers?: Record<string, string>) {
  return new Response(body, { status, headers: { "content-type": "application/json", ...headers } });
}

/**
 * The rows as the JSON array Postgres built, or, when the client asked for one object
 * (`Accept: application/vnd.pgrst.object+json`, supabase-js `.single()`), that object — 406 unless exactly one row.
 */
function sendRows(req: Request, body: string, status: number, headers?: Record<string, string>) {
  if (!req.headers.get("accept")?.includes("application/vnd.pgrst.object+json")) return json(body, status, headers);
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

// What makes /rest/v1 look like PostgREST to supabase-js and postgrest-js: the same engine as
// /v1/db, with PostgREST's error objects, codes and statuses, and its schema headers.
import type { MiddlewareHandler } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ApiError } from "../http/errors";

/**
 * Our error codes as PostgREST's: a Postgres SQLSTATE where the error comes from Postgres (what
 * supabase-js apps test, e.g. `error.code === "23505"`), a PGRST code for PostgREST's own errors.
 * A code not listed here is passed through as it is.
 */
const POSTGREST_CODES: Record<string, { code: string; status?: ContentfulStatusCode }> = {
  unique_violation: { code: "23505" },
  foreign_key_violation: { code: "23503" },
  not_null_violation: { code: "23502" },
  check_violation: { code: "23514" },
  permission_denied: { code: "42501" },
  statement_timeout: { code: "57014" },
  invalid_input: { code: "22P02" },
  unknown_column: { code: "42703" },
  unknown_table: { code: "PGRST205", status: 404 },
  unknown_operator: { code: "PGRST100" },
  invalid_filter: { code: "PGRST100" },
  invalid_select: { code: "PGRST100" },
  unsupported_select: { code: "PGRST100" },
  invalid_order: { code: "PGRST100" },
  invalid_limit: { code: "PGRST100" },
  invalid_offset: { code: "PGRST100" },
  invalid_json: { code: "PGRST102" },
  invalid_body: { code: "PGRST102" },
  not_single: { code: "PGRST116" },
  unsupported_schema: { code: "PGRST106" },
};

/** Rewrites any error response under /rest/v1 (ours are all `{"error":{…}}`) into `{code, message, details, hint}`. */
export const postgrestErrors = (): MiddlewareHandler =>
  async function postgrestErrors(c, next) {
    await next();
    if (c.res.status < 400 || !c.res.headers.get("content-type")?.startsWith("application/json")) return;
    const body = (await c.res.clone().json().catch(() => undefined)) as { error?: { code: string; message: string; details?: Record<string, unknown> } } | undefined;
    if (!body?.error) return;
    const { code, message, details } = body.error;
    const mapped = POSTGREST_CODES[code];
    const headers = new Headers(c.res.headers);
    headers.delete("content-length");
    c.res = new Response(JSON.stringify({ code: mapped?.code ?? code, message, details: detailsText(details), hint: null }), {
      status: mapped?.status ?? c.res.status,
      headers,
    });
  };

/** PostgREST's `details` is a sentence, not an object. */
function detailsText(details: Record<string, unknown> | undefined) {
  if (!details) return null;
  const parts = Object.entries(details)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`);
  return parts.length ? parts.join(", ") : null;
}

/** supabase-js names the schema in Accept-Profile (reads) or Content-Profile (writes); only `public` is served. */
export const publicSchemaOnly = (): MiddlewareHandler =>
  async function publicSchemaOnly(c, next) {
    const profile = c.req.header("accept-profile") ?? c.req.header("content-profile");
    if (profile !== undefined && profile !== "public") {
      throw new ApiError(406, "unsupported_schema", `Only the "public" schema is served, not "${profile}".`, { schema: profile });
    }
    await next();
  };

// What makes /rest/v1 look like PostgREST to supabase-js and postgrest-js: the same engine as
// /v1/db, with PostgREST's error objects, codes and statuses, and its schema headers.
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

/** An error as PostgREST answers it: `{code, message, details, hint}`. */
export function postgrestError(error: ApiError) {
  const mapped = POSTGREST_CODES[error.code];
  const body = { code: mapped?.code ?? error.code, message: error.message, details: detailsText(error.details), hint: null };
  return new Response(JSON.stringify(body), { status: mapped?.status ?? error.status, headers: { "content-type": "application/json", ...error.headers } });
}

/** PostgREST's `details` is a sentence, not an object. */
function detailsText(details: Record<string, unknown> | undefined) {
  if (!details) return null;
  const parts = Object.entries(details)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`);
  return parts.length ? parts.join(", ") : null;
}

/** supabase-js names the schema in Accept-Profile (reads) or Content-Profile (writes); only `public` is served. */
export function checkPublicSchema(headers: Headers) {
  const profile = headers.get("accept-profile") ?? headers.get("content-profile");
  if (profile !== null && profile !== "public") {
    throw new ApiError(406, "unsupported_schema", `Only the "public" schema is served, not "${profile}".`, { schema: profile });
  }
}

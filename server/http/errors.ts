import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { HTTPException } from "hono/http-exception";
import { z } from "zod";
import postgres from "postgres";
import { log } from "../platform/log";

/** The one error every surface returns: {"error":{"code","message","details?"}} with its HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

export const errors = {
  validation: (issues: z.core.$ZodIssue[]) =>
    new ApiError(400, "validation_failed", "The request is not valid.", {
      issues: issues.map((i) => ({ path: i.path.join("."), message: i.message })),
    }),
  invalidJson: () => new ApiError(400, "invalid_json", "The request body is not valid JSON."),
  invalidInput: () => new ApiError(400, "invalid_input", "A value in the request is not acceptable to the database (out of range or malformed)."),
  unsupportedMediaType: () => new ApiError(415, "unsupported_media_type", "Send the body as application/json."),
  crossOrigin: () => new ApiError(403, "cross_origin", "Requests from another origin are not accepted."),
  unauthorized: (message = "Sign in or send a valid API token.") => new ApiError(401, "unauthorized", message),
  invalidCredentials: () => new ApiError(401, "invalid_credentials", "Email or password is wrong."),
  // First-run setup (server/admin/).
  invalidSetupToken: () =>
    new ApiError(401, "invalid_setup_token", "The setup token is wrong or no longer valid; use the one in the latest \"first-run setup\" line of the server log."),
  setupDone: () => new ApiError(409, "setup_done", "An admin already exists; sign in instead."),
  forbidden: (message = "You are not allowed to do this.") => new ApiError(403, "forbidden", message),
  notFound: (what = "resource") => new ApiError(404, "not_found", `No such ${what}.`),
  routeNotFound: () => new ApiError(404, "route_not_found", "No such endpoint."),
  conflict: (message: string) => new ApiError(409, "conflict", message),
  // The rest of the body is never read, so the connection cannot carry another request: close it.
  payloadTooLarge: (limit: number) =>
    new ApiError(413, "payload_too_large", `The request body is larger than ${limit} bytes.`, { limit }, { Connection: "close" }),
  unprocessable: (message: string) => new ApiError(422, "unprocessable", message),
  rateLimited: (retryAfterSeconds: number) =>
    new ApiError(429, "rate_limited", `Too many attempts; try again in ${retryAfterSeconds} s.`, { retry_after: retryAfterSeconds }, { "Retry-After": String(retryAfterSeconds) }),
  unavailable: (message: string) => new ApiError(503, "unavailable", message),
  tooManyRequests: (retryAfterSeconds: number) =>
    new ApiError(429, "rate_limited", `Too many requests for this project or API key; try again in ${retryAfterSeconds} s.`, { retry_after: retryAfterSeconds }, { "Retry-After": String(retryAfterSeconds) }),
  // Per client address, for requests whose API key is malformed, made up, revoked or expired (server/keys/service.ts).
  invalidKeysRateLimited: (retryAfterSeconds: number) =>
    new ApiError(429, "rate_limited", `Too many requests with an invalid API key from this address; try again in ${retryAfterSeconds} s.`, { retry_after: retryAfterSeconds }, { "Retry-After": String(retryAfterSeconds) }),
  poolBusy: () =>
    new ApiError(503, "pool_busy", "Every database connection this server may open is in use; try again in a moment.", { retry_after: 1 }, { "Retry-After": "1" }),
  // Object storage (server/storage/).
  invalidObjectKey: (problem: string) => new ApiError(400, "invalid_object_key", `The object key ${problem}.`),
  invalidObjectPath: () => new ApiError(400, "invalid_object_path", "The URL must name an object as /v1/storage/object/<project>/<bucket>/<key>."),
  invalidSignature: () => new ApiError(403, "invalid_signature", "The URL's signature does not match what it asks for; request a new signed URL."),
  signatureExpired: () => new ApiError(403, "signature_expired", "The signed URL has expired; request a new one."),
  signingKeyRevoked: () =>
    new ApiError(403, "signing_key_revoked", "The API key that asked for this signed URL has been revoked or has expired; request a new URL with a valid key."),
  signedUrlUsed: () => new ApiError(403, "signed_url_used", "This signed upload URL has been used already (each takes one upload); request a new one."),
  signatureRequired: () => new ApiError(403, "signature_required", "This object is not in a public bucket; use a signed URL."),
  contentTypeMismatch: (expected: string) =>
    new ApiError(415, "content_type_mismatch", "The upload's Content-Type is not the one the URL was signed for.", { expected }),
  // The rest of the body is never read: close the connection.
  uploadTooSlow: () =>
    new ApiError(408, "upload_too_slow", "The upload did not finish in time (its URL's expiry plus 15 minutes); ask for a new URL.", undefined, { Connection: "close" }),
  storageUnavailable: () =>
    new ApiError(503, "storage_unavailable", "The object store does not answer right now; try again in a moment.", { retry_after: 5 }, { "Retry-After": "5" }),
  objectKeyConflict: () =>
    new ApiError(409, "object_key_conflict", 'An object key cannot also be the prefix of another key ("a" beside "a/b"); choose another key.'),
  rangeNotSatisfiable: (size: number) =>
    new ApiError(416, "range_not_satisfiable", "The requested range starts past the end of the object.", { size }, { "Content-Range": `bytes */${size}` }),
  // Scheduled jobs (server/jobs/).
  ssrfBlocked: (reason: string) => new ApiError(400, "ssrf_blocked", `The job's target is not allowed: ${reason}.`, { reason }),
  invalidSchedule: (reason: string) => new ApiError(400, "invalid_schedule", `The schedule is not valid: ${reason}.`, { reason }),
  runInProgress: () => new ApiError(409, "run_in_progress", "A run of this job is still in progress and its concurrency is forbid; wait for it to finish."),
  // SQL editor (server/sql/).
  sqlEmpty: () => new ApiError(400, "sql_empty", "The query holds no statement (only whitespace or comments)."),
  sqlMultipleStatements: (details?: { statements: number; position: number }) =>
    new ApiError(400, "sql_multiple_statements", "The SQL editor runs exactly one statement at a time; send them one by one.", details),
  sqlDenied: (rule: string, reason: string) => new ApiError(403, "sql_denied", `The SQL editor does not run this statement: ${reason}.`, { rule }),
  sqlTimeout: (seconds: number) =>
    new ApiError(400, "sql_timeout", `The statement ran longer than ${seconds} s and was cancelled.`, { sqlstate: "57014", timeout_seconds: seconds }),
  sqlError: (message: string, details: Record<string, unknown>) => new ApiError(400, "sql_error", message, details),
  // Backups and restores (server/backups/).
  backupInProgress: () => new ApiError(409, "backup_in_progress", "A backup of this project is running; wait for it to finish."),
  backupNotReady: (status: string) =>
    new ApiError(409, "backup_not_ready", `The backup is ${status}; only a completed or verified backup can be downloaded or restored.`, { status }),
  backupBusy: () => new ApiError(409, "backup_busy", "The backup is being verified, restored or deleted; try again when that is over."),
  backupRunning: () => new ApiError(409, "backup_running", "The backup is still running; wait for it to finish before deleting it."),
  importIdTaken: () => new ApiError(409, "import_id_taken", "An import with this id exists already; choose another id (a new UUID) or leave X-Import-Id out."),
  restoreInProgress: () => new ApiError(409, "restore_in_progress", "A restore or rollback of this project is under way; wait for it to finish."),
  noRollbackPoint: () =>
    new ApiError(409, "no_rollback_point", "There is no replaced database to roll back to: no replace restore finished within ATLASHUB_RESTORE_KEEP, or it was rolled back already."),
  pgDumpUnsafe: (reason: string) => new ApiError(503, "pg_dump_unsafe", `${reason[0]!.toUpperCase()}${reason.slice(1)}.`),
  pgToolsMismatch: (serverVersion: string, found: string[]) =>
    new ApiError(
      503,
      "pg_tools_mismatch",
      `No pg_dump/pg_restore of the server's major version (PostgreSQL ${serverVersion}) was found${found.length ? ` (${found.join("; ")})` : ""}; install the client tools of that version or point ATLASHUB_PG_BIN_DIR at them.`,
      { server_version: serverVersion, found },
    ),
  databaseUnavailable: () =>
    new ApiError(503, "database_unavailable", "The project's database cannot take the query right now; try again in a moment.", { retry_after: 1 }, { "Retry-After": "1" }),
};

export function errorBody(code: string, message: string, details?: Record<string, unknown>) {
  return { error: details ? { code, message, details } : { code, message } };
}

/** Hono onError: known errors keep their status; anything else is a 500 carrying only the request id. */
export function renderError(err: Error, c: Context) {
  const error = asApiError(err, c.get("requestId"));
  return c.json(errorBody(error.code, error.message, error.details), error.status, error.headers);
}

/** renderError without a Hono context (the data API answers errors itself, server/data/routes.ts). */
export function errorResponse(error: ApiError) {
  return new Response(JSON.stringify(errorBody(error.code, error.message, error.details)), {
    status: error.status,
    headers: { "content-type": "application/json", ...error.headers },
  });
}

/** Any error as the API error to answer; one that is not expected is logged and becomes a 500 naming the request id. */
export function asApiError(err: unknown, requestId: string): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof z.ZodError) return errors.validation(err.issues);
  if (err instanceof HTTPException && err.status < 500) return new ApiError(err.status as ContentfulStatusCode, "http_error", err.message || "Bad request.");
  // Class 22 is "data exception": a value the database rejected (out-of-range date, NUL byte…).
  if (err instanceof postgres.PostgresError && err.code.startsWith("22")) return errors.invalidInput();
  log.error("unhandled error", { request_id: requestId, ...describeError(err instanceof Error ? err : new Error(String(err))) });
  return new ApiError(500, "internal_error", "Something went wrong on our side.", { request_id: requestId });
}

/**
 * What to log about an unexpected error. A Postgres message can quote the values of the failing
 * statement, so for those only the code and the names of the objects involved are kept.
 */
function describeError(err: Error) {
  if (err instanceof postgres.PostgresError) {
    const { code, routine, table_name, column_name, constraint_name } = err;
    return { error: "postgres error", code, routine, table: table_name, column: column_name, constraint: constraint_name };
  }
  return { error: err.message, stack: err.stack };
}

/** Parses a JSON body and validates it; the result is typed by the schema. */
export async function parseBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const parsed = schema.safeParse(await readJson(c));
  if (!parsed.success) throw errors.validation(parsed.error.issues);
  return parsed.data;
}

/** Only JSON: a form or text/plain body is what a cross-site page can send without a CORS preflight. */
export function isJsonContentType(contentType: string | null | undefined) {
  return /^application\/json\s*(;|$)/i.test(contentType ?? "");
}

/** A JSON body, not yet validated (415 for other media types, 400 for invalid JSON). */
async function readJson(c: Context): Promise<unknown> {
  if (!isJsonContentType(c.req.header("content-type"))) throw errors.unsupportedMediaType();
  try {
    return await c.req.json();
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw errors.invalidJson();
  }
}

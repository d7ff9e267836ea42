import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import type { Config } from "../config";
import type { AppContext, AppEnv } from "../context";
import { actorFromSession, actorFromToken } from "../admin/service";
import { verifyKey, type KeyCheck, type VerifiedKey } from "../keys/service";
import { recordAudit, type AuditEntry } from "../platform/audit";
import type { Db } from "../platform/db";
import { errors } from "./errors";
import { clientAddress, socketAddress } from "./middleware";
import { TokenBuckets, type BucketLimit } from "./tokenBucket";

export const SESSION_COOKIE = "atlashub_session";

/**
 * "host" when ATLASHUB_PUBLIC_URL is https: the session cookie is then `__Host-atlashub_session`,
 * always Secure, Path=/ and without Domain — the prefix makes browsers insist on that, so neither a
 * sibling subdomain nor a plain-http page can set or shadow it. Only that name is read then, so a
 * plain-named cookie (which such a page could plant) is ignored. Without an https public URL the
 * cookie keeps its plain name and is Secure when the request came over https.
 */
export function sessionCookiePrefix(config: Pick<Config, "publicUrl">): "host" | undefined {
  return config.publicUrl?.startsWith("https://") ? "host" : undefined;
}

/** Every /admin/api route except the public ones needs a session cookie or an admin API token. */
export const requireAdmin = (ctx: AppContext, publicPaths: string[]): MiddlewareHandler<AppEnv> =>
  async function requireAdmin(c, next) {
    if (publicPaths.includes(c.req.path)) return next();
    const bearer = c.req.header("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1];
    const session = getCookie(c, SESSION_COOKIE, sessionCookiePrefix(ctx.config));
    const actor = bearer ? await actorFromToken(ctx.sql, bearer) : session ? await actorFromSession(ctx.sql, session) : undefined;
    if (!actor) throw errors.unauthorized();
    c.set("actor", actor);
    await next();
  };

const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

// One set of buckets per process, shared by every /v1 router: the limits hold per instance.
const apiBuckets = new TokenBuckets();

/**
 * /v1: an API key in `x-api-key`, `apikey` (what supabase-js sends) or `Authorization: Bearer`.
 * Publishable keys may only read; writes need a secret key. `postOnlyReads`: the route's POST only
 * reads (asks for a download URL), so publishable keys may call it and the route checks the rest.
 */
export const requireApiKey = (ctx: AppContext, options: { postOnlyReads?: boolean } = {}): MiddlewareHandler<AppEnv> =>
  async function requireApiKey(c, next) {
    const address = () => clientAddress(c.req.raw.headers, ctx.config.trustProxy, () => socketAddress(c));
    c.set("apiKey", await checkApiKey(ctx, c.req.raw, address, options.postOnlyReads));
    await next();
  };

// A verified key's buckets, made once per entry of the key cache rather than on every request.
const buckets = new WeakMap<KeyCheck, BucketLimit[]>();

/**
 * Two buckets: the project's bounds all its keys together; each key also has its own, at the same
 * limit for now, which is where a tighter per-key limit would go.
 */
function bucketsOf(ctx: AppContext, verified: KeyCheck) {
  let limits = buckets.get(verified);
  if (!limits) {
    const rate = verified.rateLimit.rps ?? ctx.config.apiRateLimit;
    const burst = verified.rateLimit.burst ?? ctx.config.apiRateBurst;
    limits = [
      { key: `project:${verified.projectId}`, rate, burst },
      { key: `key:${verified.id}`, rate, burst },
    ];
    buckets.set(verified, limits);
  }
  return limits;
}

/**
 * The request's API key, verified, within its rate limits and allowed the request's method; else throws.
 * `clientAddress` is asked only when the key does not verify (invalid keys are limited per address).
 */
export async function checkApiKey(ctx: AppContext, req: Request, clientAddress: () => string, postOnlyReads = false): Promise<VerifiedKey> {
  const headers = req.headers;
  const key = headers.get("x-api-key") ?? headers.get("apikey") ?? headers.get("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1];
  const verified = key ? await verifyKey(ctx, key, clientAddress) : undefined;
  if (!verified) throw errors.unauthorized("Send a valid API key as x-api-key.");
  const taken = apiBuckets.take(bucketsOf(ctx, verified));
  if (!taken.ok) throw errors.tooManyRequests(Math.max(1, Math.ceil(taken.retryAfterMs / 1000)));
  const reads = READ_METHODS.has(req.method) || (postOnlyReads && req.method === "POST");
  if (verified.kind === "publishable" && !reads) {
    throw errors.forbidden("A publishable key can only read; use a secret key to write.");
  }
  return { id: verified.id, projectId: verified.projectId, kind: verified.kind };
}

/** Records an admin action with who, what, when and the request id; pass the write's transaction as `db`. */
export function audit(db: Db, c: Context<AppEnv>, entry: Omit<AuditEntry, "actor" | "requestId" | "ip"> & { actor?: AuditEntry["actor"] }) {
  return recordAudit(db, {
    ...entry,
    actor: entry.actor ?? c.get("actor") ?? { type: "anonymous" },
    requestId: c.get("requestId"),
    ip: c.get("clientIp"),
  });
}

import type { Context, MiddlewareHandler } from "hono";
import { isIP } from "node:net";
import { bodyLimit as honoBodyLimit } from "hono/body-limit";
import { getConnInfo } from "hono/bun";
import { randomUUID } from "node:crypto";
import { errors } from "./errors";
import { log } from "../platform/log";

const incomingId = /^[A-Za-z0-9._:-]{1,100}$/;

// hono/secure-headers' defaults, for pages and the admin API. The public APIs answer JSON to apps
// on any origin: there only nosniff matters, and every header costs on the hottest path.
const PAGE_HEADERS: [string, string][] = [
  ["Cross-Origin-Resource-Policy", "same-origin"],
  ["Cross-Origin-Opener-Policy", "same-origin"],
  ["Origin-Agent-Cluster", "?1"],
  ["Referrer-Policy", "no-referrer"],
  ["Strict-Transport-Security", "max-age=15552000; includeSubDomains"],
  ["X-Content-Type-Options", "nosniff"],
  ["X-DNS-Prefetch-Control", "off"],
  ["X-Download-Options", "noopen"],
  ["X-Frame-Options", "SAMEORIGIN"],
  ["X-Permitted-Cross-Domain-Policies", "none"],
  ["X-XSS-Protection", "0"],
];
export const API_HEADERS: [string, string][] = [["X-Content-Type-Options", "nosniff"]];

/**
 * What every request gets, in one layer because each layer costs on the hottest path:
 * - an id: a sane incoming X-Request-Id or a new one, echoed as X-Request-Id;
 * - the security headers for its path;
 * - one JSON access-log line: method, path (no query string), status, duration and request id.
 * Headers are set on the finished response in place: `c.header()` after the handler would copy it.
 */
export const requestEnvelope = (): MiddlewareHandler =>
  async function requestEnvelope(c, next) {
    const started = performance.now();
    const id = requestIdOf(c.req.header("x-request-id"));
    c.set("requestId", id);
    await next();
    const path = c.req.path;
    finishResponse(c.res.headers, id, path.startsWith("/v1/") || path.startsWith("/rest/v1/") ? API_HEADERS : PAGE_HEADERS);
    logRequest(c.req.method, path, c.res.status, started, id);
  };

/** A sane incoming X-Request-Id, or a new one. */
export function requestIdOf(given: string | undefined) {
  return given && incomingId.test(given) ? given : randomUUID();
}

/** The request id and the security headers (PAGE_HEADERS or API_HEADERS) on a finished response. */
export function finishResponse(headers: Headers, requestId: string, security: [string, string][]) {
  headers.set("X-Request-Id", requestId);
  for (const [name, value] of security) headers.set(name, value);
}

/** The access-log line: never the query string or any header, which may carry secrets. */
export function logRequest(method: string, path: string, status: number, started: number, requestId: string) {
  log.info("request", { method, path, status, ms: Math.round((performance.now() - started) * 10) / 10, request_id: requestId });
}

/** Bodies over `maxSize` get 413; `skip` names requests that stream big bodies under limits of their own (uploads). */
export const bodyLimit = (maxSize: number, skip?: (c: Context) => boolean): MiddlewareHandler => {
  const limit = honoBodyLimit({
    maxSize,
    onError: () => {
      throw errors.payloadTooLarge(maxSize);
    },
  });
  return async function bodyLimit(c, next) {
    if (skip?.(c)) return next();
    // A declared length is enough (Bun never reads past it), and decides without touching the body
    // stream: a request whose stream was made reads its JSON more slowly.
    const length = c.req.header("content-length");
    if (length !== undefined && c.req.header("transfer-encoding") === undefined) {
      if (Number(length) > maxSize) throw errors.payloadTooLarge(maxSize);
      return next();
    }
    return limit(c, next);
  };
};

/**
 * The client's IP: the socket peer; behind a trusted proxy, the last X-Forwarded-For hop — the one
 * our proxy appended. Hops to its left come from the client and can be anything.
 */
export const clientIp = (trustProxy: boolean): MiddlewareHandler =>
  async function clientIp(c, next) {
    c.set("clientIp", clientAddress(c.req.raw.headers, trustProxy, () => socketAddress(c)));
    await next();
  };

/** clientIp's answer for any request; `socket` gives the peer's address, asked only when needed. */
export function clientAddress(headers: Headers, trustProxy: boolean, socket: () => string | undefined) {
  const forwarded = trustProxy ? headers.get("x-forwarded-for")?.split(",").pop()?.trim() : undefined;
  return forwarded && isIP(forwarded) ? forwarded : (socket() ?? "unknown");
}

export function socketAddress(c: Context) {
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    return "unknown"; // app.request() in unit tests has no socket
  }
}

/**
 * Refuses state-changing requests that a browser sent from another origin. SameSite=Strict cookies
 * already stop other sites; this also stops sibling subdomains, which count as the same site.
 */
export const sameOrigin = (trustProxy: boolean): MiddlewareHandler =>
  async function sameOrigin(c, next) {
    const origin = c.req.header("origin");
    if (origin && !["GET", "HEAD", "OPTIONS"].includes(c.req.method)) {
      const host = (trustProxy && c.req.header("x-forwarded-host")) || c.req.header("host");
      if (originHost(origin) !== host) throw errors.crossOrigin();
    }
    await next();
  };

function originHost(origin: string) {
  try {
    return new URL(origin).host;
  } catch {
    return undefined;
  }
}

/**
 * The public APIs are called from browsers on any origin (a supabase-js app, a static site). They
 * authenticate with a key in a header, never a cookie, so any origin may call them. Requests
 * without an Origin header (servers, scripts) are not from a browser and skip the CORS work.
 */
export const publicApiCors = (): MiddlewareHandler =>
  async function publicApiCors(c, next) {
    if (c.req.header("origin") === undefined) return next();
    if (c.req.method === "OPTIONS") return corsPreflight();
    await next();
    allowBrowsers(c.res.headers);
  };

const CORS_EXPOSED = "Content-Range, X-Request-Id, Retry-After";
const CORS_PREFLIGHT = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "GET, HEAD, POST, PATCH, DELETE, OPTIONS",
  "Access-Control-Allow-Headers": "apikey, x-api-key, authorization, content-type, prefer, accept-profile, content-profile, x-client-info, range, x-request-id",
  "Access-Control-Max-Age": "600",
};

/** The answer to a browser's preflight (any OPTIONS with an Origin) on the public APIs. */
export function corsPreflight() {
  return new Response(null, { status: 204, headers: CORS_PREFLIGHT });
}

/** What any other answer to a browser on the public APIs carries. */
export function allowBrowsers(headers: Headers) {
  headers.set("Access-Control-Allow-Origin", "*");
  headers.set("Access-Control-Expose-Headers", CORS_EXPOSED);
}

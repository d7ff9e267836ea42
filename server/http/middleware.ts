import type { MiddlewareHandler } from "hono";
import { bodyLimit as honoBodyLimit } from "hono/body-limit";
import { getConnInfo } from "hono/bun";
import { randomUUID } from "node:crypto";
import { errors } from "./errors";
import { log } from "../platform/log";

const incomingId = /^[A-Za-z0-9._:-]{1,100}$/;

/** Takes a sane incoming X-Request-Id or makes one; echoes it on every response. */
export const requestId = (): MiddlewareHandler =>
  async function requestId(c, next) {
    const given = c.req.header("x-request-id");
    const id = given && incomingId.test(given) ? given : randomUUID();
    c.set("requestId", id);
    await next();
    c.header("X-Request-Id", id);
  };

/** One JSON line per request. Only method, path (no query string), status, duration and request id. */
export const accessLog = (): MiddlewareHandler =>
  async function accessLog(c, next) {
    const started = performance.now();
    await next();
    log.info("request", {
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round((performance.now() - started) * 10) / 10,
      request_id: c.get("requestId"),
    });
  };

export const bodyLimit = (maxSize: number): MiddlewareHandler =>
  honoBodyLimit({
    maxSize,
    onError: () => {
      throw errors.payloadTooLarge(maxSize);
    },
  });

/** The client's IP: the socket peer, or the first X-Forwarded-For hop when running behind a trusted proxy. */
export const clientIp = (trustProxy: boolean): MiddlewareHandler =>
  async function clientIp(c, next) {
    let ip = "unknown";
    const forwarded = c.req.header("x-forwarded-for");
    if (trustProxy && forwarded) ip = forwarded.split(",")[0]!.trim();
    else {
      try {
        ip = getConnInfo(c).remote.address ?? "unknown";
      } catch {
        // app.request() in unit tests has no socket
      }
    }
    c.set("clientIp", ip);
    await next();
  };

import { describe, expect, it } from "bun:test";
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../context";
import { bodyLimit, clientIp, publicApiCors, requestEnvelope } from "./middleware";
import { errors, parseBody, renderError } from "./errors";
import { setLogSink } from "../platform/log";
import { appendToSuiteLog } from "../test/harness";

function app(trustProxy = false) {
  const a = new Hono<AppEnv>();
  a.use(requestEnvelope(), clientIp(trustProxy), bodyLimit(100));
  a.onError(renderError);
  a.get("/boom", () => {
    throw new Error("secret internals at /srv/x.ts:12");
  });
  a.get("/teapot", () => {
    throw errors.conflict("Already there.");
  });
  a.post("/echo", async (c) => c.json(await parseBody(c, z.object({ n: z.number().int() }))));
  a.get("/ip", (c) => c.text(c.get("clientIp")));
  a.get("/raw", () => new Response("raw"));
  return a;
}

function captureLog<T>(fn: () => Promise<T>) {
  const lines: string[] = [];
  setLogSink((line) => {
    lines.push(line);
    appendToSuiteLog(line);
  });
  return fn().finally(() => setLogSink(appendToSuiteLog)).then((result) => ({ result, lines }));
}

describe("errors", () => {
  it("turns an unexpected exception into a 500 with only the request id", async () => {
    const { result: res, lines } = await captureLog(() => app().request("/boom", { headers: { "x-request-id": "req-500" } }));
    expect(res.status).toBe(500);
    const body = await res.json();
    expect(body).toEqual({ error: { code: "internal_error", message: "Something went wrong on our side.", details: { request_id: "req-500" } } });
    expect(JSON.stringify(body)).not.toContain("secret internals");
    expect(lines.some((l) => l.includes('"unhandled error"') && l.includes("req-500"))).toBe(true);
  });

  it("keeps the status and code of known errors", async () => {
    const res = await app().request("/teapot");
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({ error: { code: "conflict", message: "Already there." } });
  });

  it("reports zod issues with their path", async () => {
    const res = await app().request("/echo", { method: "POST", body: JSON.stringify({ n: 1.5 }), headers: { "content-type": "application/json" } });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: "validation_failed", details: { issues: [{ path: "n" }] } } });
  });
});

describe("bodyLimit", () => {
  it("answers 413 in the JSON shape when the body is too large", async () => {
    const res = await app().request("/echo", { method: "POST", body: JSON.stringify({ n: 1, pad: "x".repeat(200) }), headers: { "content-type": "application/json" } });
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ error: { code: "payload_too_large", message: "The request body is larger than 100 bytes.", details: { limit: 100 } } });
  });

  it("decides by a declared Content-Length, and counts a body sent without one", async () => {
    const big = JSON.stringify({ n: 1, pad: "x".repeat(200) });
    const declared = await app().request("/echo", { method: "POST", body: big, headers: { "content-type": "application/json", "content-length": String(big.length) } });
    expect(declared.status).toBe(413);
    const small = JSON.stringify({ n: 1 });
    const fits = await app().request("/echo", { method: "POST", body: small, headers: { "content-type": "application/json", "content-length": String(small.length) } });
    expect(await fits.json()).toEqual({ n: 1 });
    const streamed = new ReadableStream({ start: (ctl) => (ctl.enqueue(new TextEncoder().encode(big)), ctl.close()) });
    const counted = await app().request("/echo", { method: "POST", body: streamed, headers: { "content-type": "application/json" } });
    expect(counted.status).toBe(413);
  });
});

describe("requestEnvelope", () => {
  it("writes method, path without query, status, ms and request id — no headers", async () => {
    const { lines } = await captureLog(() =>
      app().request("/teapot?token=should-not-appear", { headers: { authorization: "Bearer should-not-appear", "x-request-id": "req-log" } }),
    );
    const line = JSON.parse(lines.find((l) => l.includes("req-log"))!);
    expect(line).toMatchObject({ level: "info", msg: "request", method: "GET", path: "/teapot", status: 409, request_id: "req-log" });
    expect(typeof line.ms).toBe("number");
    expect(lines.join("\n")).not.toContain("should-not-appear");
  });

  it("echoes a sane X-Request-Id, replaces any other, and heads responses a handler built itself", async () => {
    expect((await app().request("/teapot", { headers: { "x-request-id": "abc-1" } })).headers.get("x-request-id")).toBe("abc-1");
    const replaced = (await app().request("/teapot", { headers: { "x-request-id": "bad id\u0001" } })).headers.get("x-request-id");
    expect(replaced).toMatch(/^[0-9a-f-]{36}$/);
    const raw = await app().request("/raw");
    expect(await raw.text()).toBe("raw");
    expect(raw.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect(raw.headers.get("x-frame-options")).toBe("SAMEORIGIN");
  });
});

describe("clientIp", () => {
  it("ignores X-Forwarded-For unless the proxy is trusted, then takes the hop the proxy appended", async () => {
    const headers = { "x-forwarded-for": "198.51.100.1, 203.0.113.9" };
    expect(await (await app(false).request("/ip", { headers })).text()).toBe("unknown");
    expect(await (await app(true).request("/ip", { headers })).text()).toBe("203.0.113.9");
  });

  it("falls back to the socket when the forwarded hop is not an IP address", async () => {
    for (const value of ["x".repeat(8000), "not-an-ip", ""]) {
      expect(await (await app(true).request("/ip", { headers: { "x-forwarded-for": value } })).text()).toBe("unknown");
    }
  });
});

describe("security headers and publicApiCors", () => {
  const site = new Hono();
  site.use(requestEnvelope());
  site.use("/v1/*", publicApiCors());
  site.get("*", (c) => c.json({}));

  it("sends the full set to pages and the admin API, only nosniff to the public APIs", async () => {
    const page = await site.request("/admin/api/me");
    expect(page.headers.get("x-frame-options")).toBe("SAMEORIGIN");
    expect(page.headers.get("strict-transport-security")).toContain("max-age");
    for (const path of ["/v1/db/items", "/rest/v1/items"]) {
      const api = await site.request(path);
      expect(api.headers.get("x-content-type-options")).toBe("nosniff");
      expect(api.headers.get("x-frame-options")).toBeNull();
    }
  });

  it("adds CORS headers only for browsers (requests with an Origin)", async () => {
    expect((await site.request("/v1/db/items")).headers.get("access-control-allow-origin")).toBeNull();
    expect((await site.request("/v1/db/items", { headers: { origin: "https://app.example" } })).headers.get("access-control-allow-origin")).toBe("*");
  });
});

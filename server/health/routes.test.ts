import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import postgres from "postgres";
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startTestServer, type TestServer } from "../test/server";
import { healthRoutes } from "./routes";

describe("GET /health", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it("reports version, Postgres and storage with 200 when all are up", async () => {
    const res = await server.fetch("/health");
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({ status: "ok", version: expect.any(String), postgres: { ok: true, engine: "external" }, storage: { ok: true, driver: "fs" } });
    expect(body.postgres.version).toMatch(/^1[4-9]/);
    expect(body.postgres.extensions).toEqual({ vector: expect.any(Boolean), pg_stat_statements: true });
  });

  it("carries a request id on every response and keeps a sane incoming one", async () => {
    const own = await server.fetch("/health");
    expect(own.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const given = await server.fetch("/health", { headers: { "x-request-id": "trace-123" } });
    expect(given.headers.get("x-request-id")).toBe("trace-123");
    const hostile = await server.fetch("/health", { headers: { "x-request-id": "a b\tc" } });
    expect(hostile.headers.get("x-request-id")).not.toBe("a b\tc");
  });

  // Other GETs are the admin UI's client-side routes (server/ui/routes.test.ts).
  it("answers unknown API routes and non-GETs with the JSON error shape", async () => {
    for (const [method, path] of [["GET", "/v1/no/such/thing"], ["POST", "/no/such/thing"]]) {
      const res = await server.fetch(path!, { method });
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ error: { code: "route_not_found", message: expect.any(String) } });
    }
  });
});

describe("GET /health when storage cannot take writes", () => {
  it("answers 503 with storage.ok false, and 200 again once it can", async () => {
    const server = await startTestServer();
    const root = join(server.ctx.config.dataDir, "storage");
    try {
      // A file where the directory should be: no user can write into it (root ignores permission bits).
      renameSync(root, root + ".away");
      writeFileSync(root, "not a directory");
      const res = await server.fetch("/health");
      expect(res.status).toBe(503);
      expect((await res.json()).storage).toEqual({ ok: false, driver: "fs" });
      rmSync(root);
      renameSync(root + ".away", root);
      expect((await server.fetch("/health")).status).toBe(200);
    } finally {
      await server.stop();
    }
  });
});

describe("GET /health when Postgres is down", () => {
  it("answers 503 with postgres.ok false", async () => {
    const server = await startTestServer();
    await server.ctx.engine.stop();
    const res = await server.fetch("/health");
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ status: "unavailable", postgres: { ok: false, state: "stopped" } });
    await server.stop();
  });
});

describe("GET /health when Postgres hangs", () => {
  it("answers 503 after its own short timeout instead of waiting on the pool", async () => {
    // Accepts TCP connections and never answers: the pool connects, then waits for the server.
    const blackhole = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const server = await startTestServer();
    const sql = postgres({ host: "127.0.0.1", port: blackhole.port, user: "x", password: "x", database: "x", connect_timeout: 30, onnotice: () => {} });
    try {
      const res = await healthRoutes({ ...server.ctx, sql }).request("/health");
      expect(res.status).toBe(503);
      expect((await res.json()).postgres).toMatchObject({ ok: false, state: "running" });
    } finally {
      blackhole.stop(true);
      await sql.end({ timeout: 0 });
      await server.stop();
    }
  });
});

describe("GET /health when S3 hangs", () => {
  it("answers 503 with storage.ok false after the store's own 2 s check, instead of hanging", async () => {
    // Accepts TCP connections and never answers.
    const blackhole = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const server = await startTestServer({
      ATLASHUB_STORAGE: "s3",
      ATLASHUB_S3_ENDPOINT: `http://127.0.0.1:${blackhole.port}`,
      ATLASHUB_S3_FORCE_PATH_STYLE: "true",
      ATLASHUB_S3_ACCESS_KEY_ID: "x",
      ATLASHUB_S3_SECRET_ACCESS_KEY: "y",
    });
    try {
      const started = performance.now();
      const res = await server.fetch("/health", { signal: AbortSignal.timeout(10_000) });
      expect(res.status).toBe(503);
      expect((await res.json()).storage).toEqual({ ok: false, driver: "s3" });
      expect(performance.now() - started).toBeLessThan(5_000);
    } finally {
      await server.stop();
      blackhole.stop(true);
    }
  }, 30_000);
});

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { Hono } from "hono";
import { errors, renderError } from "../http/errors";
import { adminHeaders, startTestServer, type TestServer } from "../test/server";
import { tempDir } from "../test/harness";
import { scanDist, uiFiles } from "./files";
import { acceptsEncoding, serveUi } from "./routes";

// A small Vite-like build: index.html, a hashed script with a gzip sibling, an unhashed icon.
function fakeDist() {
  const dir = tempDir("ui-dist");
  mkdirSync(join(dir, "assets"));
  writeFileSync(join(dir, "index.html"), "<!doctype html><title>AtlasHub</title>");
  writeFileSync(join(dir, "assets/index-abc123.js"), "console.log('hi');".repeat(50));
  writeFileSync(join(dir, "assets/index-abc123.js.gz"), gzipSync("console.log('hi');".repeat(50)));
  writeFileSync(join(dir, "favicon.svg"), "<svg/>");
  return scanDist(dir);
}

describe("serveUi", () => {
  const files = fakeDist();
  const app = new Hono();
  app.notFound((c) => renderError(errors.routeNotFound(), c));
  app.get("/v1/known", (c) => c.json({ ok: true }));
  app.get("/*", serveUi(() => files));
  const get = (path: string, headers: Record<string, string> = {}) => app.request(path, { headers });

  it("lists the build's files by URL path, compressed siblings attached rather than listed", () => {
    expect([...files.keys()]).toEqual(["/assets/index-abc123.js", "/favicon.svg", "/index.html"]);
    expect(files.get("/assets/index-abc123.js")!.gzip).toEndWith("index-abc123.js.gz");
  });

  it("answers index.html for / and for client-side routes, never cached without revalidation, with a CSP", async () => {
    for (const path of ["/", "/projects", "/projects/abcdefghij/storage", "/admin"]) {
      const res = await get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
      expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(res.headers.get("cache-control")).toBe("no-cache");
      expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
      expect(await res.text()).toContain("<title>AtlasHub</title>");
    }
  });

  it("serves hashed assets for a year, immutable, with their type and a strong ETag (304 on a match)", async () => {
    const res = await get("/assets/index-abc123.js");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    const etag = res.headers.get("etag")!;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{22}"$/);
    expect((await get("/assets/index-abc123.js", { "if-none-match": etag })).status).toBe(304);
    const head = await app.request("/assets/index-abc123.js", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String("console.log('hi');".repeat(50).length));
    expect((await get("/favicon.svg")).headers.get("content-type")).toBe("image/svg+xml");
    expect((await get("/favicon.svg")).headers.get("cache-control")).toBe("public, max-age=300");
  });

  it("sends the gzip variant to clients that take it, the plain file to the rest", async () => {
    const zipped = await get("/assets/index-abc123.js", { "accept-encoding": "gzip, deflate" });
    expect(zipped.headers.get("content-encoding")).toBe("gzip");
    expect(zipped.headers.get("vary")).toBe("Accept-Encoding");
    const plain = await get("/assets/index-abc123.js", { "accept-encoding": "gzip;q=0, identity" });
    expect(plain.headers.get("content-encoding")).toBeNull();
    expect(await plain.text()).toStartWith("console.log");
  });

  it("answers a missing asset or file with the JSON 404, not the app (a stale hashed name after an upgrade)", async () => {
    for (const path of ["/assets/index-old999.js", "/robots.txt"]) {
      const res = await get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
      expect(await res.json()).toEqual({ error: { code: "route_not_found", message: expect.any(String) } });
    }
  });

  it("leaves every API prefix to the APIs: unknown routes there stay JSON 404s", async () => {
    for (const path of ["/admin/api/nope", "/v1/nope", "/rest/v1/nope", "/health/x", "/provision/x", "/metrics"]) {
      const res = await get(path);
      expect({ path, status: res.status, type: res.headers.get("content-type") }).toEqual({ path, status: 404, type: "application/json" });
    }
    expect(await (await get("/v1/known")).json()).toEqual({ ok: true });
  });

  it("reads Accept-Encoding with q-values", () => {
    expect(acceptsEncoding("gzip, br", "br")).toBe(true);
    expect(acceptsEncoding("br;q=0, gzip", "br")).toBe(false);
    expect(acceptsEncoding("gzip;q=0.5", "gzip")).toBe(true);
    expect(acceptsEncoding("", "gzip")).toBe(false);
  });
});

describe("the admin UI in the server", () => {
  let server: TestServer;
  let auth: Record<string, string>;
  beforeAll(async () => {
    if (!uiFiles().get("/index.html")) throw new Error("ui/dist is not built: run `npm run build` first");
    server = await startTestServer();
    auth = await adminHeaders(server);
  });
  afterAll(() => server?.stop());

  it("answers client-side routes with index.html and the built script with a long cache", async () => {
    const page = await server.fetch("/projects/abcdefghij/keys");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const html = await page.text();
    const script = /src="(\/assets\/index-[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const js = await server.fetch(script!, { headers: { "accept-encoding": "br, gzip" } });
    expect(js.status).toBe(200);
    expect(js.headers.get("cache-control")).toContain("immutable");
    expect(js.headers.get("content-encoding")).toBe("br");
  });

  it("keeps API errors JSON, signed in or not", async () => {
    for (const [path, headers, status] of [
      ["/admin/api/no-such-thing", auth, 404],
      ["/admin/api/no-such-thing", {}, 401],
      ["/v1/no-such-thing", {}, 404],
      ["/rest/v1", {}, 401],
    ] as const) {
      const res = await server.fetch(path, { headers });
      expect({ path, status: res.status, type: res.headers.get("content-type") }).toEqual({ path, status, type: "application/json" });
    }
    expect((await (await server.fetch("/health")).json()).status).toBe("ok");
  });
});

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { adminHeaders, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret, waitFor } from "../test/harness";
import { deriveSigningKey, signGrant, type UrlGrant } from "../engines/storage/signer";

let server: TestServer;
let auth: Record<string, string>;
let a: { id: string };
let b: { id: string };
let aSecret: { id: string; key: string };
let aPublishable: { id: string; key: string };
let bSecret: { id: string; key: string };
let storageRoot: string;

beforeAll(async () => {
  server = await startTestServer();
  auth = await adminHeaders(server);
  a = await createTestProject(server, auth, "storage-a");
  b = await createTestProject(server, auth, "storage-b");
  aSecret = await createKey(a.id, "secret");
  aPublishable = await createKey(a.id, "publishable");
  bSecret = await createKey(b.id, "secret");
  storageRoot = join(server.ctx.config.dataDir, "storage");
  const pub = await server.fetch(`/admin/api/projects/${a.id}/storage/buckets`, jsonRequest("POST", { name: "public-assets", public: true }, auth));
  expect(pub.status).toBe(201);
});
afterAll(() => server.stop());

async function createKey(projectId: string, kind: "publishable" | "secret") {
  const res = await server.fetch(`/admin/api/projects/${projectId}/keys`, jsonRequest("POST", { name: `${kind} key`, kind }, auth));
  const body = await res.json();
  if (res.status !== 201) throw new Error(`${res.status} ${JSON.stringify(body)}`);
  registerSecret(body.key);
  return body as { id: string; key: string };
}

async function api(method: string, path: string, key: string, body?: unknown) {
  const init: RequestInit = body === undefined ? { method, headers: { "x-api-key": key } } : jsonRequest(method, body, { "x-api-key": key });
  const res = await server.fetch(`/v1/storage${path}`, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** A signed upload URL (its signature registered as a secret for the log scan). */
async function uploadUrl(input: Record<string, unknown>, key = aSecret.key) {
  const res = await api("POST", "/signed-upload", key, { content_type: "application/octet-stream", bucket: "uploads", ...input });
  if (res.status !== 200) throw new Error(`signed-upload: ${res.status} ${JSON.stringify(res.body)}`);
  registerSecret(new URL(res.body.url).searchParams.get("sig")!);
  return res.body as { url: string; method: "PUT"; headers: Record<string, string>; expires_at: string; max_bytes: number };
}

async function downloadUrl(input: Record<string, unknown>, key = aSecret.key) {
  const res = await api("POST", "/signed-download", key, { bucket: "uploads", ...input });
  if (res.status !== 200) throw new Error(`signed-download: ${res.status} ${JSON.stringify(res.body)}`);
  registerSecret(new URL(res.body.url).searchParams.get("sig")!);
  return res.body as { url: string; expires_at: string };
}

async function upload(key: string, data: Uint8Array | string, contentType = "application/octet-stream", bucket = "uploads", apiKey = aSecret.key) {
  const signed = await uploadUrl({ key, content_type: contentType, bucket }, apiKey);
  const res = await fetch(signed.url, { method: "PUT", headers: signed.headers, body: data });
  return { status: res.status, body: await res.json() };
}

const sha256 = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true }) as string[]).filter((p) => statSync(join(dir, p)).isFile()).sort();
}

/** An HTTP/1.1 request written as is to the socket: fetch() would normalise ../ and \ in the path first. */
function rawRequest(requestLine: string, headers: Record<string, string> = {}, body = ""): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(server.port, "127.0.0.1");
    let data = "";
    socket.setEncoding("latin1");
    socket.on("data", (d) => (data += d));
    socket.on("close", () => resolve({ status: Number(data.split(" ")[1]), text: data }));
    socket.on("error", reject);
    const head = Object.entries({ host: `127.0.0.1:${server.port}`, connection: "close", "content-length": String(Buffer.byteLength(body)), ...headers })
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join("");
    socket.write(`${requestLine} HTTP/1.1\r\n${head}\r\n${body}`);
  });
}

/** A URL signed by the server's own key with any grant, e.g. one that expired already. */
function forge(grant: UrlGrant) {
  const key = deriveSigningKey(server.ctx.masterKey);
  const q = new URLSearchParams({ exp: String(grant.expires) });
  if (grant.method === "PUT") {
    q.set("max", String(grant.maxBytes));
    q.set("ct", grant.contentType!);
  }
  if (grant.uploadedBy !== undefined) q.set("by", grant.uploadedBy);
  q.set("sig", signGrant(key, grant));
  return `${server.url}/v1/storage/object/${grant.project}/${grant.bucket}/${grant.key.split("/").map(encodeURIComponent).join("/")}?${q}`;
}

describe("default buckets", () => {
  it("every new project has private and uploads, both private", async () => {
    const res = await server.fetch(`/admin/api/projects/${b.id}/storage/buckets`, { headers: auth });
    expect(res.status).toBe(200);
    expect((await res.json()).items).toEqual([
      { name: "private", public: false, created_at: expect.any(String), objects: 0, bytes: 0 },
      { name: "uploads", public: false, created_at: expect.any(String), objects: 0, bytes: 0 },
    ]);
  });
});

describe("POST /v1/storage/signed-upload", () => {
  it("answers a PUT URL on this server with headers, expiry (10 min by default) and the size limit (50 MB by default)", async () => {
    const before = Date.now();
    const signed = await uploadUrl({ key: "docs/a.txt", content_type: "text/plain" });
    expect(signed).toEqual({ url: expect.any(String), method: "PUT", headers: { "content-type": "text/plain" }, max_bytes: 50 * 1024 * 1024, expires_at: expect.any(String) });
    const url = new URL(signed.url);
    expect(url.origin).toBe(server.url);
    expect(url.pathname).toBe(`/v1/storage/object/${a.id}/uploads/docs/a.txt`);
    expect([...url.searchParams.keys()]).toEqual(["exp", "max", "ct", "by", "sig"]);
    const expires = Date.parse(signed.expires_at);
    expect(expires).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 600_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 601_000);
  });

  it("refuses a publishable key with 403", async () => {
    const res = await api("POST", "/signed-upload", aPublishable.key, { bucket: "uploads", key: "x", content_type: "text/plain" });
    expect(res.status).toBe(403);
  });

  it("answers 401 without a key and 404 for an unknown bucket", async () => {
    expect((await server.fetch("/v1/storage/signed-upload", jsonRequest("POST", { bucket: "uploads", key: "x", content_type: "text/plain" }))).status).toBe(401);
    const res = await api("POST", "/signed-upload", aSecret.key, { bucket: "nope-bucket", key: "x", content_type: "text/plain" });
    expect(res).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
  });

  const invalid: [string, Record<string, unknown>][] = [
    ["a ../ key", { key: "../escape" }],
    ["an absolute key", { key: "/etc/passwd" }],
    ["a backslash key", { key: "a\\..\\b" }],
    ["a fullwidth-dot key", { key: "\uff0e\uff0e/x" }],
    ["a NUL in the key", { key: "a\u0000b" }],
    ["a key over 1024 bytes", { key: "k".repeat(1025) }],
    ["a bad bucket name", { bucket: "../uploads" }],
    ["a content type that is no media type", { content_type: "text/html\r\nx-injected: 1" }],
    ["an expiry beyond 7 days", { expires_in: 7 * 86400 + 1 }],
    ["a zero expiry", { expires_in: 0 }],
    ["max_bytes over the project's limit", { max_bytes: 50 * 1024 * 1024 + 1 }],
  ];
  for (const [name, change] of invalid) {
    it(`answers 400 for ${name}`, async () => {
      const res = await api("POST", "/signed-upload", aSecret.key, { bucket: "uploads", key: "ok", content_type: "text/plain", ...change });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("validation_failed");
    });
  }
});

describe("uploading and downloading through signed URLs", () => {
  for (const size of [0, 1, 5 * 1024 * 1024]) {
    it(`round-trips ${size} bytes with the same sha256, recorded in the metadata`, async () => {
      const data = randomBytes(size);
      const key = `round-trip/${size}.bin`;
      const put = await upload(key, data);
      expect(put).toEqual({
        status: 200,
        body: { bucket: "uploads", key, size, content_type: "application/octet-stream", sha256: sha256(data), uploaded_by: aSecret.id, created_at: expect.any(String), updated_at: expect.any(String) },
      });
      const res = await fetch((await downloadUrl({ key })).url);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-length")).toBe(String(size));
      expect(res.headers.get("etag")).toBe(`"${sha256(data)}"`);
      expect(sha256(new Uint8Array(await res.arrayBuffer()))).toBe(sha256(data));
      const [row] = await server.ctx.sql`select size::int, sha256 from storage_objects where project_id = ${a.id} and key = ${key}`;
      expect(row).toEqual({ size, sha256: sha256(data) });
    });
  }

  it("serves ranges with 206 and Content-Range, suffix ranges, and 416 past the end", async () => {
    await upload("range/digits.txt", "0123456789", "text/plain");
    const { url } = await downloadUrl({ key: "range/digits.txt" });
    const part = await fetch(url, { headers: { range: "bytes=2-5" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe("bytes 2-5/10");
    expect(part.headers.get("content-length")).toBe("4");
    expect(await part.text()).toBe("2345");
    const suffix = await fetch(url, { headers: { range: "bytes=-3" } });
    expect([suffix.status, await suffix.text()]).toEqual([206, "789"]);
    const open = await fetch(url, { headers: { range: "bytes=7-" } });
    expect([open.status, await open.text()]).toEqual([206, "789"]);
    const past = await fetch(url, { headers: { range: "bytes=10-" } });
    expect(past.status).toBe(416);
    expect(past.headers.get("content-range")).toBe("bytes */10");
    expect((await past.json()).error.code).toBe("range_not_satisfiable");
    const stale = await fetch(url, { headers: { range: "bytes=2-5", "if-range": '"not-the-etag"' } });
    expect([stale.status, await stale.text()]).toEqual([200, "0123456789"]);
  });

  it("answers HEAD with the size and no body, and If-None-Match with 304", async () => {
    await upload("head/file.txt", "hello", "text/plain");
    const { url } = await downloadUrl({ key: "head/file.txt" });
    const head = await fetch(url, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe("5");
    expect(await head.text()).toBe("");
    const etag = head.headers.get("etag")!;
    const again = await fetch(url, { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
  });

  it("serves the recorded Content-Type, inline only for types a browser cannot run", async () => {
    await upload("types/photo.png", "png-bytes", "image/png");
    await upload("types/page.html", "<script>alert(1)</script>", "text/html; charset=utf-8");
    await upload("types/naïve file.txt", "text", "text/plain");
    const png = await fetch((await downloadUrl({ key: "types/photo.png" })).url);
    expect(png.headers.get("content-type")).toBe("image/png");
    expect(png.headers.get("content-disposition")).toBe(`inline; filename="photo.png"; filename*=UTF-8''photo.png`);
    const html = await fetch((await downloadUrl({ key: "types/page.html" })).url);
    expect(html.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(html.headers.get("content-disposition")).toStartWith("attachment;");
    expect(html.headers.get("content-security-policy")).toBe("default-src 'none'; sandbox");
    expect(html.headers.get("x-content-type-options")).toBe("nosniff");
    const txt = await fetch((await downloadUrl({ key: "types/naïve file.txt" })).url);
    expect(txt.headers.get("content-disposition")).toBe(`inline; filename="na_ve file.txt"; filename*=UTF-8''na%C3%AFve%20file.txt`);
  });

  it("records an upload only once it is complete: a second upload replaces the first", async () => {
    await upload("replace/me.txt", "first version", "text/plain");
    await upload("replace/me.txt", "second", "text/plain");
    const res = await fetch((await downloadUrl({ key: "replace/me.txt" })).url);
    expect(await res.text()).toBe("second");
    const [row] = await server.ctx.sql`select size::int, created_at < updated_at as replaced from storage_objects where project_id = ${a.id} and key = 'replace/me.txt'`;
    expect(row).toEqual({ size: 6, replaced: true });
  });

  it("lets concurrent uploads to one key end with one of them whole, matching its metadata", async () => {
    const bodies = Array.from({ length: 6 }, (_, n) => new Uint8Array(512 * 1024).fill(n + 1));
    const urls = await Promise.all(bodies.map(() => uploadUrl({ key: "race/same.bin" })));
    const results = await Promise.all(bodies.map((body, n) => fetch(urls[n]!.url, { method: "PUT", headers: urls[n]!.headers, body })));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    const got = new Uint8Array(await (await fetch((await downloadUrl({ key: "race/same.bin" })).url)).arrayBuffer());
    expect(got.length).toBe(512 * 1024);
    expect(new Set(got).size).toBe(1);
    const [row] = await server.ctx.sql`select sha256 from storage_objects where project_id = ${a.id} and key = 'race/same.bin'`;
    expect(row!.sha256).toBe(sha256(got));
    expect(filesUnder(join(storageRoot, a.id, "uploads", "race"))).toEqual(["same.bin"]);
  });

  it("never pairs one version's ETag or Content-Type with another's bytes while the key is overwritten", async () => {
    const versions = [
      { type: "text/a", bytes: new Uint8Array(128 * 1024).fill(0x61) },
      { type: "text/b", bytes: new Uint8Array(128 * 1024).fill(0x62) },
    ];
    expect((await upload("race/versions.bin", versions[0]!.bytes, versions[0]!.type)).status).toBe(200);
    const url = (await downloadUrl({ key: "race/versions.bin" })).url;
    let writing = true;
    const writer = (async () => {
      for (let i = 1; writing; i++) expect((await upload("race/versions.bin", versions[i % 2]!.bytes, versions[i % 2]!.type)).status).toBe(200);
    })();
    const mismatches: string[] = [];
    for (let read = 0; read < 300; read++) {
      const res = await fetch(url);
      const body = new Uint8Array(await res.arrayBuffer());
      const letter = String.fromCharCode(body[0]!);
      if (res.headers.get("etag") !== `"${sha256(body)}"`) mismatches.push(`etag of another version (body ${letter})`);
      if (res.headers.get("content-type") !== `text/${letter}`) mismatches.push(`${res.headers.get("content-type")} with body ${letter}`);
      if (res.headers.get("content-length") !== String(body.length)) mismatches.push(`length ${res.headers.get("content-length")} for ${body.length}`);
    }
    writing = false;
    await writer;
    expect(mismatches).toEqual([]);
  }, 60_000);

  it("adopts the file it finds for a row that names no version (written before versions, or restored)", async () => {
    expect((await upload("adopt/me.txt", "hello", "text/plain")).status).toBe(200);
    const path = join(storageRoot, a.id, "uploads", "adopt", "me.txt");
    // As a restore from a backup would: the same bytes in a new file (another inode).
    writeFileSync(`${path}.copy`, "hello");
    renameSync(`${path}.copy`, path);
    const url = (await downloadUrl({ key: "adopt/me.txt" })).url;
    const res = await fetch(url);
    expect([res.status, await res.text(), res.headers.get("etag")]).toEqual([200, "hello", `"${sha256("hello")}"`]);
    await server.ctx.sql`update storage_objects set file_version = null where project_id = ${a.id} and key = 'adopt/me.txt'`;
    expect((await fetch(url)).status).toBe(200);
    const [row] = await server.ctx.sql`select file_version from storage_objects where project_id = ${a.id} and key = 'adopt/me.txt'`;
    expect(row!.file_version).toMatch(/^\d+-5-\d+$/);
    // Bytes of another size than recorded are not served under the recorded headers.
    writeFileSync(`${path}.copy`, "hello, changed");
    renameSync(`${path}.copy`, path);
    const changed = await fetch(url);
    expect([changed.status, (await changed.json()).error.code]).toEqual([503, "unavailable"]);
  });

  it("answers 409 for a key that is another object's prefix", async () => {
    expect((await upload("nest/leaf", "x")).status).toBe(200);
    const under = await upload("nest/leaf/deeper", "y");
    expect(under).toMatchObject({ status: 409, body: { error: { code: "object_key_conflict" } } });
    const over = await upload("nest", "z");
    expect(over.status).toBe(409);
    expect(filesUnder(join(storageRoot, a.id, "uploads", "nest"))).toEqual(["leaf"]);
  });
  it("lets a failed upload of a/b leave the key a free: 413 then upload, download and delete of a", async () => {
    const signed = await uploadUrl({ key: "blocked/child", max_bytes: 1 });
    const tooLarge = await fetch(signed.url, { method: "PUT", headers: signed.headers, body: new ReadableStream({ start: (c) => (c.enqueue(new Uint8Array(10)), c.close()) }) });
    expect(tooLarge.status).toBe(413);
    expect(existsSync(join(storageRoot, a.id, "uploads", "blocked"))).toBe(false);
    expect((await upload("blocked", "hello")).status).toBe(200);
    expect(await (await fetch((await downloadUrl({ key: "blocked" })).url)).text()).toBe("hello");
    expect((await api("DELETE", "/object", aSecret.key, { bucket: "uploads", key: "blocked" })).status).toBe(204);
  });
});

describe("signed URL checks", () => {
  const grant = (): UrlGrant => ({
    method: "PUT",
    project: a.id,
    bucket: "uploads",
    key: "checks/object.bin",
    expires: Math.floor(Date.now() / 1000) + 600,
    maxBytes: 100,
    contentType: "application/octet-stream",
    uploadedBy: aSecret.id,
  });
  const put = (url: string, body: string | Uint8Array = "payload", contentType = "application/octet-stream") =>
    fetch(url, { method: "PUT", headers: { "content-type": contentType }, body });
  const stored = () => filesUnder(join(storageRoot, a.id, "uploads", "checks"));

  it("answers 403 signature_expired for an expired URL, upload and download", async () => {
    const res = await put(forge({ ...grant(), expires: Math.floor(Date.now() / 1000) - 1 }));
    expect(res.status).toBe(403);
    expect((await res.json()).error.code).toBe("signature_expired");
    await upload("checks/readable.txt", "x");
    const get = await fetch(forge({ method: "GET", project: a.id, bucket: "uploads", key: "checks/readable.txt", expires: Math.floor(Date.now() / 1000) - 1 }));
    expect([get.status, (await get.json()).error.code]).toEqual([403, "signature_expired"]);
    expect(stored()).toEqual(["readable.txt"]);
  });

  it("works until the expiry (control for the tampering below)", async () => {
    const res = await put(forge(grant()));
    expect(res.status).toBe(200);
    await api("DELETE", "/object", aSecret.key, { bucket: "uploads", key: "checks/object.bin" });
  });

  const tampering: [string, (url: URL) => void][] = [
    ["signature", (u) => u.searchParams.set("sig", (u.searchParams.get("sig")![0] === "A" ? "B" : "A") + u.searchParams.get("sig")!.slice(1))],
    ["missing signature", (u) => u.searchParams.delete("sig")],
    ["key", (u) => (u.pathname = u.pathname.replace("object.bin", "other.bin"))],
    ["bucket", (u) => (u.pathname = u.pathname.replace("/uploads/", "/private/"))],
    ["project (another project's id)", (u) => (u.pathname = u.pathname.replace(a.id, b.id))],
    ["expiry", (u) => u.searchParams.set("exp", String(Number(u.searchParams.get("exp")) + 3600))],
    ["expiry that is not a number", (u) => u.searchParams.set("exp", "soon")],
    ["size limit", (u) => u.searchParams.set("max", "1000000000")],
    ["missing size limit", (u) => u.searchParams.delete("max")],
    ["content type", (u) => u.searchParams.set("ct", "text/html")],
    ["uploading key", (u) => u.searchParams.set("by", bSecret.id)],
  ];
  for (const [what, tamper] of tampering) {
    it(`answers 403 invalid_signature for a tampered ${what}, and stores nothing`, async () => {
      const url = new URL(forge(grant()));
      tamper(url);
      const res = await put(url.toString(), "payload", url.searchParams.get("ct") ?? "application/octet-stream");
      expect(res.status).toBe(403);
      expect((await res.json()).error.code).toBe(what === "missing signature" ? "signature_required" : "invalid_signature");
      expect(stored()).not.toContain("object.bin");
      expect(stored()).not.toContain("other.bin");
      expect(filesUnder(join(storageRoot, b.id))).toEqual([]);
    });
  }

  it("refuses upload and download URLs with 403 signing_key_revoked once the key that asked for them is revoked", async () => {
    const doomed = await createKey(a.id, "secret");
    await upload("checks/readable-by-doomed.txt", "kept");
    const putUrl = await uploadUrl({ key: "checks/after-revoke.txt", content_type: "text/plain" }, doomed.key);
    const getUrl = await downloadUrl({ key: "checks/readable-by-doomed.txt" }, doomed.key);
    expect(new URL(getUrl.url).searchParams.get("by")).toBe(doomed.id);
    expect(await (await fetch(getUrl.url)).text()).toBe("kept");
    expect((await server.fetch(`/admin/api/projects/${a.id}/keys/${doomed.id}`, { method: "DELETE", headers: auth })).status).toBe(204);
    const res = await put(putUrl.url, "too late", "text/plain");
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: { code: "signing_key_revoked", message: expect.any(String) } });
    expect(stored()).not.toContain("after-revoke.txt");
    const get = await fetch(getUrl.url);
    expect([get.status, (await get.json()).error.code]).toEqual([403, "signing_key_revoked"]);
  });

  it("lets a rotated key's URLs work through its grace period, and not after it", async () => {
    const old = await createKey(a.id, "secret");
    const signed = await uploadUrl({ key: "checks/grace.txt", content_type: "text/plain" }, old.key);
    const rotated = await server.fetch(`/admin/api/projects/${a.id}/keys/${old.id}/rotate`, jsonRequest("POST", { grace_hours: 1 }, auth));
    expect(rotated.status).toBe(201);
    registerSecret((await rotated.json()).key);
    expect((await put(signed.url, "in grace", "text/plain")).status).toBe(200);
    await server.ctx.sql`update api_keys set expires_at = now() - interval '1 second' where id = ${old.id}`;
    const after = await put(signed.url, "after grace", "text/plain");
    expect([after.status, (await after.json()).error.code]).toEqual([403, "signing_key_revoked"]);
    const res = await server.fetch(`/admin/api/projects/${a.id}/storage/buckets/uploads/objects/checks/grace.txt`, { headers: auth });
    expect(await res.text()).toBe("in grace");
  });

  it("answers 403 to another project's signed download URL pointed at this project's object", async () => {
    await upload("checks/secret.txt", "a's data");
    const [bObject] = [await upload("checks/secret.txt", "b's data", "application/octet-stream", "uploads", bSecret.key)];
    expect(bObject.status).toBe(200);
    const bUrl = new URL((await downloadUrl({ key: "checks/secret.txt" }, bSecret.key)).url);
    expect(await (await fetch(bUrl)).text()).toBe("b's data");
    bUrl.pathname = bUrl.pathname.replace(b.id, a.id);
    const res = await fetch(bUrl);
    expect([res.status, (await res.json()).error.code]).toEqual([403, "invalid_signature"]);
  });

  it("keeps each project's keys in its own namespace: B's key never reaches A's objects", async () => {
    await upload("checks/only-a.txt", "a");
    expect((await api("POST", "/signed-download", bSecret.key, { bucket: "uploads", key: "checks/only-a.txt" })).status).toBe(404);
    expect((await api("DELETE", "/object", bSecret.key, { bucket: "uploads", key: "checks/only-a.txt" })).status).toBe(404);
    expect(stored()).toContain("only-a.txt");
  });

  it("answers 413 when Content-Length is over the signed size, before reading the body", async () => {
    const res = await put(forge(grant()), new Uint8Array(101));
    expect(res.status).toBe(413);
    expect((await res.json()).error.code).toBe("payload_too_large");
    expect(stored()).not.toContain("object.bin");
  });

  it("stops a chunked body without Content-Length at the signed size with 413, keeping nothing", async () => {
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ === 64) return controller.close();
        controller.enqueue(new Uint8Array(64));
      },
    });
    const outcome = await fetch(forge(grant()), { method: "PUT", headers: { "content-type": "application/octet-stream" }, body, duplex: "half" } as RequestInit).then(
      (res) => res.status,
      () => "connection closed",
    );
    // The server may answer 413 or close the connection while the client is still sending; either way nothing is kept.
    expect([413, "connection closed"]).toContain(outcome);
    expect(stored()).not.toContain("object.bin");
    expect(stored().filter((f) => f.includes(".ah-tmp-"))).toEqual([]);
  });

  it("answers 429 to a ninth upload in flight through one URL, and past the project's 32 in flight", async () => {
    const held: { finish: () => void; response: Promise<Response> }[] = [];
    const holdUpload = (signed: { url: string; headers: Record<string, string> }) => {
      let controller!: ReadableStreamDefaultController<Uint8Array>;
      const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
      controller.enqueue(new Uint8Array(1));
      const response = fetch(signed.url, { method: "PUT", headers: signed.headers, body, duplex: "half" } as RequestInit);
      held.push({ finish: () => controller.close(), response });
      return response;
    };
    const tempFiles = () => (readdirSync(join(storageRoot, a.id, "uploads"), { recursive: true }) as string[]).filter((p) => p.includes(".ah-tmp-")).length;
    try {
      const one = await uploadUrl({ key: "held/one" });
      for (let i = 0; i < 8; i++) holdUpload(one);
      await waitFor("eight uploads in flight", () => tempFiles() === 8);
      const ninth = await fetch(one.url, { method: "PUT", headers: one.headers, body: "x" });
      expect([ninth.status, ninth.headers.get("retry-after"), (await ninth.json()).error.code]).toEqual([429, "1", "rate_limited"]);
      for (let i = 1; i < 4; i++) {
        const signed = await uploadUrl({ key: `held/k${i}` });
        for (let j = 0; j < 8; j++) holdUpload(signed);
      }
      await waitFor("32 uploads in flight", () => tempFiles() === 32);
      const fresh = await uploadUrl({ key: "held/fresh" });
      expect((await fetch(fresh.url, { method: "PUT", headers: fresh.headers, body: "x" })).status).toBe(429);
    } finally {
      for (const h of held) h.finish();
    }
    expect((await Promise.all(held.map((h) => h.response))).map((r) => r.status)).toEqual(held.map(() => 200));
    const later = await uploadUrl({ key: "held/fresh" });
    expect((await fetch(later.url, { method: "PUT", headers: later.headers, body: "x" })).status).toBe(200);
  }, 30_000);

  it("answers 415 when the upload's Content-Type is not the signed one", async () => {
    const res = await put(forge(grant()), "payload", "text/html");
    expect(res.status).toBe(415);
    expect(await res.json()).toEqual({ error: { code: "content_type_mismatch", message: expect.any(String), details: { expected: "application/octet-stream" } } });
  });

  it("accepts the signed Content-Type in another case and spacing", async () => {
    const signed = await uploadUrl({ key: "checks/typed.json", content_type: "application/json; charset=utf-8" });
    const res = await fetch(signed.url, { method: "PUT", headers: { "content-type": "Application/JSON;charset=UTF-8" }, body: "{}" });
    expect(res.status).toBe(200);
  });

  describe("path traversal in the URL answers 400 and writes nothing outside the bucket", () => {
    // Encoded forms survive URL parsing and reach the key rules: 400 invalid_object_key.
    const encoded: [string, string][] = [
      ["encoded %2e%2e%2f", "%2e%2e%2f%2e%2e%2fescaped.txt"],
      ["mixed-case %2E%2E%2F", "%2E%2E%2Fescaped.txt"],
      ["encoded backslashes", "..%5c..%5cescaped.txt"],
      ["fullwidth dots", "%EF%BC%8E%EF%BC%8E/escaped.txt"],
      ["one-dot leaders", "%E2%80%A4%E2%80%A4/escaped.txt"],
      ["a two-dot leader", "%E2%80%A5/escaped.txt"],
      ["a fullwidth solidus", "a%EF%BC%8F..%EF%BC%8Fescaped.txt"],
      ["an encoded NUL", "escaped%00.txt"],
      ["a broken escape", "escaped%zz.txt"],
      ["an overlong UTF-8 dot", "%C0%AE%C0%AE/escaped.txt"],
    ];
    // Literal dot segments and backslashes are resolved by Bun's URL parsing before the app sees the
    // path: what arrives names no object (400 invalid_object_path) or no route at all (404).
    const normalised: [string, string, number, string][] = [
      ["../ segments", "../../../escaped.txt", 404, "route_not_found"],
      ["encoded dots with a real slash", "%2e%2e/%2e%2e/escaped.txt", 400, "invalid_object_path"],
      ["backslashes", "..\\..\\escaped.txt", 400, "invalid_object_path"],
    ];
    const cases: [string, string, number, string][] = [...encoded.map(([n, k]): [string, string, number, string] => [n, k, 400, "invalid_object_key"]), ...normalised];
    for (const [name, keyPath, status, code] of cases) {
      it(`${name} → ${status} ${code}`, async () => {
        const before = filesUnder(server.ctx.config.dataDir);
        for (const method of ["PUT", "GET"]) {
          const res = await rawRequest(`${method} /v1/storage/object/${a.id}/uploads/${keyPath}?exp=9999999999&sig=x`, { "content-type": "text/plain" }, method === "PUT" ? "escaped" : "");
          expect({ method, status: res.status }).toEqual({ method, status });
          expect(res.text).toContain(code);
        }
        expect(filesUnder(server.ctx.config.dataDir)).toEqual(before);
      });
    }

    it("a dot segment inside the bucket resolves to another key, which the signature does not cover (403)", async () => {
      const signed = await uploadUrl({ key: "inside/target.txt" });
      const url = new URL(signed.url);
      const res = await rawRequest(`PUT ${url.pathname.replace("inside/", "inside/x/../")}${url.search}`, { "content-type": "application/octet-stream" }, "data");
      expect(res.status).toBe(200); // x/.. resolves back to the signed key
      const other = await rawRequest(`PUT ${url.pathname.replace("inside/target.txt", "inside/../elsewhere.txt")}${url.search}`, { "content-type": "application/octet-stream" }, "data");
      expect(other.status).toBe(403);
      expect(existsSync(join(storageRoot, a.id, "uploads", "elsewhere.txt"))).toBe(false);
    });
  });
});

describe("public buckets and publishable keys", () => {
  it("serve GET without a signature from a public bucket only", async () => {
    expect((await upload("logo.png", "public png", "image/png", "public-assets")).status).toBe(200);
    const res = await server.fetch(`/v1/storage/object/${a.id}/public-assets/logo.png`);
    expect([res.status, await res.text()]).toEqual([200, "public png"]);
    expect(res.headers.get("cache-control")).toBe("public, no-cache");
    await upload("private.txt", "private");
    const denied = await server.fetch(`/v1/storage/object/${a.id}/uploads/private.txt`);
    expect([denied.status, (await denied.json()).error.code]).toEqual([403, "signature_required"]);
    // An unknown bucket or project looks the same as a private one.
    expect((await server.fetch(`/v1/storage/object/${a.id}/no-such-bucket/private.txt`)).status).toBe(403);
    expect((await server.fetch(`/v1/storage/object/zzzzzzzzzz/uploads/private.txt`)).status).toBe(403);
  });

  it("publishable keys get download URLs and listings for public buckets only", async () => {
    const ok = await api("POST", "/signed-download", aPublishable.key, { bucket: "public-assets", key: "logo.png" });
    expect(ok.status).toBe(200);
    registerSecret(new URL(ok.body.url).searchParams.get("sig")!);
    expect((await api("POST", "/signed-download", aPublishable.key, { bucket: "uploads", key: "private.txt" })).status).toBe(403);
    expect((await api("GET", "/list?bucket=public-assets", aPublishable.key)).status).toBe(200);
    expect((await api("GET", "/list?bucket=uploads", aPublishable.key)).status).toBe(403);
    expect((await api("DELETE", "/object", aPublishable.key, { bucket: "public-assets", key: "logo.png" })).status).toBe(403);
  });

  it("answers 404 for a download URL of an object that does not exist", async () => {
    expect((await api("POST", "/signed-download", aSecret.key, { bucket: "uploads", key: "never/uploaded" })).status).toBe(404);
  });
});

describe("GET /v1/storage/list", () => {
  it("pages through keys in byte order with a cursor, under a prefix", async () => {
    const keys = ["list/a", "list/b/1", "list/b/2", "list/c", "list/é", "list_other", "lisz"];
    for (const key of keys) await upload(key, key);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await api("GET", `/list?bucket=uploads&prefix=list/&limit=2${cursor ? `&cursor=${cursor}` : ""}`, aSecret.key);
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...res.body.items.map((o: { key: string }) => o.key));
      cursor = res.body.next_cursor;
      pages++;
    } while (cursor);
    expect(seen).toEqual(["list/a", "list/b/1", "list/b/2", "list/c", "list/é"]);
    expect(pages).toBe(3);
    const one = await api("GET", "/list?bucket=uploads&prefix=list/b/", aSecret.key);
    expect(one.body).toEqual({ items: [expect.objectContaining({ key: "list/b/1", size: 8, content_type: "application/octet-stream" }), expect.objectContaining({ key: "list/b/2" })], next_cursor: null });
  });

  it("treats % and _ in a prefix as plain characters", async () => {
    await upload("pct%_x", "1");
    await upload("pctAB", "2");
    const res = await api("GET", `/list?bucket=uploads&prefix=${encodeURIComponent("pct%_")}`, aSecret.key);
    expect(res.body.items.map((o: { key: string }) => o.key)).toEqual(["pct%_x"]);
  });

  it("answers 400 for a limit over 1000, a forged cursor or a missing bucket", async () => {
    expect((await api("GET", "/list?bucket=uploads&limit=1001", aSecret.key)).status).toBe(400);
    expect((await api("GET", "/list?bucket=uploads&cursor=%25%25", aSecret.key)).status).toBe(400);
    expect((await api("GET", `/list?bucket=uploads&cursor=${Buffer.from("../x").toString("base64url")}`, aSecret.key)).status).toBe(400);
    expect((await api("GET", "/list", aSecret.key)).status).toBe(400);
    expect((await api("GET", "/list?bucket=nope-nope", aSecret.key)).status).toBe(404);
  });
});

describe("DELETE /v1/storage/object", () => {
  it("removes the object's row and file; a second delete is 404", async () => {
    await upload("gone/soon.txt", "bye");
    const res = await api("DELETE", "/object", aSecret.key, { bucket: "uploads", key: "gone/soon.txt" });
    expect(res.status).toBe(204);
    expect(existsSync(join(storageRoot, a.id, "uploads", "gone"))).toBe(false);
    expect(await server.ctx.sql`select 1 from storage_objects where project_id = ${a.id} and key = 'gone/soon.txt'`).toEqual([]);
    expect((await api("DELETE", "/object", aSecret.key, { bucket: "uploads", key: "gone/soon.txt" })).status).toBe(404);
    expect((await api("DELETE", "/object", aSecret.key, { bucket: "uploads", key: "../x" })).status).toBe(400);
  });
});

describe("CORS for browsers using signed URLs", () => {
  it("answers the preflight of a cross-origin PUT, and exposes ETag and Content-Range", async () => {
    const pre = await server.fetch(`/v1/storage/object/${a.id}/uploads/x`, {
      method: "OPTIONS",
      headers: { origin: "https://app.example.com", "access-control-request-method": "PUT", "access-control-request-headers": "content-type" },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe("*");
    expect(pre.headers.get("access-control-allow-methods")).toContain("PUT");
    expect(pre.headers.get("access-control-allow-headers")).toContain("content-type");
    await upload("cors/file.txt", "cors!", "text/plain");
    const res = await fetch((await downloadUrl({ key: "cors/file.txt" })).url, { headers: { origin: "https://app.example.com", range: "bytes=0-1" } });
    expect(res.status).toBe(206);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("access-control-expose-headers")).toContain("ETag");
    expect(res.headers.get("content-length")).toBe("2");
  });
});

describe("admin API", () => {
  const admin = (method: string, path: string, body?: unknown) =>
    server.fetch(`/admin/api/projects/${a.id}/storage${path}`, body === undefined ? { method, headers: auth } : jsonRequest(method, body, auth));

  it("creates, lists, updates and deletes buckets", async () => {
    expect((await admin("POST", "/buckets", { name: "reports" })).status).toBe(201);
    expect((await admin("POST", "/buckets", { name: "reports" })).status).toBe(409);
    expect((await admin("POST", "/buckets", { name: "No Way" })).status).toBe(400);
    expect((await admin("PATCH", "/buckets/reports", { public: true })).status).toBe(200);
    const list = (await (await admin("GET", "/buckets")).json()).items;
    expect(list.find((x: { name: string }) => x.name === "reports")).toMatchObject({ public: true, objects: 0 });
    expect((await admin("DELETE", "/buckets/reports")).status).toBe(204);
    expect((await admin("DELETE", "/buckets/reports")).status).toBe(404);
    const [entry] = await server.ctx.sql`select action from audit_log where action like 'storage.bucket.%' order by id desc limit 1`;
    expect(entry!.action).toBe("storage.bucket.delete");
  });

  it("uploads, lists, downloads and deletes objects; a bucket with objects needs force", async () => {
    expect((await admin("POST", "/buckets", { name: "admin-files" })).status).toBe(201);
    const put = await server.fetch(`/admin/api/projects/${a.id}/storage/buckets/admin-files/objects/dir/report%20v1.csv`, {
      method: "PUT",
      headers: { ...auth, "content-type": "text/csv" },
      body: "a,b\n1,2\n",
    });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ bucket: "admin-files", key: "dir/report v1.csv", size: 8, content_type: "text/csv", uploaded_by: null });
    const list = await (await admin("GET", "/buckets/admin-files/objects?prefix=dir/")).json();
    expect(list.items.map((o: { key: string }) => o.key)).toEqual(["dir/report v1.csv"]);
    const get = await admin("GET", "/buckets/admin-files/objects/dir/report%20v1.csv");
    expect([get.status, await get.text()]).toEqual([200, "a,b\n1,2\n"]);
    expect((await admin("DELETE", "/buckets/admin-files")).status).toBe(409);
    expect((await admin("DELETE", "/buckets/admin-files/objects/dir/report%20v1.csv")).status).toBe(204);
    expect((await admin("GET", "/buckets/admin-files/objects/dir/report%20v1.csv")).status).toBe(404);
    await server.fetch(`/admin/api/projects/${a.id}/storage/buckets/admin-files/objects/again.txt`, { method: "PUT", headers: { ...auth, "content-type": "text/plain" }, body: "x" });
    expect((await admin("DELETE", "/buckets/admin-files?force=true")).status).toBe(204);
    expect(existsSync(join(storageRoot, a.id, "admin-files"))).toBe(false);
    expect(await server.ctx.sql`select 1 from storage_objects where project_id = ${a.id} and bucket = 'admin-files'`).toEqual([]);
  });

  it("accepts an admin upload larger than the 1 MB API body limit, up to the project's upload limit", async () => {
    const data = randomBytes(2 * 1024 * 1024);
    const put = await server.fetch(`/admin/api/projects/${a.id}/storage/buckets/uploads/objects/admin/big.bin`, { method: "PUT", headers: auth, body: data });
    expect(put.status).toBe(200);
    expect((await put.json()).sha256).toBe(sha256(data));
  });

  it("sets a project's own upload limit, which signed uploads then follow", async () => {
    const set = await server.fetch(`/admin/api/projects/${b.id}/storage/settings`, jsonRequest("PUT", { max_upload_bytes: 10 }, auth));
    expect(await set.json()).toEqual({ max_upload_bytes: 10, effective_max_upload_bytes: 10 });
    expect((await api("POST", "/signed-upload", bSecret.key, { bucket: "uploads", key: "x", content_type: "text/plain", max_bytes: 11 })).status).toBe(400);
    const signed = await uploadUrl({ key: "limited.txt", content_type: "text/plain" }, bSecret.key);
    expect(signed.max_bytes).toBe(10);
    expect((await fetch(signed.url, { method: "PUT", headers: signed.headers, body: "eleven byte" })).status).toBe(413);
    await server.fetch(`/admin/api/projects/${b.id}/storage/settings`, jsonRequest("PUT", { max_upload_bytes: null }, auth));
  });

  it("needs an admin", async () => {
    expect((await server.fetch(`/admin/api/projects/${a.id}/storage/buckets`)).status).toBe(401);
  });
});

describe("purging a project", () => {
  it("deletes its objects from disk and its buckets and objects from the control plane", async () => {
    const p = await createTestProject(server, auth, "storage-purge");
    const key = await createKey(p.id, "secret");
    expect((await upload("doomed/file.txt", "bye", "text/plain", "uploads", key.key)).status).toBe(200);
    expect(filesUnder(join(storageRoot, p.id))).toEqual(["uploads/doomed/file.txt"]);
    const res = await server.fetch(`/admin/api/projects/${p.id}?purge=true`, jsonRequest("DELETE", { confirm: "storage-purge" }, auth));
    expect(res.status).toBe(200);
    expect(existsSync(join(storageRoot, p.id))).toBe(false);
    expect(await server.ctx.sql`select 1 from storage_objects where project_id = ${p.id}`).toEqual([]);
    expect(await server.ctx.sql`select 1 from storage_buckets where project_id = ${p.id}`).toEqual([]);
    expect(filesUnder(join(storageRoot, a.id)).length).toBeGreaterThan(0); // other projects keep theirs
  });
});

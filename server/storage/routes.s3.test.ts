// /v1/storage with the s3 driver against s3rver: presigned URLs straight to S3, completion by the
// app or by the next listing, the signed size enforced after the fact, admin uploads staged through
// AtlasHub, purge removing the project's S3 bucket.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { HeadObjectCommand, ListBucketsCommand, S3Client } from "@aws-sdk/client-s3";
import { adminHeaders, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret } from "../test/harness";
import { S3RVER_CREDENTIALS, startS3rver } from "../test/s3rver";

let s3: Awaited<ReturnType<typeof startS3rver>>;
let raw: S3Client;
let server: TestServer;
let auth: Record<string, string>;
let project: { id: string };
let secret: string;
const prefix = `t${randomBytes(3).toString("hex")}-`;

beforeAll(async () => {
  s3 = await startS3rver();
  raw = new S3Client({ endpoint: s3.endpoint, region: "us-east-1", forcePathStyle: true, credentials: S3RVER_CREDENTIALS });
  server = await startTestServer({
    ATLASHUB_STORAGE: "s3",
    ATLASHUB_S3_ENDPOINT: s3.endpoint,
    ATLASHUB_S3_FORCE_PATH_STYLE: "true",
    ATLASHUB_S3_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    ATLASHUB_S3_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    ATLASHUB_S3_BUCKET_PREFIX: prefix,
  });
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "storage-s3");
  const res = await server.fetch(`/admin/api/projects/${project.id}/keys`, jsonRequest("POST", { name: "app", kind: "secret" }, auth));
  secret = (await res.json()).key;
  registerSecret(secret);
});
afterAll(async () => {
  await server.stop();
  await s3.close();
});

async function api(method: string, path: string, body?: unknown) {
  const res = await server.fetch(`/v1/storage${path}`, body === undefined ? { method, headers: { "x-api-key": secret } } : jsonRequest(method, body, { "x-api-key": secret }));
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function signUpload(key: string, extra: Record<string, unknown> = {}) {
  const res = await api("POST", "/signed-upload", { bucket: "uploads", key, content_type: "text/plain", ...extra });
  expect(res.status).toBe(200);
  return res.body as { url: string; headers: Record<string, string>; max_bytes: number };
}

/** Size of what a presigned PUT URL left in staging, undefined when nothing is there. */
const inStaging = (url: string) => {
  const [, Bucket, ...key] = new URL(url).pathname.split("/");
  return raw.send(new HeadObjectCommand({ Bucket, Key: key.map(decodeURIComponent).join("/") })).then(
    (h) => h.ContentLength,
    () => undefined,
  );
};

const inS3 = (key: string) =>
  raw.send(new HeadObjectCommand({ Bucket: `${prefix}${project.id}`, Key: `uploads/${key}` })).then(
    (h) => h.ContentLength,
    () => undefined,
  );

describe("/v1/storage with the s3 driver", () => {
  it("reports the s3 store in /health", async () => {
    const res = await server.fetch("/health");
    expect((await res.json()).storage).toEqual({ ok: true, driver: "s3" });
  });

  it("signs uploads as presigned S3 URLs; complete records the object; downloads are presigned too", async () => {
    const signed = await signUpload("docs/hello.txt");
    const url = new URL(signed.url);
    expect(url.origin).toBe(s3.endpoint);
    expect(url.pathname).toMatch(new RegExp(`^/${prefix}${project.id}/\\.ah-pending/uploads/[0-9a-f-]{36}$`)); // staging, not the key
    expect(url.searchParams.get("X-Amz-SignedHeaders")).toBe("content-type;host");
    registerSecret(url.searchParams.get("X-Amz-Signature")!);
    expect((await fetch(signed.url, { method: "PUT", headers: signed.headers, body: "hello via s3" })).status).toBe(200);

    expect(await server.ctx.sql`select 1 from storage_objects where project_id = ${project.id} and key = 'docs/hello.txt'`).toEqual([]);
    const done = await api("POST", "/complete", { bucket: "uploads", key: "docs/hello.txt" });
    expect(done).toEqual({
      status: 200,
      body: { bucket: "uploads", key: "docs/hello.txt", size: 12, content_type: "text/plain", sha256: null, uploaded_by: expect.any(String), created_at: expect.any(String), updated_at: expect.any(String) },
    });
    expect((await api("POST", "/complete", { bucket: "uploads", key: "docs/hello.txt" })).status).toBe(200); // again: the same object

    const down = await api("POST", "/signed-download", { bucket: "uploads", key: "docs/hello.txt" });
    expect(new URL(down.body.url).origin).toBe(s3.endpoint);
    const res = await fetch(down.body.url);
    expect([res.status, await res.text()]).toEqual([200, "hello via s3"]);
  });

  it("answers complete with 409 before the object arrived and 404 for a key never signed", async () => {
    await signUpload("later.txt");
    expect((await api("POST", "/complete", { bucket: "uploads", key: "later.txt" })).status).toBe(409);
    expect((await api("POST", "/complete", { bucket: "uploads", key: "never.txt" })).status).toBe(404);
  });

  it("never records an upload through the URL of a key revoked since it signed it (403 signing_key_revoked)", async () => {
    const created = await (await server.fetch(`/admin/api/projects/${project.id}/keys`, jsonRequest("POST", { name: "doomed", kind: "secret" }, auth))).json();
    registerSecret(created.key);
    const res = await server.fetch("/v1/storage/signed-upload", jsonRequest("POST", { bucket: "uploads", key: "revoked.txt", content_type: "text/plain" }, { "x-api-key": created.key }));
    const signed = (await res.json()) as { url: string; headers: Record<string, string> };
    registerSecret(new URL(signed.url).searchParams.get("X-Amz-Signature")!);
    expect((await server.fetch(`/admin/api/projects/${project.id}/keys/${created.id}`, { method: "DELETE", headers: auth })).status).toBe(204);
    // S3 takes the bytes (it cannot ask AtlasHub); completing them is what is refused.
    expect((await fetch(signed.url, { method: "PUT", headers: signed.headers, body: "too late" })).status).toBe(200);
    const done = await api("POST", "/complete", { bucket: "uploads", key: "revoked.txt" });
    expect([done.status, done.body.error.code]).toEqual([403, "signing_key_revoked"]);
    expect(await inS3("revoked.txt")).toBeUndefined();
    expect(await inStaging(signed.url)).toBeUndefined();
    expect(await server.ctx.sql`select 1 from storage_objects where project_id = ${project.id} and key = 'revoked.txt'`).toEqual([]);
  });

  it("records an upload nobody completed when the bucket is next listed", async () => {
    const signed = await signUpload("listed/found.txt");
    await fetch(signed.url, { method: "PUT", headers: signed.headers, body: "found" });
    const list = await api("GET", "/list?bucket=uploads&prefix=listed/");
    expect(list.body.items).toEqual([expect.objectContaining({ key: "listed/found.txt", size: 5, content_type: "text/plain" })]);
    expect(await inS3("listed/found.txt")).toBe(5);
    // The signing stays until its URL expires (the URL works until then), marked as recorded.
    const [pending] = await server.ctx.sql`select completed_at from storage_pending_uploads where key = 'listed/found.txt'`;
    expect(pending!.completed_at).toBeInstanceOf(Date);
  });

  it("takes the least recently checked signings first at each listing, so unused ones never starve an upload that arrived", async () => {
    expect((await server.fetch(`/admin/api/projects/${project.id}/storage/buckets`, jsonRequest("POST", { name: "starve" }, auth))).status).toBe(201);
    for (let i = 0; i < 45; i++) await signUpload(`unused-${String(i).padStart(2, "0")}`, { bucket: "starve" });
    const real = await signUpload("starve/real.txt", { bucket: "starve" });
    await fetch(real.url, { method: "PUT", headers: real.headers, body: "arrived" });
    const checkedCount = async () =>
      (await server.ctx.sql`select count(*)::int as n from storage_pending_uploads where bucket = 'starve' and checked_at is not null`)[0]!.n;
    const listed = async () => (await api("GET", "/list?bucket=starve")).body.items.map((o: { key: string }) => o.key);
    expect(await listed()).toEqual([]); // 20 of 46 looked at, the oldest first
    expect(await checkedCount()).toBe(20);
    expect(await listed()).toEqual([]);
    expect(await checkedCount()).toBe(40);
    expect(await listed()).toEqual(["starve/real.txt"]); // the rest, the real one among them
  });

  it("answers 400 for a key that fits AtlasHub's 1024 bytes but not S3's once the bucket prefix is added", async () => {
    const key = ["a", "b", "c", "d"].map((c) => c.repeat(254)).join("/"); // 1019 bytes; with "uploads/" 1027
    const res = await api("POST", "/signed-upload", { bucket: "uploads", key, content_type: "text/plain" });
    expect([res.status, res.body.error.code]).toEqual([400, "invalid_object_key"]);
    const admin = await server.fetch(`/admin/api/projects/${project.id}/storage/buckets/uploads/objects/${key}`, { method: "PUT", headers: auth, body: "x" });
    expect(admin.status).toBe(400);
  });

  it("forgets a signed upload an hour after its URL expired (an upload may still be arriving until then)", async () => {
    await signUpload("abandoned.txt");
    const pending = async () => (await server.ctx.sql`select checked_at from storage_pending_uploads where key = 'abandoned.txt'`)[0];
    await server.ctx.sql`update storage_pending_uploads set expires_at = now() - interval '1 second' where key = 'abandoned.txt'`;
    // Listings take 20 signings each, the least recently checked first: list until this one was looked at.
    for (let i = 0; i < 10 && !(await pending())?.checked_at; i++) await api("GET", "/list?bucket=uploads");
    expect((await pending())?.checked_at).toBeInstanceOf(Date); // looked at, and kept: may still be arriving
    await server.ctx.sql`update storage_pending_uploads set expires_at = now() - interval '61 minutes', checked_at = null where key = 'abandoned.txt'`;
    for (let i = 0; i < 10 && (await pending()); i++) await api("GET", "/list?bucket=uploads");
    expect(await pending()).toBeUndefined();
  });

  it("deletes an upload over the signed size at completion and answers 413; it never reaches the key", async () => {
    const signed = await signUpload("big.txt", { max_bytes: 4 });
    await fetch(signed.url, { method: "PUT", headers: signed.headers, body: "more than four" });
    expect(await inS3("big.txt")).toBeUndefined();
    expect(await inStaging(signed.url)).toBe(14);
    const done = await api("POST", "/complete", { bucket: "uploads", key: "big.txt" });
    expect([done.status, done.body.error.code]).toEqual([413, "payload_too_large"]);
    expect(await inStaging(signed.url)).toBeUndefined();
    expect(await inS3("big.txt")).toBeUndefined();
    expect(await server.ctx.sql`select 1 from storage_objects where key = 'big.txt'`).toEqual([]);
  });

  it("checks every use of a presigned URL: one used again after completion with too many bytes never reaches the key", async () => {
    const signed = await signUpload("reuse.txt", { max_bytes: 10 });
    expect((await fetch(signed.url, { method: "PUT", headers: signed.headers, body: "12345" })).status).toBe(200);
    expect((await api("POST", "/complete", { bucket: "uploads", key: "reuse.txt" })).body.size).toBe(5);
    expect((await fetch(signed.url, { method: "PUT", headers: signed.headers, body: "x".repeat(100_000) })).status).toBe(200); // S3 takes it, in staging
    expect(await inS3("reuse.txt")).toBe(5);
    const again = await api("POST", "/complete", { bucket: "uploads", key: "reuse.txt" });
    expect([again.status, again.body.error.code]).toEqual([413, "payload_too_large"]);
    expect((await api("GET", "/list?bucket=uploads&prefix=reuse")).body.items).toEqual([expect.objectContaining({ key: "reuse.txt", size: 5 })]);
    expect(await inS3("reuse.txt")).toBe(5);
    // A use within the limit is recorded as the new version.
    await fetch(signed.url, { method: "PUT", headers: signed.headers, body: "1234567" });
    expect((await api("POST", "/complete", { bucket: "uploads", key: "reuse.txt" })).body.size).toBe(7);
    expect(await inS3("reuse.txt")).toBe(7);
  });

  it("keeps a re-signed key's upload for its own signing: a listing before the PUT does not record the old object in its place", async () => {
    const first = await signUpload("old.txt", { max_bytes: 100 });
    await fetch(first.url, { method: "PUT", headers: first.headers, body: "old object" });
    expect((await api("POST", "/complete", { bucket: "uploads", key: "old.txt" })).status).toBe(200);
    const second = await signUpload("old.txt", { max_bytes: 20 });
    await api("GET", "/list?bucket=uploads&prefix=old"); // before the client's PUT
    expect((await api("POST", "/complete", { bucket: "uploads", key: "old.txt" })).status).toBe(409); // not arrived yet
    expect((await fetch(second.url, { method: "PUT", headers: second.headers, body: "y".repeat(50_000) })).status).toBe(200);
    const done = await api("POST", "/complete", { bucket: "uploads", key: "old.txt" });
    expect([done.status, done.body.error.code]).toEqual([413, "payload_too_large"]);
    expect(await inS3("old.txt")).toBe(10);
    expect(await server.ctx.sql`select size from storage_objects where project_id = ${project.id} and key = 'old.txt'`).toEqual([{ size: "10" }]);
  });

  it("keeps the object and its row when a re-upload over the signed size is refused", async () => {
    const first = await signUpload("keep.txt", { max_bytes: 10 });
    await fetch(first.url, { method: "PUT", headers: first.headers, body: "good" });
    expect((await api("POST", "/complete", { bucket: "uploads", key: "keep.txt" })).status).toBe(200);
    const second = await signUpload("keep.txt", { max_bytes: 4 });
    await fetch(second.url, { method: "PUT", headers: second.headers, body: "way too large" });
    expect((await api("POST", "/complete", { bucket: "uploads", key: "keep.txt" })).status).toBe(413);
    expect(await inS3("keep.txt")).toBe(4);
    expect(await server.ctx.sql`select size from storage_objects where project_id = ${project.id} and key = 'keep.txt'`).toEqual([{ size: "4" }]);
    const down = await api("POST", "/signed-download", { bucket: "uploads", key: "keep.txt" });
    const res = await fetch(down.body.url);
    expect([res.status, await res.text()]).toEqual([200, "good"]);
  });

  it("refuses with 415 an upload that arrived with another Content-Type than signed (S3 checks it too)", async () => {
    const signed = await signUpload("typed.txt");
    await fetch(signed.url, { method: "PUT", headers: { "content-type": "text/html" }, body: "<script>" }); // s3rver does not check signatures
    const done = await api("POST", "/complete", { bucket: "uploads", key: "typed.txt" });
    expect([done.status, done.body.error.code]).toEqual([415, "content_type_mismatch"]);
    expect(await inS3("typed.txt")).toBeUndefined();
    expect(await inStaging(signed.url)).toBeUndefined();
  });

  it("lets every signing of one key work until it expires, each use recorded when completed", async () => {
    const first = await signUpload("twice.txt");
    const second = await signUpload("twice.txt");
    await fetch(second.url, { method: "PUT", headers: second.headers, body: "second" });
    expect((await api("POST", "/complete", { bucket: "uploads", key: "twice.txt" })).body.size).toBe(6);
    await fetch(first.url, { method: "PUT", headers: first.headers, body: "first, later" });
    expect((await api("POST", "/complete", { bucket: "uploads", key: "twice.txt" })).body.size).toBe(12);
    expect(await inS3("twice.txt")).toBe(12);
    expect(await inStaging(first.url)).toBeUndefined();
    expect(await inStaging(second.url)).toBeUndefined();
  });

  it("stores admin uploads through AtlasHub in S3 (staged locally first), and deletes them there", async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const put = await server.fetch(`/admin/api/projects/${project.id}/storage/buckets/uploads/objects/admin/blob.bin`, { method: "PUT", headers: auth, body: data });
    expect(put.status).toBe(200);
    expect((await put.json()).sha256).toBe(createHash("sha256").update(data).digest("hex"));
    expect(await inS3("admin/blob.bin")).toBe(data.length);
    const get = await server.fetch(`/admin/api/projects/${project.id}/storage/buckets/uploads/objects/admin/blob.bin`, { headers: { ...auth, range: "bytes=0-9" } });
    expect(get.status).toBe(206);
    expect(new Uint8Array(await get.arrayBuffer())).toEqual(new Uint8Array(data.subarray(0, 10)));
    expect((await api("DELETE", "/object", { bucket: "uploads", key: "admin/blob.bin" })).status).toBe(204);
    expect(await inS3("admin/blob.bin")).toBeUndefined();
  });

  it("removes the project's S3 bucket when the project is purged", async () => {
    const doomed = await createTestProject(server, auth, "storage-s3-purge");
    const put = await server.fetch(`/admin/api/projects/${doomed.id}/storage/buckets/private/objects/x.txt`, { method: "PUT", headers: { ...auth, "content-type": "text/plain" }, body: "x" });
    expect(put.status).toBe(200);
    const names = async () => (await raw.send(new ListBucketsCommand({}))).Buckets!.map((b) => b.Name);
    expect(await names()).toContain(`${prefix}${doomed.id}`);
    const res = await server.fetch(`/admin/api/projects/${doomed.id}?purge=true`, jsonRequest("DELETE", { confirm: "storage-s3-purge" }, auth));
    expect(res.status).toBe(200);
    expect(await names()).not.toContain(`${prefix}${doomed.id}`);
    expect(await names()).toContain(`${prefix}${project.id}`);
  });
});

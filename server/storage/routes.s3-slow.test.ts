// The s3 driver when S3 is slow or down. An upload through AtlasHub (admin API, CLI) is sent to S3
// before the transaction that records it, so a slow link to S3 holds neither a control-plane
// connection nor the key's lock (before, the whole PutObject ran inside it: 60 s of it met the
// idle-in-transaction limit). An S3 that does not answer is a 503 storage_unavailable, not a 500.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { randomBytes } from "node:crypto";
import { connect, createServer, type Socket } from "node:net";
import { HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { adminHeaders, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret } from "../test/harness";
import { S3RVER_CREDENTIALS, startS3rver } from "../test/s3rver";

const HOLD_MS = 3_000;
let s3: Awaited<ReturnType<typeof startS3rver>>;
let server: TestServer;
let auth: Record<string, string>;
let project: { id: string };
const prefix = `s${randomBytes(3).toString("hex")}-`;
const sockets: Socket[] = [];
let holding: () => void = () => {};

// Between AtlasHub and s3rver: holds the body of every PUT that carries one for HOLD_MS, a slow link.
const proxy = createServer((client) => {
  const upstream = connect(Number(new URL(s3.endpoint).port), "127.0.0.1");
  sockets.push(client, upstream);
  client.on("data", (data) => {
    const text = data.toString("latin1");
    const headerEnd = data.indexOf("\r\n\r\n");
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text)?.[1] ?? 0);
    if (text.startsWith("PUT ") && length > 0 && headerEnd >= 0) {
      upstream.write(data.subarray(0, headerEnd + 4));
      client.pause();
      holding();
      setTimeout(() => {
        upstream.write(data.subarray(headerEnd + 4));
        client.resume();
      }, HOLD_MS);
      return;
    }
    upstream.write(data);
  });
  upstream.on("data", (data) => client.write(data));
  for (const s of [client, upstream]) s.on("error", () => {});
  client.on("close", () => upstream.destroy());
  upstream.on("close", () => client.destroy());
});

beforeAll(async () => {
  s3 = await startS3rver();
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  server = await startTestServer({
    ATLASHUB_STORAGE: "s3",
    ATLASHUB_S3_ENDPOINT: `http://127.0.0.1:${(proxy.address() as { port: number }).port}`,
    ATLASHUB_S3_FORCE_PATH_STYLE: "true",
    ATLASHUB_S3_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    ATLASHUB_S3_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    ATLASHUB_S3_BUCKET_PREFIX: prefix,
  });
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "storage-s3-slow");
});
afterAll(async () => {
  await server.stop();
  for (const s of sockets) s.destroy();
  proxy.close();
  await s3.close();
});

describe("admin uploads with the s3 driver over a slow link", () => {
  it("send the bytes to S3 outside the recording transaction: no key lock and no transaction held meanwhile", async () => {
    const held = new Promise<void>((resolve) => (holding = resolve));
    const url = `/admin/api/projects/${project.id}/storage/buckets/uploads/objects/slow.bin`;
    const upload = server.fetch(url, { method: "PUT", headers: { ...auth, "content-type": "application/octet-stream" }, body: "payload" });
    await held;
    const locks = await server.ctx.sql`
      select count(*)::int as n from pg_locks
      where locktype = 'advisory' and classid::int = hashtext('atlashub.object') and objid::int = hashtext(${`${project.id}/uploads/slow.bin`})`;
    expect(locks).toEqual([{ n: 0 }]);
    const open = await server.ctx.sql`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and state like 'idle in transaction%' and pid <> pg_backend_pid()`;
    expect(open).toEqual([{ n: 0 }]);
    // The key is not locked: a delete answers at once (nothing recorded yet).
    const started = performance.now();
    expect((await server.fetch(url, { method: "DELETE", headers: auth })).status).toBe(404);
    expect(performance.now() - started).toBeLessThan(HOLD_MS / 2);

    const res = await upload;
    expect([res.status, (await res.json()).size]).toEqual([200, 7]);
    const raw = new S3Client({ endpoint: s3.endpoint, region: "us-east-1", forcePathStyle: true, credentials: S3RVER_CREDENTIALS });
    expect((await raw.send(new HeadObjectCommand({ Bucket: `${prefix}${project.id}`, Key: "uploads/slow.bin" }))).ContentLength).toBe(7);
  }, 30_000);
});

describe("the API with the s3 driver when S3 does not answer", () => {
  it("answers 503 storage_unavailable with Retry-After, and listings from the control plane still work", async () => {
    const down = await startTestServer({
      ATLASHUB_STORAGE: "s3",
      ATLASHUB_S3_ENDPOINT: "http://127.0.0.1:1",
      ATLASHUB_S3_FORCE_PATH_STYLE: "true",
      ATLASHUB_S3_ACCESS_KEY_ID: "x",
      ATLASHUB_S3_SECRET_ACCESS_KEY: "y",
    });
    try {
      const admin = await adminHeaders(down);
      const p = await createTestProject(down, admin, "storage-s3-down");
      const key = (await (await down.fetch(`/admin/api/projects/${p.id}/keys`, jsonRequest("POST", { name: "app", kind: "secret" }, admin))).json()).key;
      registerSecret(key);
      const sign = await down.fetch("/v1/storage/signed-upload", jsonRequest("POST", { bucket: "uploads", key: "a.txt", content_type: "text/plain" }, { "x-api-key": key }));
      expect([sign.status, sign.headers.get("retry-after"), (await sign.json()).error.code]).toEqual([503, "5", "storage_unavailable"]);
      const put = await down.fetch(`/admin/api/projects/${p.id}/storage/buckets/uploads/objects/a.txt`, { method: "PUT", headers: admin, body: "x" });
      expect([put.status, (await put.json()).error.code]).toEqual([503, "storage_unavailable"]);
      const list = await down.fetch("/v1/storage/list?bucket=uploads", { headers: { "x-api-key": key } });
      expect([list.status, (await list.json()).items]).toEqual([200, []]);
    } finally {
      await down.stop();
    }
  }, 30_000);
});

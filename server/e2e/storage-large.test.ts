// A 200 MB object through the fs driver's signed URLs, against the compiled binary in its own
// process: the upload and the download must stream, so the AtlasHub process's peak memory (VmHWM,
// reset before each transfer) must not grow by anything near the object's size.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { join } from "node:path";
import type postgres from "postgres";
import { registerSecret } from "../test/harness";
import { peakGrowth, spawnAtlasHub, stopAtlasHubsAfterTests, type AtlasHubProcess } from "../test/binary";
import { binaryTestSetup } from "../test/binaryProject";

stopAtlasHubsAfterTests();

const SIZE = 200 * 1024 * 1024;
const CHUNK = 256 * 1024;
// What streaming costs (socket buffers, the batch being written, code paged in on first use) does
// not grow with the object: here 14–19 MB for the upload (each chunk freed once written), 0 for the
// download (sendfile). The bound is issue 6's target for a 256 MB upload.
const MAX_GROWTH = 32 * 1024 * 1024;

const { env, dataDir, post, ...setup } = binaryTestSetup("storage-large", { ATLASHUB_STORAGE_MAX_UPLOAD: String(SIZE) });
let hub: AtlasHubProcess;
let control: postgres.Sql;
let apiKey: string;

beforeAll(async () => {
  hub = spawnAtlasHub({ dataDir, env, lifetime: "file" });
  await hub.waitHealthy(200, 30_000);
  control = setup.controlPlane();
  const admin = await setup.adminHeaders(control);
  const project = await post("/admin/api/projects", admin, { name: "large-objects" });
  for (const c of Object.values(project.credentials) as { password: string }[]) registerSecret(c.password);
  apiKey = (await post(`/admin/api/projects/${project.id}/keys`, admin, { name: "app", kind: "secret" })).key;
  registerSecret(apiKey);
});
afterAll(async () => {
  await control?.end();
});

/** SIZE pseudo-random bytes, made as the upload pulls them, hashed on the way. */
function generatedBody() {
  const block = randomBytes(CHUNK);
  const hash = createHash("sha256");
  let sent = 0;
  let digest: string | undefined;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent === SIZE) return controller.close();
      const chunk = new Uint8Array(block);
      new DataView(chunk.buffer).setFloat64(0, sent); // every chunk differs
      hash.update(chunk);
      controller.enqueue(chunk);
      sent += CHUNK;
    },
  });
  return { stream, digest: () => (digest ??= hash.digest("hex")) };
}

describe("a 200 MB object through signed URLs (compiled binary)", () => {
  it("round-trips with the same sha256 while the server's peak memory grows by less than 32 MB each way", async () => {
    const up = await post("/v1/storage/signed-upload", { "x-api-key": apiKey }, { bucket: "uploads", key: "large/200mb.bin", content_type: "application/octet-stream" });
    registerSecret(new URL(up.url).searchParams.get("sig")!);
    const body = generatedBody();
    const upload = await peakGrowth(hub.pid, async () => {
      const res = await fetch(up.url, { method: "PUT", headers: { ...up.headers, "content-length": String(SIZE) }, body: body.stream, duplex: "half" } as RequestInit);
      return { status: res.status, json: await res.json() };
    });
    expect(upload.result.status).toBe(200);
    expect(upload.result.json).toMatchObject({ size: SIZE, sha256: body.digest() });
    const project = upload.result.json.key && (await control`select project_id from storage_objects where key = 'large/200mb.bin'`)[0]!.project_id;
    expect(statSync(join(dataDir, "storage", project, "uploads", "large", "200mb.bin")).size).toBe(SIZE);

    const down = await post("/v1/storage/signed-download", { "x-api-key": apiKey }, { bucket: "uploads", key: "large/200mb.bin" });
    registerSecret(new URL(down.url).searchParams.get("sig")!);
    const download = await peakGrowth(hub.pid, async () => {
      const res = await fetch(down.url);
      const hash = createHash("sha256");
      let size = 0;
      for await (const chunk of res.body!) {
        hash.update(chunk);
        size += chunk.byteLength;
      }
      return { status: res.status, length: res.headers.get("content-length"), size, sha256: hash.digest("hex") };
    });
    expect(download.result).toEqual({ status: 200, length: String(SIZE), size: SIZE, sha256: body.digest() });

    const mb = (n: number) => Math.round(n / 1024 / 1024);
    console.log(`AtlasHub peak memory growth: upload ${mb(upload.growth)} MB, download ${mb(download.growth)} MB`);
    expect(upload.growth).toBeLessThan(MAX_GROWTH);
    expect(download.growth).toBeLessThan(MAX_GROWTH);
  });
});

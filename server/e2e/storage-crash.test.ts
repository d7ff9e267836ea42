// kill -9 of the compiled binary in the middle of an upload through a signed URL: the object never
// becomes visible (no file under its key, no metadata row), and the next start removes the partial
// temp file.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type postgres from "postgres";
import { registerSecret, waitFor } from "../test/harness";
import { spawnAtlasHub, stopAtlasHubsAfterTests } from "../test/binary";
import { binaryTestSetup } from "../test/binaryProject";

stopAtlasHubsAfterTests();

const { env, dataDir, url, post, ...setup } = binaryTestSetup("storage-crash");
let control: postgres.Sql;
let admin: Record<string, string>;

beforeAll(async () => {
  const first = spawnAtlasHub({ dataDir, env, lifetime: "file" });
  await first.waitHealthy(200, 30_000);
  expect(await first.stop()).toBe(0);
  control = setup.controlPlane();
  admin = await setup.adminHeaders(control);
});
afterAll(async () => {
  await control?.end();
});

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true }) as string[]).filter((p) => statSync(join(dir, p)).isFile()).sort();
}

describe("kill -9 during an upload (compiled binary)", () => {
  it("leaves no visible object, and the restart removes the temp file", async () => {
    const hub = spawnAtlasHub({ dataDir, env });
    await hub.waitHealthy(200, 30_000);
    const project = await post("/admin/api/projects", admin, { name: "crash-upload" });
    for (const c of Object.values(project.credentials) as { password: string }[]) registerSecret(c.password);
    const { key } = await post(`/admin/api/projects/${project.id}/keys`, admin, { name: "app", kind: "secret" });
    registerSecret(key);
    const signed = await post("/v1/storage/signed-upload", { "x-api-key": key }, { bucket: "uploads", key: "crash/victim.bin", content_type: "application/octet-stream" });
    registerSecret(new URL(signed.url).searchParams.get("sig")!);

    // 4 MiB, then the client goes quiet with 16 MiB announced: the server is mid-body when it dies.
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent === 16) return new Promise<void>(() => {});
        controller.enqueue(new Uint8Array(256 * 1024).fill(sent++));
      },
    });
    const upload = fetch(signed.url, { method: "PUT", headers: { ...signed.headers, "content-length": String(16 * 1024 * 1024) }, body, duplex: "half" } as RequestInit).catch((err) => err);

    const bucketDir = join(dataDir, "storage", project.id, "uploads");
    const temp = await waitFor("a partial temp file on disk", () => {
      const found = filesUnder(bucketDir).find((f) => f.includes(".ah-tmp-"));
      return found && statSync(join(bucketDir, found)).size >= 1024 * 1024 ? found : undefined;
    });
    hub.kill("SIGKILL");
    expect(await hub.exited).toBe(137);
    expect(await upload).toBeInstanceOf(Error);

    expect(filesUnder(bucketDir)).toEqual([temp]);
    expect(await control`select 1 from storage_objects where project_id = ${project.id}`).toEqual([]);

    const restarted = spawnAtlasHub({ dataDir, env });
    await restarted.waitHealthy(200, 30_000);
    expect(filesUnder(join(dataDir, "storage"))).toEqual([]);
    expect(restarted.output()).toContain("removed partial uploads left by a previous run");
    const list = await fetch(url(`/v1/storage/list?bucket=uploads`), { headers: { "x-api-key": key } });
    expect(await list.json()).toEqual({ items: [], next_cursor: null });

    // And the same URL still works for a complete upload after the restart.
    const retry = await fetch(signed.url, { method: "PUT", headers: signed.headers, body: "whole" });
    expect(retry.status).toBe(200);
    expect(filesUnder(bucketDir)).toEqual(["crash/victim.bin"]);
  });
});

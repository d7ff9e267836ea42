// kill -9 while a backup is dumped, completed, verified or deleted: after a restart no half backup is
// listed as complete, nothing it wrote is left in the backup store, and no scratch database remains.
// Uses the compiled binary (ATLASHUB_TEST_CRASH_AT makes it SIGKILL itself at a named point).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { registerSecret, waitFor } from "../test/harness";
import { spawnAtlasHub, stopAtlasHubsAfterTests } from "../test/binary";
import { binaryTestSetup } from "../test/binaryProject";

stopAtlasHubsAfterTests();

// Small parts: the dump below is cut into several, so a crash can come between two of them.
const { env, dataDir, url, ...setup } = binaryTestSetup("backup-crash", { ATLASHUB_BACKUP_PART_BYTES: "65536" });
const cluster = setup.cluster(2);
let control: postgres.Sql;
let headers: Record<string, string>;
let project: { id: string };

beforeAll(async () => {
  const first = spawnAtlasHub({ dataDir, env, lifetime: "file" });
  await first.waitHealthy(200, 30_000);
  control = setup.controlPlane(2);
  headers = await setup.adminHeaders(control);
  const created = await setup.post("/admin/api/projects", headers, { name: "crash-backups" });
  for (const c of Object.values(created.credentials) as { password: string }[]) registerSecret(c.password);
  project = created;
  const owner = postgres(created.credentials.owner.connection_string, { max: 1, onnotice: () => {} });
  // Incompressible rows: a dump of about 400 KB.
  await owner`create table blobs (id int primary key, b bytea)`;
  await owner`insert into blobs select g, decode(string_agg(md5(g::text || x::text), ''), 'hex') from generate_series(1, 200) g, generate_series(1, 120) x group by g`;
  await owner.end();
  const put = await fetch(url(`/admin/api/projects/${project.id}/storage/buckets/uploads/objects/a.txt`), {
    method: "PUT",
    headers: { ...headers, "content-type": "text/plain" },
    body: "file in the backup",
  });
  expect(put.status).toBe(200);
  expect(await first.stop()).toBe(0);
});
afterAll(async () => {
  await control?.end();
  await cluster.end();
});

/** Starts atlashub set to die at `point`, makes the request that leads there, and waits for the SIGKILL. */
async function crashDuring(point: string, method: string, path: string, extraEnv: Record<string, string> = {}) {
  const doomed = spawnAtlasHub({ dataDir, env: { ...env, ...extraEnv, ATLASHUB_TEST_CRASH_AT: point } });
  await doomed.waitHealthy(200, 30_000);
  const res = await fetch(url(path), { method, headers }).catch(() => undefined);
  expect(await doomed.exited).toBe(137);
  return res && res.status < 300 && res.status !== 204 ? ((await res.json().catch(() => undefined)) as { id?: string } | undefined) : undefined;
}

async function restart() {
  const hub = spawnAtlasHub({ dataDir, env });
  await hub.waitHealthy(200, 30_000);
  return hub;
}

const backupDir = (backupId: string) => join(dataDir, "backups", project.id, `b${backupId.replaceAll("-", "")}`);
const backupRow = async (id: string) => (await control`select status, failure_reason, verify_error, verified_at from backups where id = ${id}`)[0];
const scratchExists = async (id: string) => (await cluster`select 1 from pg_database where datname = ${`ah_verify_${id.replaceAll("-", "")}`}`).length > 0;

describe("kill -9 during a backup", () => {
  for (const point of ["backup:during-dump", "backup:after-dump", "backup:before-complete"]) {
    it(`at ${point}: the restarted server fails the backup and deletes what it wrote`, async () => {
      const started = await crashDuring(point, "POST", `/admin/api/projects/${project.id}/backups`);
      expect(started?.id).toBeDefined();
      const id = started!.id!;
      expect((await backupRow(id))!.status).toBe("running");
      const hub = await restart();
      await waitFor("the reconciler to fail the backup", async () => (await backupRow(id))!.status === "failed", 30_000);
      expect((await backupRow(id))!.failure_reason).toBe("The AtlasHub process running the backup stopped before it finished.");
      expect(existsSync(backupDir(id))).toBe(false);
      const listed = await (await fetch(url(`/admin/api/projects/${project.id}/backups`), { headers })).json();
      expect(listed.items.find((b: { id: string }) => b.id === id).status).toBe("failed");
      // The project can be backed up again at once (the one-running-backup rule no longer holds it).
      const again = await setup.post(`/admin/api/projects/${project.id}/backups`, headers, {});
      await waitFor("the new backup to be verified", async () => (await backupRow(again.id))!.status === "verified", 30_000);
      await hub.stop();
    }, 90_000);
  }
});

describe("kill -9 during verification and deletion", () => {
  it("records a verification cut short and drops its scratch database", async () => {
    const started = await crashDuring("verify:after-create", "POST", `/admin/api/projects/${project.id}/backups`);
    const id = started!.id!;
    expect(await scratchExists(id)).toBe(true);
    const hub = await restart();
    await waitFor("the reconciler to record the verification", async () => (await backupRow(id))!.verify_error !== null, 30_000);
    expect(await backupRow(id)).toMatchObject({ status: "completed", verify_error: "The AtlasHub process verifying the backup stopped before it finished." });
    expect(await scratchExists(id)).toBe(false);
    expect(existsSync(backupDir(id))).toBe(true); // the backup itself is whole and can be verified again
    const res = await fetch(url(`/admin/api/projects/${project.id}/backups/${id}/verify`), { method: "POST", headers });
    expect(res.status).toBe(202);
    await waitFor("the backup to be verified", async () => (await backupRow(id))!.status === "verified", 30_000);
    await hub.stop();
  }, 90_000);

  it("finishes a delete cut short", async () => {
    const hub = await restart();
    const backup = await setup.post(`/admin/api/projects/${project.id}/backups`, headers, {});
    await waitFor("the backup to be verified", async () => (await backupRow(backup.id))!.status === "verified", 30_000);
    await hub.stop();
    await crashDuring("backup:deleting", "DELETE", `/admin/api/projects/${project.id}/backups/${backup.id}`);
    expect((await backupRow(backup.id))!.status).toBe("deleting");
    const after = await restart();
    await waitFor("the reconciler to finish the delete", async () => (await backupRow(backup.id)) === undefined, 30_000);
    expect(existsSync(backupDir(backup.id))).toBe(false);
    await after.stop();
  }, 90_000);
});

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { adminHeaders, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { backupObject, restoreBucket } from "./store";
import { fileEntries, saveLiveFiles, applyBackupFiles } from "./restoreFiles";
import { reconcileRestores } from "./reconciler";
import type { RestoreRow } from "./restore";

let server: TestServer;
let auth: Record<string, string>;
let project: any;
let backup: any;
const sha = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");

beforeAll(async () => {
  server = await startTestServer({ ATLASHUB_BACKUP_VERIFY: "false" });
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "files-src");
  await api("POST", "/storage/buckets", { name: "media", public: true });
  await put("uploads/a.txt", "A as backed up");
  await put("uploads/b.txt", "B, deleted after the backup");
  await put("private/c.bin", Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251)));
  await put("media/m.png", "M", "image/png");
  const started = await api("POST", "/backups");
  await server.ctx.backups.settled(started.body.id);
  backup = (await api("GET", `/backups/${started.body.id}`)).body;
  expect(backup).toMatchObject({ status: "completed", files_count: 4 });
});
afterAll(() => server.stop());

async function api(method: string, path: string, body?: unknown) {
  const res = await server.fetch(`/admin/api/projects/${project.id}${path}`, body === undefined ? { method, headers: auth } : jsonRequest(method, body, auth));
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function put(path: string, bytes: string | Buffer, type = "application/octet-stream") {
  const res = await server.fetch(`/admin/api/projects/${project.id}/storage/buckets/${path.replace("/", "/objects/")}`, { method: "PUT", headers: { ...auth, "content-type": type }, body: bytes });
  expect(res.status).toBe(200);
}

/** What the project's files are: every object's key, type and sha256 of the bytes served, and the buckets' public flags. */
async function files() {
  const rows = await server.ctx.sql<{ bucket: string; key: string; content_type: string; sha256: string }[]>`
    select bucket, key, content_type, sha256 from storage_objects where project_id = ${project.id} order by bucket, key`;
  const objects: Record<string, string> = {};
  for (const row of rows) {
    const res = await server.fetch(`/admin/api/projects/${project.id}/storage/buckets/${row.bucket}/objects/${row.key}`, { headers: auth });
    const served = sha(new Uint8Array(await res.arrayBuffer()));
    expect(served).toBe(row.sha256);
    objects[`${row.bucket}/${row.key}`] = `${row.content_type} ${served}`;
  }
  const buckets = Object.fromEntries((await server.ctx.sql`select name, public from storage_buckets where project_id = ${project.id} order by name`).map((b) => [b.name, b.public]));
  return { objects, buckets };
}

/** The files the backup lists, as files() answers them. */
async function backedUp() {
  const objects: Record<string, string> = {};
  for await (const e of fileEntries(server.ctx, backupObject.fileList(project.id, backup.id))) objects[`${e.bucket}/${e.key}`] = `${e.content_type} ${e.sha256}`;
  return objects;
}

/** Changes, deletions and additions since the backup. */
async function changeFiles(tag: string) {
  await put("uploads/a.txt", `A changed ${tag}`);
  await server.fetch(`/admin/api/projects/${project.id}/storage/buckets/uploads/objects/b.txt`, { method: "DELETE", headers: auth });
  await put("uploads/d.txt", `D added ${tag}`);
  await api("PATCH", "/storage/buckets/media", { public: false });
  await api("POST", "/storage/buckets", { name: "later", public: false });
  await put("later/x.txt", `X ${tag}`);
}

async function restoreReplace() {
  const res = await api("POST", `/backups/${backup.id}/restore`, { mode: "replace", confirm: "files-src" });
  expect(res.status).toBe(202);
  await server.ctx.backups.settled(res.body.id);
  return (await api("GET", `/restores/${res.body.id}`)).body;
}

const savedCopyExists = (restoreId: string) => existsSync(join(server.ctx.config.dataDir, "backups", project.id, restoreBucket(restoreId)));

describe("replace restore with files", () => {
  let before: Awaited<ReturnType<typeof files>>;
  let restored: any;

  it("makes the project's files the backup's: changed ones back, deleted ones again, added ones gone", async () => {
    await changeFiles("1");
    before = await files();
    expect(Object.keys(before.objects)).toEqual(["later/x.txt", "media/m.png", "private/c.bin", "uploads/a.txt", "uploads/d.txt"]);
    restored = await restoreReplace();
    expect(restored).toMatchObject({ status: "finished", failure_reason: null, files_restored: 4 });
    const after = await files();
    expect(after.objects).toEqual(await backedUp());
    expect(after.buckets).toMatchObject({ media: true, private: false, uploads: false });
    expect(savedCopyExists(restored.id)).toBe(true);
  }, 60_000);

  it("rolls back the files with the database: the set from before the restore, copy dropped", async () => {
    await put("uploads/e.txt", "written after the restore");
    const res = await api("POST", "/restore/rollback");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: restored.id, status: "rolled_back" });
    expect(await files()).toEqual(before);
    expect(savedCopyExists(restored.id)).toBe(false);
  }, 60_000);

  it("fails without changing the live files when a backed-up file is missing, putting back what it had changed", async () => {
    const entries: { n: number; key: string }[] = [];
    for await (const e of fileEntries(server.ctx, backupObject.fileList(project.id, backup.id))) entries.push(e);
    // The last file listed: the others are stored over the live ones before it is found missing.
    const last = entries.at(-1)!;
    const location = backupObject.file(project.id, backup.id, last.n);
    const kept = await server.ctx.backups.store.get(location);
    const bytes = new Uint8Array(await new Response(kept!.body as Blob).arrayBuffer());
    await server.ctx.backups.store.delete(location);
    try {
      const now = await files();
      const failed = await restoreReplace();
      expect(failed.status).toBe("failed");
      expect(failed.failure_reason).toContain("missing from the backup store");
      expect(await files()).toEqual(now);
      expect(savedCopyExists(failed.id)).toBe(false);
    } finally {
      const staged = await server.ctx.backups.store.put(location, new Blob([bytes]).stream() as ReadableStream<Uint8Array>, { maxBytes: bytes.length });
      await staged.commit();
    }
  }, 60_000);
});

describe("a rollback of a project that is not ready", () => {
  it("is 409 and changes nothing: neither the files nor the database (the files alone put back would not match the data)", async () => {
    const restored = await restoreReplace();
    expect(restored.status).toBe("finished");
    const now = await files();
    expect((await server.fetch(`/admin/api/projects/${project.id}`, { method: "DELETE", headers: auth })).status).toBe(200);
    try {
      const res = await api("POST", "/restore/rollback");
      expect(res.status).toBe(409);
      expect(res.body.error.message).toContain("deleted");
      const [row] = await server.ctx.sql`select status, files_state from restores where id = ${restored.id}`;
      expect(row).toEqual({ status: "finished", files_state: "applied" });
    } finally {
      expect((await server.fetch(`/admin/api/projects/${project.id}/restore`, { method: "POST", headers: auth })).status).toBe(200);
    }
    expect(await files()).toEqual(now);
    // Once the project is back, the rollback goes through.
    expect((await api("POST", "/restore/rollback")).body).toMatchObject({ id: restored.id, status: "rolled_back" });
  }, 60_000);
});

it("a swap that fails because the project was soft-deleted meanwhile leaves its database closed to connections", async () => {
  const id = randomUUID();
  const hex = id.replaceAll("-", "");
  await server.ctx.clusterSql`create database ${server.ctx.clusterSql(`ah_restore_${hex}`)}`;
  await server.ctx.sql`
    insert into restores (id, project_id, source_project_id, backup_id, mode, status, new_database, old_database)
    values (${id}, ${project.id}, ${project.id}, ${backup.id}, 'replace', 'swapping', ${`ah_restore_${hex}`}, ${`ah_prev_${hex}`})`;
  expect((await server.fetch(`/admin/api/projects/${project.id}`, { method: "DELETE", headers: auth })).status).toBe(200);
  try {
    await reconcileRestores(server.ctx);
    const [row] = await server.ctx.sql`select status, failure_reason from restores where id = ${id}`;
    expect(row!.status).toBe("failed");
    expect(row!.failure_reason).toContain("deleted");
    const [db] = await server.ctx.clusterSql`select datallowconn from pg_database where datname = ${`p_${project.id}`}`;
    expect(db!.datallowconn).toBe(false);
  } finally {
    expect((await server.fetch(`/admin/api/projects/${project.id}/restore`, { method: "POST", headers: auth })).status).toBe(200);
  }
  const [db] = await server.ctx.clusterSql`select datallowconn from pg_database where datname = ${`p_${project.id}`}`;
  expect(db!.datallowconn).toBe(true);
}, 60_000);

describe("a replace restore cut short in its files (the reconciler)", () => {
  /** A restore row as a process that died while applying the backup's files would have left it. */
  async function cutShortWhileApplying(afterFiles: number) {
    const id = randomUUID();
    const [row] = await server.ctx.sql<RestoreRow[]>`
      insert into restores (id, project_id, source_project_id, backup_id, mode, status, new_database, old_database)
      values (${id}, ${project.id}, ${project.id}, ${backup.id}, 'replace', 'restoring', ${`ah_restore_${id.replaceAll("-", "")}`}, ${`ah_prev_${id.replaceAll("-", "")}`})
      returning *`;
    await saveLiveFiles(server.ctx, row!, AbortSignal.timeout(30_000));
    let checks = 0;
    const dies = { throwIfAborted: () => { if (++checks > afterFiles) throw new Error("killed"); } } as AbortSignal;
    await expect(applyBackupFiles(server.ctx, row!, backup.manifest, dies)).rejects.toThrow("killed");
    return id;
  }

  it("puts the saved files back and fails the restore", async () => {
    await changeFiles("2");
    const before = await files();
    const id = await cutShortWhileApplying(2);
    expect(await files()).not.toEqual(before); // a mix: some files the backup's, some not
    await reconcileRestores(server.ctx);
    const [row] = await server.ctx.sql`select status, files_state from restores where id = ${id}`;
    expect(row).toMatchObject({ status: "failed", files_state: "applying" });
    expect(await files()).toEqual(before);
    expect(savedCopyExists(id)).toBe(false);
  }, 60_000);

  it("throws away a copy a process died making, touching no live file", async () => {
    const before = await files();
    const id = randomUUID();
    await server.ctx.sql`
      insert into restores (id, project_id, source_project_id, backup_id, mode, status, new_database, old_database)
      values (${id}, ${project.id}, ${project.id}, ${backup.id}, 'replace', 'restoring', ${`ah_restore_${id.replaceAll("-", "")}`}, ${`ah_prev_${id.replaceAll("-", "")}`})`;
    const partial = await server.ctx.backups.store.put({ project: project.id, bucket: restoreBucket(id), key: "files/000000000" }, new Blob(["half"]).stream() as ReadableStream<Uint8Array>, { maxBytes: 100 });
    await partial.commit();
    await reconcileRestores(server.ctx);
    expect((await server.ctx.sql`select status from restores where id = ${id}`)[0]!.status).toBe("failed");
    expect(await files()).toEqual(before);
    expect(savedCopyExists(id)).toBe(false);
  }, 60_000);

  it("finishes a rollback cut short: files put back and the database swapped back", async () => {
    const before = await files();
    const restored = await restoreReplace();
    expect(restored.status).toBe("finished");
    expect((await files()).objects).toEqual(await backedUp());
    // The process died right after recording the rollback.
    await server.ctx.sql`update restores set status = 'rolling_back' where id = ${restored.id}`;
    await reconcileRestores(server.ctx);
    const [row] = await server.ctx.sql`select status, old_dropped_at is not null as dropped from restores where id = ${restored.id}`;
    expect(row).toEqual({ status: "rolled_back", dropped: true });
    expect(await files()).toEqual(before);
    expect(savedCopyExists(restored.id)).toBe(false);
  }, 60_000);
});

it("a replace restore cut short in its files of a project purged since is failed by the reconciler, not retried for ever", async () => {
  const other = await createTestProject(server, auth, "files-purged");
  const call = (method: string, path: string, body?: unknown) =>
    server.fetch(`/admin/api/projects/${other.id}${path}`, body === undefined ? { method, headers: auth } : jsonRequest(method, body, auth));
  expect((await server.fetch(`/admin/api/projects/${other.id}/storage/buckets/uploads/objects/a.txt`, { method: "PUT", headers: { ...auth, "content-type": "text/plain" }, body: "A" })).status).toBe(200);
  const started = (await (await call("POST", "/backups")).json()) as any;
  await server.ctx.backups.settled(started.id);
  const otherBackup = (await (await call("GET", `/backups/${started.id}`)).json()) as any;
  expect((await server.fetch(`/admin/api/projects/${other.id}/storage/buckets/uploads/objects/b.txt`, { method: "PUT", headers: { ...auth, "content-type": "text/plain" }, body: "B" })).status).toBe(200);
  const id = randomUUID();
  const [row] = await server.ctx.sql<RestoreRow[]>`
    insert into restores (id, project_id, source_project_id, backup_id, mode, status, new_database, old_database)
    values (${id}, ${other.id}, ${other.id}, ${otherBackup.id}, 'replace', 'restoring', ${`ah_restore_${id.replaceAll("-", "")}`}, ${`ah_prev_${id.replaceAll("-", "")}`})
    returning *`;
  await saveLiveFiles(server.ctx, row!, AbortSignal.timeout(30_000));
  await applyBackupFiles(server.ctx, row!, otherBackup.manifest, AbortSignal.timeout(30_000));
  const purged = await call("DELETE", "?purge=true", { confirm: "files-purged" });
  expect(purged.status).toBe(200);
  for (let i = 0; i < 100 && (await server.ctx.sql`select status from projects where id = ${other.id}`)[0]!.status !== "purged"; i++) await Bun.sleep(100);
  await reconcileRestores(server.ctx);
  const [after] = await server.ctx.sql`select status from restores where id = ${id}`;
  expect(after!.status).toBe("failed");
}, 60_000);

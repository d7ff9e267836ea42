import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { randomUUID } from "node:crypto";
import { adminHeaders, createTestProject, startTestServer, type TestServer } from "../test/server";
import { reconcileBackups } from "./reconciler";
import { holdBackupLock } from "./service";
import { backupObject, scratchDatabaseName } from "./store";

let server: TestServer;
let project: any;

beforeAll(async () => {
  server = await startTestServer();
  project = await createTestProject(server, await adminHeaders(server), "backup-reconcile");
});
afterAll(() => server.stop());

/** A backup row as a process would have left it, with one dump part already in the store. */
async function leftBehind(status: string, extra: Record<string, unknown> = {}) {
  const id = randomUUID();
  await server.ctx.sql`insert into backups ${server.ctx.sql({ id, project_id: project.id, status, ...extra })}`;
  const staged = await server.ctx.backups.store.put(backupObject.dumpPart(project.id, id, 0), new Blob(["PGDMP partial"]).stream() as ReadableStream<Uint8Array>, { maxBytes: 1000 });
  await staged.commit();
  return id;
}

const row = async (id: string) => (await server.ctx.sql`select status, failure_reason, verify_error from backups where id = ${id}`)[0];
const partExists = async (id: string) => (await server.ctx.backups.store.head(backupObject.dumpPart(project.id, id, 0))) !== undefined;

describe("reconcileBackups", () => {
  it("fails a backup left running by a dead process and deletes what it wrote", async () => {
    const id = await leftBehind("running");
    await reconcileBackups(server.ctx);
    expect(await row(id)).toEqual({ status: "failed", failure_reason: "The AtlasHub process running the backup stopped before it finished.", verify_error: null });
    expect(await partExists(id)).toBe(false);
    const [audit] = await server.ctx.sql`select details from audit_log where action = 'backup.reconcile' and details->>'backup' = ${id}`;
    expect(audit!.details).toEqual({ backup: id, from: "running" });
  });

  it("leaves a running backup alone while a live process holds its lock", async () => {
    const id = await leftBehind("running");
    const lock = await holdBackupLock(server.ctx, id);
    await reconcileBackups(server.ctx);
    expect((await row(id))!.status).toBe("running");
    expect(await partExists(id)).toBe(true);
    await lock.release();
    await reconcileBackups(server.ctx);
    expect((await row(id))!.status).toBe("failed");
  });

  it("finishes a delete cut short", async () => {
    const id = await leftBehind("deleting");
    await reconcileBackups(server.ctx);
    expect(await row(id)).toBeUndefined();
    expect(await partExists(id)).toBe(false);
  });

  it("records a verification cut short and drops its scratch database", async () => {
    const id = await leftBehind("completed", { verify_started_at: new Date() });
    await server.ctx.clusterSql`create database ${server.ctx.clusterSql(scratchDatabaseName(id))}`;
    await reconcileBackups(server.ctx);
    expect(await row(id)).toMatchObject({ status: "completed", verify_error: "The AtlasHub process verifying the backup stopped before it finished." });
    expect(await server.ctx.clusterSql`select 1 from pg_database where datname = ${scratchDatabaseName(id)}`).toHaveLength(0);
    expect(await partExists(id)).toBe(true); // the backup itself is fine
  });
});

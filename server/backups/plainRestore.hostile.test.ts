// Hostile dumps: what a script (or an archive) names must never make the superuser do more for the
// project than its owner role could.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { adminHeaders, createTestProject, startTestServer, type TestServer } from "../test/server";
import { createRestoreDatabase, dropDatabase, projectOwner } from "./pgRestore";

let server: TestServer;
let auth: Record<string, string>;
let project: any;

beforeAll(async () => {
  server = await startTestServer({ ATLASHUB_RESTORE_STATEMENT_TIMEOUT: "3s" });
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "hostile");
});
afterAll(async () => {
  await server.stop();
});

async function upload(body: BodyInit) {
  const res = await server.fetch(`/admin/api/projects/${project.id}/backups/upload`, { method: "PUT", headers: { ...auth, "content-type": "application/octet-stream" }, body });
  const json = (await res.json()) as any;
  if (res.status === 201) await server.ctx.backups.settled(json.id);
  return { status: res.status, body: json };
}

async function backup(id: string) {
  const res = await server.fetch(`/admin/api/projects/${project.id}/backups/${id}`, { headers: auth });
  return (await res.json()) as any;
}

describe("extensions a dump names", () => {
  it("are refused at upload unless a project's owner could create them or AtlasHub creates them for every project", async () => {
    // dblink, created by the superuser, would let the owner open connections from the database server anywhere.
    const res = await upload("create extension if not exists dblink with schema public;\ncreate table t (id int);\n");
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("upload_refused");
    expect(res.body.error.message).toContain("dblink");
    // pgcrypto is trusted (the owner may create it itself): fine.
    const ok = await upload("create extension if not exists pgcrypto with schema public;\ncreate table t (id int);\n");
    expect(ok.status).toBe(201);
    expect((await backup(ok.body.id)).status).toBe("verified");
  }, 60_000);

  it("are refused in a system schema", async () => {
    const res = await upload("create extension if not exists pgcrypto with schema pg_catalog;\ncreate table t (id int);\n");
    expect(res.status).toBe(422);
    expect(res.body.error.message).toContain("pg_catalog");
  }, 60_000);

  it("are never created by the superuser for a restore, whatever the manifest says (a backup uploaded earlier)", async () => {
    const owner = await projectOwner(server.ctx, project.id);
    const database = "ah_test_hostile_ext";
    try {
      await expect(createRestoreDatabase(server.ctx, server.ctx.clusterSql, database, owner.role, [{ name: "dblink", schema: "public" }])).rejects.toThrow(/dblink/);
      const inside = await server.ctx.clusterSql`select 1 from pg_database where datname = ${database}`;
      if (inside.length) {
        const { connectForBackup } = await import("./snapshot");
        const sql = connectForBackup(server.ctx, database);
        try {
          expect(await sql`select extname from pg_extension where extname = 'dblink'`).toEqual([]);
        } finally {
          await sql.end();
        }
      }
    } finally {
      await dropDatabase(server.ctx.clusterSql, database);
    }
  }, 60_000);
});

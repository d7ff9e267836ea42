import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { tempDir } from "../test/harness";
import { pgDumpFile, superuserTo } from "../test/backups";
import { backupBucket } from "./store";
import { existsSync } from "node:fs";

let server: TestServer;
let auth: Record<string, string>;
let project: any;
let dumpFile: string;
const clients = clientTracker();

beforeAll(async () => {
  server = await startTestServer();
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "upload-target");
  // A dump made elsewhere: a database of the cluster's superuser, with its own extension and policy-free tables.
  const su = clients.connect(process.env.ATLASHUB_TEST_DATABASE_URL!);
  const source = `upload_src_${Date.now()}`;
  await su.unsafe(`create database ${source}`);
  const inside = clients.connect(superuserTo(source));
  await inside.unsafe(`
    create extension citext;
    create table customers (id serial primary key, email citext unique, since date);
    insert into customers (email, since) select 'C' || g || '@x.io', date '2020-01-01' + g from generate_series(1, 300) g;
  `);
  dumpFile = join(tempDir("upload"), "elsewhere.dump");
  await pgDumpFile(server, source, dumpFile, "custom");
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

async function upload(body: BodyInit) {
  const res = await server.fetch(`/admin/api/projects/${project.id}/backups/upload`, { method: "PUT", headers: { ...auth, "content-type": "application/octet-stream" }, body });
  return { status: res.status, body: await res.json() };
}

describe("PUT /admin/api/projects/:id/backups/upload", () => {
  let uploaded: any;

  it("takes a pg_dump -Fc file as a completed backup, notes its extensions, and verifies it by a restore", async () => {
    const res = await upload(Bun.file(dumpFile));
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ status: "completed", trigger: "upload" });
    expect(res.body.manifest).toMatchObject({ origin: "upload", database: { snapshot: "none", extensions: [{ name: "citext", schema: "public" }] } });
    expect(res.body.manifest.postgres.pg_dump_version).toMatch(/^15\./);
    await server.ctx.backups.settled(res.body.id);
    uploaded = (await (await server.fetch(`/admin/api/projects/${project.id}/backups/${res.body.id}`, { headers: auth })).json());
    expect(uploaded).toMatchObject({ status: "verified", verify_error: null });
    expect(uploaded.manifest.database.snapshot).toBe("restore");
    expect(uploaded.manifest.database.tables).toEqual([{ schema: "public", table: "customers", rows: 300, checksum: expect.any(String) }]);
  }, 60_000);

  it("restores it in place of the project's database, with the project's grants", async () => {
    const res = await server.fetch(`/admin/api/projects/${project.id}/backups/${uploaded.id}/restore`, jsonRequest("POST", { mode: "replace", confirm: "upload-target" }, auth));
    expect(res.status).toBe(202);
    const { id } = await res.json();
    await server.ctx.backups.settled(id);
    const done = await (await server.fetch(`/admin/api/projects/${project.id}/restores/${id}`, { headers: auth })).json();
    expect(done).toMatchObject({ status: "finished", failure_reason: null });
    const app = clients.connect(project.credentials.app.connection_string);
    expect((await app`select count(*)::int as n from customers where email = 'c7@X.IO'`)[0]!.n).toBe(1);
    const [next] = await app`insert into customers (email) values ('new@x.io') returning id`;
    expect(next!.id).toBe(301);
  }, 60_000);

  it("refuses a binary file pg_restore cannot read with 422 and keeps nothing", async () => {
    // Binary (a NUL byte): taken for an archive, not an SQL script (plainRestore.test.ts has those).
    const res = await upload("this is not a dump at all\0\n".repeat(100));
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("upload_unreadable");
    const [row] = await server.ctx.sql`select id, status from backups where trigger = 'upload' and status = 'failed'`;
    expect(row).toBeDefined();
    expect(existsSync(join(server.ctx.config.dataDir, "backups", project.id, backupBucket(row!.id)))).toBe(false);
    const empty = await upload("");
    expect(empty.status).toBe(422);
  });

  it("answers 404 for an unknown project", async () => {
    const other = await server.fetch(`/admin/api/projects/zzzzzzzzzz/backups/upload`, { method: "PUT", headers: auth, body: "x" });
    expect(other.status).toBe(404);
  });
});

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash } from "node:crypto";
import postgres from "postgres";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret } from "../test/harness";
import { connectForBackup, takeSnapshot, type DatabaseSnapshot } from "./snapshot";
import { backupObject } from "./store";
import { restoreDatabases } from "./restoreDatabases";
import { dropExpiredRestorePoints } from "./restore";

let server: TestServer;
let auth: Record<string, string>;
let project: any;
let owner: postgres.Sql;
let app: postgres.Sql;
let backup: any;
const clients = clientTracker();
const files: Record<string, Buffer> = {
  "uploads/a/b/c.txt": Buffer.from("hello restore"),
  "private/data.bin": Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251)),
};

beforeAll(async () => {
  server = await startTestServer({ ATLASHUB_BACKUP_VERIFY: "false" });
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "restore-src");
  owner = clients.connect(project.credentials.owner.connection_string);
  app = clients.connect(project.credentials.app.connection_string);
  const appRole = project.credentials.app.role;
  await owner.unsafe(`
    create table items (id serial primary key, name text not null, price numeric(8,2), at timestamptz default '2024-01-01', tags jsonb);
    insert into items (name, price, tags) select 'item ' || g, g / 4.0, jsonb_build_object('g', g) from generate_series(1, 1000) g;
    create view expensive as select * from items where price > 100;
    create table secrets (id int primary key, owner_name text, body text);
    insert into secrets values (1, '${appRole}', 'mine'), (2, 'someone', 'theirs');
    alter table secrets enable row level security;
    create policy own_rows on secrets to ${appRole} using (owner_name = current_user);
    create schema extra;
    create table extra.things (id int primary key);
    insert into extra.things select generate_series(1, 10);
    grant usage on schema extra to ${appRole};
    grant select on extra.things to ${appRole};
  `);
  if (project.database.extensions.includes("vector")) {
    await owner`create table vecs (id int primary key, v vector(2))`;
    await owner`insert into vecs values (1, '[1,2]'), (2, '[3,4]')`;
  }
  for (const [path, bytes] of Object.entries(files)) {
    const [bucket, ...key] = path.split("/");
    const res = await server.fetch(`/admin/api/projects/${project.id}/storage/buckets/${bucket}/objects/${key.join("/")}`, {
      method: "PUT",
      headers: { ...auth, "content-type": "application/octet-stream" },
      body: bytes,
    });
    expect(res.status).toBe(200);
  }
  backup = await backupNow();
  expect(backup.status).toBe("completed");
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

async function api(method: string, path: string, body?: unknown) {
  const res = await server.fetch(`/admin/api/projects/${path}`, body === undefined ? { method, headers: auth } : jsonRequest(method, body, auth));
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function backupNow() {
  const res = await api("POST", `${project.id}/backups`);
  expect(res.status).toBe(202);
  await server.ctx.backups.settled(res.body.id);
  return (await api("GET", `${project.id}/backups/${res.body.id}`)).body;
}

async function restore(body: Record<string, unknown>, backupId = backup.id) {
  const res = await api("POST", `${project.id}/backups/${backupId}/restore`, body);
  if (res.status !== 202) return res;
  if (res.body.project) for (const c of Object.values(res.body.project.credentials) as { password: string }[]) registerSecret(c.password);
  await server.ctx.backups.settled(res.body.id);
  const done = await api("GET", `${res.body.project?.id ?? project.id}/restores/${res.body.id}`);
  return { status: 202, body: { ...done.body, project: res.body.project } };
}

async function snapshotOf(database: string): Promise<DatabaseSnapshot> {
  const sql = connectForBackup(server.ctx, database);
  try {
    return await takeSnapshot(sql);
  } finally {
    await sql.end();
  }
}

const tablesOf = (s: DatabaseSnapshot) => s.tables.map((t) => ({ ...t }));
const databaseExists = async (name: string) => (await server.ctx.clusterSql`select datallowconn from pg_database where datname = ${name}`)[0];

describe("POST …/backups/:backup/restore {mode: replace}", () => {
  let finished: any;
  let changed: DatabaseSnapshot;

  it("refuses a confirm that is not the project's name with 422", async () => {
    const res = await api("POST", `${project.id}/backups/${backup.id}/restore`, { mode: "replace", confirm: "restore-sr" });
    expect(res.status).toBe(422);
    const bad = await api("POST", `${project.id}/backups/${backup.id}/restore`, { mode: "sideways", confirm: "restore-src" });
    expect(bad.status).toBe(400);
  });

  it("restores into a new database while the live one keeps serving, then swaps it in", async () => {
    await owner`insert into items (name) values ('after the backup')`;
    await owner`drop table extra.things`;
    changed = await snapshotOf(`p_${project.id}`);

    const res = await api("POST", `${project.id}/backups/${backup.id}/restore`, { mode: "replace", confirm: "restore-src" });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ mode: "replace", status: "restoring" });
    // While it restores, the live database answers as before.
    let served = 0;
    while (server.ctx.backups.isRunning(res.body.id)) {
      const status = (await server.ctx.sql`select status from restores where id = ${res.body.id}`)[0]!.status;
      if (status !== "restoring") break;
      const [row] = await owner`select count(*)::int as n from items`;
      expect(row!.n).toBe(1001);
      served++;
    }
    await server.ctx.backups.settled(res.body.id);
    finished = (await api("GET", `${project.id}/restores/${res.body.id}`)).body;
    expect(finished).toMatchObject({ status: "finished", failure_reason: null });
    expect(served).toBeGreaterThan(0);
    expect(Date.parse(finished.rollback_until)).toBeGreaterThan(Date.now() + 23 * 3600_000);
  }, 60_000);

  it("leaves the project's database exactly as the backup's snapshot, the replaced one kept closed", async () => {
    const restored = await snapshotOf(`p_${project.id}`);
    expect(tablesOf(restored)).toEqual(backup.manifest.database.tables);
    expect(restored.sequences).toEqual(backup.manifest.database.sequences);
    const kept = await databaseExists(restoreDatabases(finished.id).previous);
    expect(kept).toEqual({ datallowconn: false });
    expect(await databaseExists(restoreDatabases(finished.id).incoming)).toBeUndefined();
  });

  it("keeps roles, grants, RLS and sequences working on the swapped-in database", async () => {
    // Pools and sessions of the old database were ended: new connections reach the restored one.
    const appAgain = clients.connect(project.credentials.app.connection_string);
    expect(await appAgain`select body from secrets`).toEqual([{ body: "mine" }]);
    expect((await appAgain`select count(*)::int as n from extra.things`)[0]!.n).toBe(10);
    const [inserted] = await appAgain`insert into items (name) values ('new') returning id`;
    expect(inserted!.id).toBe(1001);
    const res = await server.fetch(`/admin/api/projects/${project.id}/sql`, jsonRequest("POST", { query: "select count(*) as n from items" }, auth));
    expect(res.status).toBe(200);
  });

  it("rolls back: the replaced database is swapped back in and the restored one dropped", async () => {
    const res = await api("POST", `${project.id}/restore/rollback`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: finished.id, status: "rolled_back", rollback_until: null });
    expect(tablesOf(await snapshotOf(`p_${project.id}`))).toEqual(tablesOf(changed));
    expect(await databaseExists(restoreDatabases(finished.id).previous)).toBeUndefined();
    expect(await databaseExists(restoreDatabases(finished.id).undone)).toBeUndefined();
    expect((await databaseExists(`p_${project.id}`))!.datallowconn).toBe(true);
    const again = await api("POST", `${project.id}/restore/rollback`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("no_rollback_point");
  });

  it("fails on a damaged dump and leaves the live database untouched", async () => {
    const damaged = await backupNow();
    const location = backupObject.dumpPart(project.id, damaged.id, 0);
    const original = await server.ctx.backups.store.get(location);
    const bytes = new Uint8Array(await new Response(original!.body as Blob).arrayBuffer());
    bytes.fill(0x41, bytes.length - 3000, bytes.length - 200); // data blocks near the end, past the table of contents
    const staged = await server.ctx.backups.store.put(location, new Blob([bytes]).stream() as ReadableStream<Uint8Array>, { maxBytes: bytes.length });
    await staged.commit();
    const before = await snapshotOf(`p_${project.id}`);
    const res = await restore({ mode: "replace", confirm: "restore-src" }, damaged.id);
    expect(res.status).toBe(202);
    expect(res.body.status).toBe("failed");
    expect(res.body.failure_reason).toMatch(/pg_restore/);
    expect(tablesOf(await snapshotOf(`p_${project.id}`))).toEqual(tablesOf(before));
    expect(await databaseExists(restoreDatabases(res.body.id).incoming)).toBeUndefined();
    expect((await databaseExists(`p_${project.id}`))!.datallowconn).toBe(true);
  }, 60_000);

  it("drops a kept database once its time is over (the platform job)", async () => {
    const res = await restore({ mode: "replace", confirm: "restore-src" });
    expect(res.body.status).toBe("finished");
    await server.ctx.sql`update restores set keep_until = now() - interval '1 second' where id = ${res.body.id}`;
    expect(await dropExpiredRestorePoints(server.ctx)).toBe(1);
    expect(await databaseExists(restoreDatabases(res.body.id).previous)).toBeUndefined();
    expect((await api("POST", `${project.id}/restore/rollback`)).status).toBe(409);
  }, 60_000);
});

describe("a backup that needs an extension this Postgres lacks", () => {
  it("is refused with 422 before anything is made", async () => {
    const manifest = structuredClone(backup.manifest);
    manifest.database.extensions.push({ name: "not_installed_here", schema: "public" });
    const [row] = await server.ctx.sql`
      insert into backups (id, project_id, status, manifest) values (gen_random_uuid(), ${project.id}, 'completed', ${server.ctx.sql.json(manifest)}) returning id`;
    const res = await api("POST", `${project.id}/backups/${row!.id}/restore`, { mode: "new_project", confirm: "restore-src", name: "never-made" });
    expect(res.status).toBe(422);
    expect(res.body.error.message).toContain("not_installed_here");
    expect(await server.ctx.sql`select 1 from projects where name = 'never-made'`).toHaveLength(0);
  });
});

describe("POST …/backups/:backup/restore {mode: new_project}", () => {
  let copy: any;

  it("provisions a new project, answers its credentials once, and restores database and files into it", async () => {
    const res = await restore({ mode: "new_project", confirm: "restore-src", name: "restore-copy" });
    expect(res.status).toBe(202);
    copy = res.body.project;
    expect(copy).toMatchObject({ name: "restore-copy", status: "ready" });
    expect(copy.credentials.app.password).toEqual(expect.any(String));
    expect(res.body).toMatchObject({ mode: "new_project", status: "finished", files_restored: 2, source_project_id: project.id, project_id: copy.id });
  }, 60_000);

  it("holds every table and sequence of the backup", async () => {
    const restored = await snapshotOf(`p_${copy.id}`);
    expect(tablesOf(restored)).toEqual(backup.manifest.database.tables);
    expect(restored.sequences).toEqual(backup.manifest.database.sequences);
  });

  it("gives the dump's grants and policies to the new project's roles", async () => {
    const newApp = clients.connect(copy.credentials.app.connection_string);
    expect((await newApp`select count(*)::int as n from extra.things`)[0]!.n).toBe(10);
    // The policy named the old app role; its rows are now the new app role's only if renamed.
    const [policy] = await newApp`select polroles::regrole[]::text[] as roles from pg_policy where polname = 'own_rows'`;
    expect(policy!.roles).toEqual([copy.credentials.app.role]);
    const [inserted] = await newApp`insert into items (name) values ('copy') returning id`;
    expect(inserted!.id).toBe(1001);
  });

  it("stores every file with the same bytes", async () => {
    for (const [path, bytes] of Object.entries(files)) {
      const [bucket, ...key] = path.split("/");
      const res = await server.fetch(`/admin/api/projects/${copy.id}/storage/buckets/${bucket}/objects/${key.join("/")}`, { headers: auth });
      expect(res.status).toBe(200);
      const got = new Uint8Array(await res.arrayBuffer());
      expect(createHash("sha256").update(got).digest("hex")).toBe(createHash("sha256").update(bytes).digest("hex"));
    }
  });

  it("lets a project with a kept restore point be purged", async () => {
    const res = await restore({ mode: "new_project", confirm: "restore-src", name: "restore-purge" });
    const target = res.body.project;
    const target_backup = await api("POST", `${target.id}/backups`);
    await server.ctx.backups.settled(target_backup.body.id);
    const replaced = await api("POST", `${target.id}/backups/${target_backup.body.id}/restore`, { mode: "replace", confirm: "restore-purge" });
    expect(replaced.status).toBe(202);
    await server.ctx.backups.settled(replaced.body.id);
    expect(await databaseExists(restoreDatabases(replaced.body.id).previous)).toBeDefined();
    const purge = await server.fetch(`/admin/api/projects/${target.id}?purge=true`, jsonRequest("DELETE", { confirm: "restore-purge" }, auth));
    expect(purge.status).toBe(200);
    expect((await purge.json()).status).toBe("purged");
    expect(await databaseExists(restoreDatabases(replaced.body.id).previous)).toBeUndefined();
  }, 60_000);
});

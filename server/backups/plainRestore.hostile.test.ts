// Hostile dumps: what a script (or an archive) names must never make the superuser do more for the
// project than its owner role could, and no statement of one may hold a restore or a verification
// (and a backend) for ever.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { adminHeaders, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { backupOf, uploadDump } from "../test/backups";
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

const upload = (body: BodyInit) => uploadDump(server, auth, project.id, body);
const backup = (id: string) => backupOf(server, auth, project.id, id);

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

describe("the owner role itself", () => {
  // Any role may change its own password and settings; a dump runs as the owner role, so a hostile
  // one (an admin restoring someone else's file) could set a password its author knows.
  const script = [
    "create table t (id int);",
    "do $$ begin execute 'alter role ' || quote_ident(current_user) || ' password ''known-to-the-author'''; end $$;",
    "do $$ begin execute 'alter role ' || quote_ident(current_user) || ' set statement_timeout = 0'; end $$;",
    "do $$ begin execute 'alter role ' || quote_ident(current_user) || ' in database ' || quote_ident(current_database()) || ' set search_path = nowhere'; end $$;",
    "",
  ].join("\n");
  const settings = async () =>
    (await server.ctx.clusterSql<{ settings: string[] }[]>`
      select coalesce(array_agg(s.setdatabase::text || ':' || array_to_string(s.setconfig, ',') order by s.setdatabase), '{}') as settings
      from pg_db_role_setting s join pg_roles r on r.oid = s.setrole where r.rolname = ${project.credentials.owner.role}`)[0]!.settings;
  const canLogIn = async (password: string) => {
    const { default: postgres } = await import("postgres");
    const url = new URL(project.credentials.owner.connection_string);
    const sql = postgres({ host: url.hostname, port: Number(url.port), user: project.credentials.owner.role, password, database: `p_${project.id}`, max: 1, connect_timeout: 5, onnotice: () => {} });
    try {
      await sql`select 1`;
      return true;
    } catch {
      return false;
    } finally {
      await sql.end({ timeout: 1 });
    }
  };

  it("keeps its password and settings whatever a restored script does, and the restore says so", async () => {
    const before = await settings();
    const res = await upload(script);
    expect(res.status).toBe(201);
    const verified = await (await server.fetch(`/admin/api/projects/${project.id}/backups/${res.body.id}`, { headers: auth })).json() as any;
    expect(verified.verify_error).toContain("owner role");
    expect(await settings()).toEqual(before);
    expect(await canLogIn("known-to-the-author")).toBe(false);
    expect(await canLogIn(project.credentials.owner.password)).toBe(true);

    const started = await server.fetch(`/admin/api/projects/${project.id}/backups/${res.body.id}/restore`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ mode: "replace", confirm: "hostile" }),
    });
    expect(started.status).toBe(202);
    const { id } = (await started.json()) as any;
    await server.ctx.backups.settled(id);
    const done = (await (await server.fetch(`/admin/api/projects/${project.id}/restores/${id}`, { headers: auth })).json()) as any;
    expect(done.status).toBe("failed");
    expect(done.failure_reason).toContain("owner role");
    expect(await settings()).toEqual(before);
    expect(await canLogIn("known-to-the-author")).toBe(false);
    expect(await canLogIn(project.credentials.owner.password)).toBe(true);
  }, 60_000);
});

it("a verification starts from an empty scratch database, not one an earlier verification cut short left with the script's objects in it", async () => {
  const res = await upload("create table t (id int);\ninsert into t values (1);\n");
  expect(res.status).toBe(201);
  expect((await backup(res.body.id)).status).toBe("verified");
  const scratch = `ah_verify_${res.body.id.replaceAll("-", "")}`;
  await server.ctx.clusterSql`create database ${server.ctx.clusterSql(scratch)}`;
  const { connectForBackup } = await import("./snapshot");
  const inside = connectForBackup(server.ctx, scratch);
  try {
    await inside`create table public.t (id int)`;
  } finally {
    await inside.end();
  }
  const again = await server.fetch(`/admin/api/projects/${project.id}/backups/${res.body.id}/verify`, { method: "POST", headers: auth });
  expect(again.status).toBe(202);
  await server.ctx.backups.settled(res.body.id);
  expect(await backup(res.body.id)).toMatchObject({ status: "verified", verify_error: null });
}, 60_000);

describe("a statement that never ends", () => {
  const sleepers = () => server.ctx.clusterSql`select pid from pg_stat_activity where query like '%pg_sleep%' and application_name = 'atlashub-restore'`;

  it("is stopped after ATLASHUB_RESTORE_STATEMENT_TIMEOUT: the verification fails with its line, no session left behind", async () => {
    const started = Date.now();
    const res = await upload("create table t (id int);\nset statement_timeout = 0;\nselect pg_sleep(600);\n");
    expect(res.status).toBe(201);
    expect(Date.now() - started).toBeLessThan(30_000);
    const b = await backup(res.body.id);
    expect(b.status).toBe("completed");
    expect(b.verify_error).toContain("line 3");
    expect(b.verify_error).toContain("3 s");
    expect(await sleepers()).toEqual([]);
  }, 60_000);

  it("is stopped even when it catches its cancellation", async () => {
    const script = [
      "create table t (id int);",
      "do $$ begin loop begin perform pg_sleep(600); exception when query_canceled then null; end; end loop; end $$;",
      "",
    ].join("\n");
    const started = Date.now();
    const res = await upload(script);
    expect(res.status).toBe(201);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect((await backup(res.body.id)).verify_error).toContain("line 2");
    expect(await sleepers()).toEqual([]);
  }, 60_000);

  it("inside COPY (a trigger sleeping on each row) is stopped too", async () => {
    const script = [
      "create table t (id int);",
      "create function slow() returns trigger language plpgsql as $$ begin perform pg_sleep(600); return new; end $$;",
      "create trigger slow before insert on t for each row execute function slow();",
      "copy t (id) from stdin;",
      "1",
      "\\.",
      "",
    ].join("\n");
    const res = await upload(script);
    expect(res.status).toBe(201);
    expect((await backup(res.body.id)).verify_error).toContain("line 4");
    expect(await sleepers()).toEqual([]);
  }, 60_000);
});

it("a replace restore whose statement never ends fails and leaves the live database as it was", async () => {
  const res = await upload("create table t (id int);\nselect pg_sleep(600);\n");
  expect(res.status).toBe(201);
  const started = await server.fetch(`/admin/api/projects/${project.id}/backups/${res.body.id}/restore`, jsonRequest("POST", { mode: "replace", confirm: "hostile" }, auth));
  expect(started.status).toBe(202);
  const { id } = (await started.json()) as any;
  await server.ctx.backups.settled(id);
  const done = (await (await server.fetch(`/admin/api/projects/${project.id}/restores/${id}`, { headers: auth })).json()) as any;
  expect(done.status).toBe("failed");
  expect(done.failure_reason).toContain("line 2");
}, 60_000);

it("a new-project restore whose statement never ends, after the script changed the owner's password, leaves no session running it", async () => {
  const script = [
    "create table t (id int);",
    "do $$ begin execute 'alter role ' || quote_ident(current_user) || ' password ''changed'''; end $$;",
    "select pg_sleep(600);",
    "",
  ].join("\n");
  const res = await upload(script);
  expect(res.status).toBe(201);
  const started = await server.fetch(`/admin/api/projects/${project.id}/backups/${res.body.id}/restore`, jsonRequest("POST", { mode: "new_project", confirm: "hostile", name: "hostile-copy" }, auth));
  expect(started.status).toBe(202);
  const body = (await started.json()) as any;
  await server.ctx.backups.settled(body.id);
  const done = (await (await server.fetch(`/admin/api/projects/${body.project.id}/restores/${body.id}`, { headers: auth })).json()) as any;
  expect(done.status).toBe("failed");
  const left = await server.ctx.clusterSql`select pid from pg_stat_activity where query like '%pg_sleep%' and application_name = 'atlashub-restore'`;
  expect(left).toEqual([]);
}, 60_000);

it("a backup (pg_dump archive) whose restore runs a statement that never ends fails its verification after the timeout, no session left behind", async () => {
  // The tenant's own function, harmless in its database and sleeping in any other: in the index build of a restore.
  const { default: postgres } = await import("postgres");
  const owner = postgres(project.credentials.owner.connection_string, { max: 1, onnotice: () => {} });
  try {
    await owner.unsafe(`
      create table slow_items (id int);
      create function slow(i int) returns int language plpgsql immutable as $$
      begin
        if current_database() not like 'p\\_%' then perform pg_sleep(600); end if;
        return i;
      end $$;
      create index on slow_items (slow(id));
      insert into slow_items values (1);`);
  } finally {
    await owner.end();
  }
  const started = await server.fetch(`/admin/api/projects/${project.id}/backups`, { method: "POST", headers: auth });
  expect(started.status).toBe(202);
  const { id } = (await started.json()) as any;
  await server.ctx.backups.settled(id);
  const b = await backup(id);
  expect(b.status).toBe("completed");
  expect(b.verify_error).toContain("ATLASHUB_RESTORE_STATEMENT_TIMEOUT");
  const left = await server.ctx.clusterSql`select pid from pg_stat_activity where query like '%slow%' and datname like 'ah\\_%'`;
  expect(left).toEqual([]);
}, 60_000);

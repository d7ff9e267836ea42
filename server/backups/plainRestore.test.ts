import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret, tempDir } from "../test/harness";
import { pgDumpFile, uploadDump } from "../test/backups";
import { connectForBackup, takeSnapshot, type DatabaseSnapshot } from "./snapshot";
import { backupBucket } from "./store";

let server: TestServer;
let auth: Record<string, string>;
let source: any;
let owner: postgres.Sql;
let dumpFile: string;
let sourceSnapshot: DatabaseSnapshot;
const clients = clientTracker();
const vector = () => source.database.extensions.includes("vector");
// COPY's text format at its hardest: tabs, backslashes, line breaks, empty strings next to NULL, and data that reads like psql's.
const TRICKY = ["a\tb", "back\\slash", "two\nlines\r\n", "", null, "\\.", "\\! touch /tmp/atlashub-never", "\\N", "'; drop table t; --", "é😀"];

beforeAll(async () => {
  server = await startTestServer();
  auth = await adminHeaders(server);
  source = await createTestProject(server, auth, "plain-src");
  owner = clients.connect(source.credentials.owner.connection_string);
  const app = source.credentials.app.role;
  await owner.unsafe(`
    create table items (id serial primary key, name text, price numeric(10,2), at timestamptz default '2024-01-01', tags jsonb, flags bool[], raw bytea, span int4range);
    insert into items (name, price, tags, flags, raw, span) select 'item ' || g, g / 3.0, jsonb_build_object('g', g), array[g % 2 = 0, null], decode(md5(g::text), 'hex'), int4range(g, g + 5) from generate_series(1, 500) g;
    create table tricky (id int primary key, body text);
    create sequence codes start 100;
    select setval('codes', 142);
    create view cheap as select id, name from items where price < 10;
    create table secrets (id int primary key, owner_name text, body text);
    insert into secrets values (1, '${app}', 'mine'), (2, 'someone', 'theirs');
    alter table secrets enable row level security;
    create policy own_rows on secrets to ${app} using (owner_name = current_user);
    create function shout(t text) returns text language sql immutable begin atomic select upper(t) || '!'; end;
    create table domained (code text default shout('x'));
    insert into domained default values;
  `);
  for (const [i, body] of TRICKY.entries()) await owner`insert into tricky values (${i}, ${body})`;
  if (vector()) {
    await owner`create table vecs (id int primary key, v vector(3))`;
    await owner`insert into vecs select g, ('[' || g || ',' || -g || ',0.5]')::vector from generate_series(1, 50) g`;
  }
  sourceSnapshot = await snapshotOf(`p_${source.id}`);
  dumpFile = join(tempDir("plain"), "project.sql");
  await pgDumpFile(server, `p_${source.id}`, dumpFile, "plain");
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

const upload = (projectId: string, body: BodyInit) => uploadDump(server, auth, projectId, body);

async function restore(projectId: string, backupId: string, body: Record<string, unknown>) {
  const res = await api("POST", `${projectId}/backups/${backupId}/restore`, body);
  expect(res.status).toBe(202);
  if (res.body.project) for (const c of Object.values(res.body.project.credentials) as { password: string }[]) registerSecret(c.password);
  await server.ctx.backups.settled(res.body.id);
  const done = await api("GET", `${res.body.project?.id ?? projectId}/restores/${res.body.id}`);
  return { ...done.body, project: res.body.project };
}

async function snapshotOf(database: string): Promise<DatabaseSnapshot> {
  const sql = connectForBackup(server.ctx, database);
  try {
    return await takeSnapshot(sql);
  } finally {
    await sql.end();
  }
}

describe("a plain .sql dump made by pg_dump", () => {
  let backup: any;
  let copy: any;

  it("is taken as an upload, its extensions noted, and verified by running it", async () => {
    expect(readFileSync(dumpFile, "utf8")).toContain("\\restrict ");
    const res = await upload(source.id, Bun.file(dumpFile));
    expect(res.status).toBe(201);
    expect(res.body.manifest).toMatchObject({ origin: "upload", dump: { format: "plain" }, database: { name: `p_${source.id}`, snapshot: "none" } });
    expect(res.body.manifest.postgres.pg_dump_version).toMatch(/^15\./);
    if (vector()) expect(res.body.manifest.database.extensions).toContainEqual({ name: "vector", schema: "public" });
    backup = (await api("GET", `${source.id}/backups/${res.body.id}`)).body;
    // Downloaded back as the .sql it was, byte for byte.
    const download = await server.fetch(`/admin/api/projects/${source.id}/backups/${res.body.id}/download`, { headers: auth });
    expect(download.headers.get("content-disposition")).toMatch(/\.sql"$/);
    expect(await download.text()).toBe(readFileSync(dumpFile, "utf8"));
    expect(backup).toMatchObject({ status: "verified", verify_error: null });
    expect(backup.manifest.database.tables).toEqual(sourceSnapshot.tables);
  }, 60_000);

  it("restores into a new project with every table, sequence, view, policy and grant", async () => {
    const done = await restore(source.id, backup.id, { mode: "new_project", confirm: "plain-src", name: "plain-copy" });
    expect(done).toMatchObject({ status: "finished", failure_reason: null });
    copy = done.project;
    const restored = await snapshotOf(`p_${copy.id}`);
    expect(restored.tables).toEqual(sourceSnapshot.tables);
    expect(restored.sequences).toEqual(sourceSnapshot.sequences);
    const newApp = clients.connect(copy.credentials.app.connection_string);
    // RLS holds: the rows name the source's app role, which the new project's is not.
    expect(await newApp`select body from secrets`).toEqual([]);
    const newOwner = clients.connect(copy.credentials.owner.connection_string);
    expect((await newOwner`select count(*)::int as n from secrets`)[0]!.n).toBe(2);
    const [policy] = await newApp`select polroles::regrole[]::text[] as roles from pg_policy where polname = 'own_rows'`;
    expect(policy!.roles).toEqual([copy.credentials.app.role]);
    expect((await newApp`select count(*)::int as n from cheap`)[0]!.n).toBe(29);
    expect((await newApp`select nextval('codes')::int as n`)[0]!.n).toBe(143);
    expect((await newApp`insert into items (name) values ('new') returning id`)[0]!.id).toBe(501);
    expect((await newApp`select code from domained`)[0]!.code).toBe("X!");
    const rows = await newApp`select body from tricky order by id`;
    expect(rows.map((r) => r.body)).toEqual(TRICKY);
    if (vector()) expect((await newApp`select v::text from vecs where id = 7`)[0]!.v).toBe("[7,-7,0.5]");
    // Everything belongs to the new project's owner, as when pg_restore --no-owner restores.
    const owners = await newApp`select distinct tableowner from pg_tables where schemaname = 'public'`;
    expect(owners).toEqual([{ tableowner: copy.credentials.owner.role }]);
  }, 60_000);

  it("replaces the project's own database (its grants kept), the live one untouched until the swap", async () => {
    await owner`delete from items where id > 10`;
    await owner`drop view cheap`;
    const done = await restore(source.id, backup.id, { mode: "replace", confirm: "plain-src" });
    expect(done).toMatchObject({ status: "finished", failure_reason: null });
    expect((await snapshotOf(`p_${source.id}`)).tables).toEqual(sourceSnapshot.tables);
    const app = clients.connect(source.credentials.app.connection_string);
    expect((await app`select count(*)::int as n from cheap`)[0]!.n).toBe(29);
    expect(await app`select body from secrets`).toEqual([{ body: "mine" }]);
  }, 60_000);
});

describe("a hand-written .sql file", () => {
  let target: any;
  beforeAll(async () => {
    target = await createTestProject(server, auth, "plain-target");
  });

  it("is refused with 422 for a \\! line, which never runs, and nothing is kept", async () => {
    const marker = join(tempDir("plain-marker"), "touched");
    rmSync(marker, { force: true });
    const res = await upload(target.id, `create table t (id int);\n\\! touch ${marker}\ninsert into t values (1);\n`);
    expect(res.status).toBe(422);
    expect(res.body.error).toMatchObject({ code: "upload_refused" });
    expect(res.body.error.message).toContain("line 2");
    expect(res.body.error.message).toContain("\\!");
    expect(existsSync(marker)).toBe(false);
    const [row] = await server.ctx.sql`select id from backups where project_id = ${target.id} and status = 'failed'`;
    expect(existsSync(join(server.ctx.config.dataDir, "backups", target.id, backupBucket(row!.id)))).toBe(false);
  });

  it("is refused with 422 when it creates an extension this Postgres does not have", async () => {
    const res = await upload(target.id, "create extension if not exists no_such_thing with schema public;\ncreate table t (id int);\n");
    expect(res.status).toBe(422);
    expect(res.body.error.message).toContain("no_such_thing");
  });

  it.each([
    ["set role postgres;", "permission denied to set role"],
    [`alter role p_OWNER superuser;`, "must be superuser"],
    ["copy (select 1) to stdout;", "only COPY … FROM stdin"],
  ])("cannot act beyond the owner role: %p", async (statement, reason) => {
    const script = `create table t (id int);\n\n${statement.replace("p_OWNER", target.credentials.owner.role)}\ninsert into t values (1);\n`;
    const res = await upload(target.id, script);
    if (res.status === 422) {
      expect(res.body.error.message).toContain(reason);
      return;
    }
    expect(res.status).toBe(201);
    const done = await restore(target.id, res.body.id, { mode: "replace", confirm: "plain-target" });
    expect(done.status).toBe("failed");
    expect(done.failure_reason).toContain("line 3");
    expect(done.failure_reason).toContain(reason);
    const [role] = await server.ctx.clusterSql`select rolsuper from pg_roles where rolname = ${target.credentials.owner.role}`;
    expect(role!.rolsuper).toBe(false);
    expect(await server.ctx.clusterSql`select 1 from pg_database where datname = ${`p_${target.id}`} and datallowconn`).toHaveLength(1);
  }, 60_000);

  it("leaves out ownership and grants naming roles of another installation, and reports the line of a failing COPY row", async () => {
    const script = [
      "CREATE TABLE public.notes (id integer PRIMARY KEY, body text);",
      "ALTER TABLE public.notes OWNER TO somebody_elsewhere;",
      "GRANT SELECT ON TABLE public.notes TO somebody_elsewhere;",
      "GRANT SELECT ON TABLE public.notes TO p_zzzzzzzzzz_app;",
      "GRANT SELECT ON TABLE public.notes TO PUBLIC;",
      "ALTER TABLE public.notes RENAME COLUMN body TO owner;",
      "COPY public.notes (id, owner) FROM stdin;",
      "1\tfirst",
      "2\t\\N",
      "\\.",
      "",
    ].join("\n");
    const res = await upload(target.id, script);
    expect(res.status).toBe(201);
    const done = await restore(target.id, res.body.id, { mode: "replace", confirm: "plain-target" });
    expect(done).toMatchObject({ status: "finished", failure_reason: null });
    const app = clients.connect(target.credentials.app.connection_string);
    expect(await app`select id, owner from notes order by id`).toEqual([{ id: 1, owner: "first" }, { id: 2, owner: null }]);
    const bad = await upload(target.id, "create table n (id int primary key);\ncopy n (id) from stdin;\n1\n2\nthree\n\\.\n");
    expect(bad.status).toBe(201);
    const failed = await restore(target.id, bad.body.id, { mode: "replace", confirm: "plain-target" });
    expect(failed.status).toBe("failed");
    expect(failed.failure_reason).toContain("line 5");
    expect(failed.failure_reason).toContain("invalid input syntax for type integer");
    expect((await app`select count(*)::int as n from notes`)[0]!.n).toBe(2);
  }, 60_000);
});

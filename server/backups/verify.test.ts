import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret, tempDir } from "../test/harness";
import { connectForBackup, takeSnapshot } from "./snapshot";
import { backupObject, scratchDatabaseName } from "./store";
import { matchTools } from "./pgTools";
import { ApiError } from "../http/errors";

let server: TestServer;
let auth: Record<string, string>;
let project: any;
let owner: postgres.Sql;
const clients = clientTracker();

beforeAll(async () => {
  server = await startTestServer({ ATLASHUB_BACKUP_VERIFY: "false" });
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "verify-rich");
  owner = clients.connect(project.credentials.owner.connection_string);
  const app = project.credentials.app.role;
  // Every kind of thing a project holds that a restore as the owner role must get right.
  await owner.unsafe(`
    create schema app;
    create extension citext schema app;
    create table app.people (id uuid primary key default gen_random_uuid(), email app.citext unique, born date, score double precision, active boolean);
    insert into app.people (email, born, score, active) select 'P' || g || '@Example.com', date '2000-01-01' + g, g / 3.0, g % 2 = 0 from generate_series(1, 200) g;
    create table r (r int, "R" text, t timestamptz, i interval, n numeric, j json, x xml, b bit(8), ip inet, rng int4range);
    insert into r values (1, 'one', '2024-02-29 12:00+05', '1 day 2 hours', 1e-20, '{"a": [1, 2]}', '<a>b</a>', B'10101010', '10.0.0.1/8', '[1,5)');
    insert into r values (null, null, null, null, null, null, null, null, null, null);
    create table docs (id serial primary key, owner_name text not null default current_user, body text, words int generated always as (length(body)) stored);
    insert into docs (body) select repeat('x', g) from generate_series(1, 50) g;
    alter table docs enable row level security;
    alter table docs force row level security;
    create policy docs_owner on docs to ${app} using (owner_name = current_user);
    create table events (id bigint generated always as identity, at date not null, what text) partition by range (at);
    create table events_2024 partition of events for values from ('2024-01-01') to ('2025-01-01');
    create table events_2025 partition of events for values from ('2025-01-01') to ('2026-01-01');
    insert into events (at, what) select date '2024-06-01' + g * 3, 'e' || g from generate_series(1, 150) g;
    create sequence codes_seq start 100;
    create function next_code() returns text language sql as $$ select 'c-' || nextval('codes_seq') $$;
    select setval('codes_seq', 123, false);
    create table coded (code text primary key default next_code(), note text);
    insert into coded (note) values ('a'), ('b');
    create materialized view event_counts as select what, count(*) from events group by what;
    create index on app.people (lower(email::text));
  `);
  if (project.database.extensions.includes("vector")) {
    await owner.unsafe(`
      create table embeddings (id int primary key, v vector(3));
      insert into embeddings select g, ('[' || g || ',' || g * 2 || ',' || g * 3 || ']')::vector from generate_series(1, 20) g;
    `);
  }
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

async function api(method: string, path: string, body?: unknown) {
  const res = await server.fetch(`/admin/api/projects/${project.id}${path}`, body === undefined ? { method, headers: auth } : jsonRequest(method, body, auth));
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function backupNow() {
  const res = await api("POST", "/backups");
  expect(res.status).toBe(202);
  await server.ctx.backups.settled(res.body.id);
  return (await api("GET", `/backups/${res.body.id}`)).body;
}

async function verify(backupId: string) {
  const res = await api("POST", `/backups/${backupId}/verify`);
  expect(res.status).toBe(202);
  await server.ctx.backups.settled(backupId);
  return (await api("GET", `/backups/${backupId}`)).body;
}

describe("verification", () => {
  let backup: any;

  it("restores schemas, extensions, RLS, partitions, identities and vectors as the owner role and finds every table equal", async () => {
    backup = await backupNow();
    expect(backup.status).toBe("completed");
    expect(backup.verify_started_at).toBeNull();
    const tables = backup.manifest.database.tables.map((t: any) => `${t.schema}.${t.table}`);
    expect(tables).toEqual(expect.arrayContaining(["app.people", "public.r", "public.docs", "public.events_2024", "public.events_2025", "public.coded"]));
    expect(tables).not.toContain("public.events"); // a partitioned parent holds no rows of its own
    expect(backup.manifest.database.extensions).toEqual(expect.arrayContaining([{ name: "citext", schema: "app" }]));
    expect(backup.manifest.database.sequences).toEqual(expect.arrayContaining([{ schema: "public", name: "codes_seq", last_value: "124", is_called: true }]));

    const verified = await verify(backup.id);
    expect(verified.verify_error).toBeNull();
    expect(verified.status).toBe("verified");
    expect(verified.verified_at).not.toBeNull();
    const [scratch] = await server.ctx.clusterSql`select 1 from pg_database where datname = ${scratchDatabaseName(backup.id)}`;
    expect(scratch).toBeUndefined();
  }, 60_000);

  it("restores as a new project with every table, sequence and extension equal, and sequences that go on", async () => {
    const res = await api("POST", `/backups/${backup.id}/restore`, { mode: "new_project", confirm: "verify-rich", name: "verify-rich-copy" });
    expect(res.status).toBe(202);
    for (const c of Object.values(res.body.project.credentials) as { password: string }[]) registerSecret(c.password);
    await server.ctx.backups.settled(res.body.id);
    const copy = res.body.project;
    const done = await server.fetch(`/admin/api/projects/${copy.id}/restores/${res.body.id}`, { headers: auth });
    expect(await done.json()).toMatchObject({ status: "finished", failure_reason: null });
    const inside = connectForBackup(server.ctx, `p_${copy.id}`);
    try {
      const restored = await takeSnapshot(inside);
      expect(restored.tables).toEqual(backup.manifest.database.tables);
      expect(restored.sequences).toEqual(backup.manifest.database.sequences);
      expect(restored.extensions).toEqual(backup.manifest.database.extensions);
    } finally {
      await inside.end();
    }
    const newOwner = clients.connect(copy.credentials.owner.connection_string);
    expect((await newOwner`insert into coded (note) values ('c') returning code`)[0]!.code).toBe("c-125");
    expect((await newOwner`insert into events (at, what) values ('2025-03-01', 'next') returning id`)[0]!.id).toBe("151");
  }, 60_000);

  it("records what differs when the restored tables do not match the snapshot, and drops the scratch database", async () => {
    // The manifest claims other contents than the dump holds.
    const manifest = structuredClone(backup.manifest);
    manifest.database.tables.find((t: any) => t.table === "r").checksum = "1";
    manifest.database.tables.find((t: any) => t.table === "notes_missing")?.toString();
    manifest.database.tables.push({ schema: "public", table: "ghost", rows: 1, checksum: "0" });
    await server.ctx.sql`update backups set manifest = ${server.ctx.sql.json(manifest)} where id = ${backup.id}`;
    const failed = await verify(backup.id);
    expect(failed.status).toBe("completed");
    expect(failed.verified_at).toBeNull();
    expect(failed.verify_error).toContain("table public.r has different contents (checksum)");
    expect(failed.verify_error).toContain("table public.ghost is missing");
    const [scratch] = await server.ctx.clusterSql`select 1 from pg_database where datname = ${scratchDatabaseName(backup.id)}`;
    expect(scratch).toBeUndefined();
  }, 60_000);

  it("fails verification of a dump whose bytes were damaged in the store, naming pg_restore's error", async () => {
    const damaged = await backupNow();
    const location = backupObject.dumpPart(project.id, damaged.id, 0);
    const original = await server.ctx.backups.store.get(location);
    const bytes = new Uint8Array(await new Response(original!.body as Blob).arrayBuffer());
    bytes.fill(0x41, 2000, 6000);
    const staged = await server.ctx.backups.store.put(location, new Blob([bytes]).stream() as ReadableStream<Uint8Array>, { maxBytes: bytes.length });
    await staged.commit();
    const failed = await verify(damaged.id);
    expect(failed.status).toBe("completed");
    expect(failed.verify_error).toMatch(/pg_restore/);
  }, 60_000);

  it("answers 409 when verifying a backup that is not complete", async () => {
    const [row] = await server.ctx.sql`
      insert into backups (id, project_id, status, failure_reason) values (gen_random_uuid(), ${project.id}, 'failed', 'test') returning id`;
    const res = await api("POST", `/backups/${row!.id}/verify`);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("backup_not_ready");
  });
});

describe("pg_dump of the server's major version", () => {
  function fakeTools(version: string) {
    const dir = join(tempDir("pgtools"), "bin");
    mkdirSync(dir);
    for (const tool of ["pg_dump", "pg_restore"]) {
      writeFileSync(join(dir, tool), `#!/bin/sh\necho "${tool} (PostgreSQL) ${version}"\n`);
      chmodSync(join(dir, tool), 0o755);
    }
    return dir;
  }

  it("refuses tools of another major version, naming what it found", () => {
    const dir = fakeTools("14.9");
    let error: unknown;
    try {
      matchTools([dir], 15, "15.20");
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(503);
    expect((error as ApiError).code).toBe("pg_tools_mismatch");
    expect((error as ApiError).message).toContain(`${dir}/pg_dump is 14.9`);
  });

  it("takes the first directory whose tools match", () => {
    const old = fakeTools("14.9");
    const good = fakeTools("15.3");
    expect(matchTools([old, good], 15, "15.20")).toMatchObject({ pgDump: `${good}/pg_dump`, version: "15.3", major: 15 });
  });

  it("answers 503 pg_tools_mismatch to a backup request on a server whose ATLASHUB_PG_BIN_DIR holds another version", async () => {
    const other = await startTestServer({ ATLASHUB_PG_BIN_DIR: fakeTools("14.9") });
    try {
      const headers = await adminHeaders(other);
      const p = await createTestProject(other, headers, "mismatch");
      const res = await other.fetch(`/admin/api/projects/${p.id}/backups`, { method: "POST", headers });
      expect(res.status).toBe(503);
      const body = await res.json();
      expect(body.error.code).toBe("pg_tools_mismatch");
      expect(body.error.message).toContain("PostgreSQL 15.");
      expect((await other.ctx.sql`select count(*)::int as n from backups`)[0]!.n).toBe(0);
    } finally {
      await other.stop();
    }
  }, 60_000);
});

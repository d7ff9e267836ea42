// The view-swap race of CVE-2024-7348, tried as an attacker holding a project's owner connection
// string would: a psql session polls pg_locks until the backup (or its verification) holds its lock
// on zzz.t, then drops the table and makes zzz.t a view over a function that runs COPY … TO PROGRAM
// (which only the superuser may). Nothing of it may ever run as the superuser: no marker file, and
// the backup either completes or fails cleanly.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { adminHeaders, clientTracker, createTestProject, startTestServer, type TestServer } from "../test/server";
import { tempDir } from "../test/harness";
import { findPgBinDir } from "../engines/postgres/binaries";
import { backupOf } from "../test/backups";

let server: TestServer;
let auth: Record<string, string>;
let project: any;
let owner: postgres.Sql;
const clients = clientTracker();
const markers = tempDir("markers");
chmodSync(markers, 0o777);

beforeAll(async () => {
  server = await startTestServer({ ATLASHUB_BACKUP_VERIFY: "true" });
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "view-swap");
  owner = clients.connect(project.credentials.owner.connection_string);
  await owner.unsafe(`
    create function public.evil() returns int language plpgsql as $$
    begin
      begin
        execute pg_catalog.format('copy (select 1) to program %L', 'touch ${markers}/ran-as-' || session_user || '-' || current_user);
      exception when others then null;
      end;
      raise exception 'evil() ran as session_user % current_user %', session_user, current_user;
    end $$;
  `);
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

/** psql as the owner role: wait for another session's lock on zzz.t in `database`, then swap the table for a view over evil(). */
function attacker(database: string | undefined) {
  const url = new URL(project.credentials.owner.connection_string);
  const script = join(tempDir("attack"), "swap.sql");
  const find = database
    ? ""
    : `select 1 from pg_catalog.pg_sleep(0);
       do $$ begin loop exit when exists (select 1 from pg_database where datname like 'ah_verify_%'); perform pg_sleep(0.005); end loop; end $$;
       select datname as scratch from pg_database where datname like 'ah_verify_%' limit 1 \\gset
       \\connect :scratch\n`;
  writeFileSync(
    script,
    `set statement_timeout = '60s';
${find}
do $$ begin
  loop
    exit when exists (select 1 from pg_locks l join pg_class c on c.oid = l.relation join pg_namespace n on n.oid = c.relnamespace
                      where n.nspname = 'zzz' and c.relname = 't' and l.pid <> pg_backend_pid() and l.granted);
    perform pg_sleep(0.002);
  end loop;
end $$;
begin;
drop table zzz.t;
create view zzz.t as select public.evil() as x;
commit;
`,
  );
  return Bun.spawn([join(findPgBinDir(undefined), "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=0", "-f", script], {
    env: { PATH: process.env.PATH!, PGHOST: url.hostname, PGPORT: url.port, PGUSER: decodeURIComponent(url.username), PGPASSWORD: decodeURIComponent(url.password), PGDATABASE: url.pathname.slice(1) },
    stdout: "pipe",
    stderr: "pipe",
  });
}

async function prepareTable() {
  await owner.unsafe(`drop schema if exists zzz cascade; create schema zzz; create table zzz.t (id int primary key, v text); insert into zzz.t select g, repeat('v', 200) from generate_series(1, 20000) g;`);
}

async function backupNow() {
  const res = await server.fetch(`/admin/api/projects/${project.id}/backups`, { method: "POST", headers: auth });
  expect(res.status).toBe(202);
  const { id } = (await res.json()) as any;
  await server.ctx.backups.settled(id);
  return backupOf(server, auth, project.id, id);
}

describe("a table swapped for a view while it is backed up", () => {
  for (const round of [1, 2, 3]) {
    it(`never runs the view's function as the superuser (backup, round ${round})`, async () => {
      await prepareTable();
      const psql = attacker(project.database.name);
      const backup = await backupNow();
      await psql.exited;
      expect(["completed", "verified", "failed"]).toContain(backup.status);
      if (backup.status === "failed") expect(backup.failure_reason).not.toContain("superuser");
      expect(existsSync(markers) && (await Array.fromAsync(new Bun.Glob("ran-as-*").scan(markers)))).toEqual([]);
    });
  }

  for (const round of [1, 2]) {
    it(`never runs the view's function as the superuser (verification, round ${round})`, async () => {
      await prepareTable();
      const psql = attacker(undefined);
      const backup = await backupNow();
      await Promise.race([psql.exited, Bun.sleep(5_000)]);
      psql.kill();
      // Whatever became of the verification (the swap makes the scratch database differ, or comes too late), it is settled.
      expect(["completed", "verified"]).toContain(backup.status);
      if (backup.verify_error) expect(backup.verify_error).not.toMatch(/ran as session_user \S+ current_user postgres/);
      expect(await Array.fromAsync(new Bun.Glob("ran-as-*").scan(markers))).toEqual([]);
    });
  }
});

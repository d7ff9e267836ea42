// A restore's SQL runs through a stand-in (standIn.ts): whatever a dump tries with roles — granting
// a project's owner or its own session user to another project's role, RESET ROLE, SET SESSION
// AUTHORIZATION, ALTER ROLE — leaves every membership as AtlasHub made it, and drift that does
// happen (here made by the superuser, as an older Postgres would let a session user) is undone.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { tempDir } from "../test/harness";
import { backupOf, pgDumpFile, uploadDump } from "../test/backups";
import { membershipDrift, reconcileMemberships } from "./memberships";
import { withStandIn } from "./standIn";
import { databaseName } from "./provision";

let server: TestServer;
let auth: Record<string, string>;
let target: any;
let other: any;
const clients = clientTracker();

beforeAll(async () => {
  server = await startTestServer({ ATLASHUB_BACKUP_VERIFY: "true" });
  auth = await adminHeaders(server);
  target = await createTestProject(server, auth, "grant-target");
  other = await createTestProject(server, auth, "grant-other");
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

const memberships = async () =>
  server.ctx.clusterSql<{ role: string; member: string }[]>`
    select r.rolname as role, m.rolname as member from pg_auth_members a join pg_roles r on r.oid = a.roleid join pg_roles m on m.oid = a.member
    where r.rolname ~ '^p_' or m.rolname ~ '^p_' order by 1, 2`;

/** Has the other project's app role become a member of the target's owner role? */
async function otherCanActAsTargetOwner() {
  const app = clients.connect(other.credentials.app.connection_string);
  const [row] = await app<{ can: boolean }[]>`select pg_has_role(current_user, ${target.credentials.owner.role}, 'member') as can`;
  return row!.can;
}

/** Each attempt in its own block, its outcome kept in a table so the restored database tells what happened. */
function attempt(what: string, sqlText: string) {
  return `do $$ begin
  begin ${sqlText}; insert into attempts values (${quote(what)}, 'done as ' || current_user || ' (session ' || session_user || ')');
  exception when others then insert into attempts values (${quote(what)}, 'refused: ' || sqlerrm);
  end;
end $$;`;
}
const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;

describe("a dump that tries to hand a project's role to another", () => {
  const script = () =>
    [
      "create table attempts (what text, outcome text);",
      attempt("grant owner", `execute 'grant ${target.credentials.owner.role} to ${other.credentials.app.role}'`),
      attempt("grant session user", `execute format('grant %I to ${other.credentials.app.role}', session_user)`),
      attempt("set session authorization", `execute 'set session authorization ${target.credentials.owner.role}'`),
      attempt("alter session user", `execute format('alter role %I createrole', session_user)`),
      attempt("reset role", "reset role"),
      attempt("set role session user then create", `execute format('set role %I', session_user); create table made_by_session_user (id int)`),
      "reset role;",
      "",
    ].join("\n");

  it("changes no membership through upload, verification and a replace restore, and the attempts are refused or lead back to the owner", async () => {
    const before = await memberships();
    const uploaded = await uploadDump(server, auth, target.id, script());
    expect(uploaded.status).toBe(201);
    expect((await backupOf(server, auth, target.id, uploaded.body.id)).status).toBe("verified");
    expect(await memberships()).toEqual(before);

    const started = await server.fetch(`/admin/api/projects/${target.id}/backups/${uploaded.body.id}/restore`, jsonRequest("POST", { mode: "replace", confirm: "grant-target" }, auth));
    expect(started.status).toBe(202);
    const { id } = (await started.json()) as any;
    await server.ctx.backups.settled(id);
    const done = (await (await server.fetch(`/admin/api/projects/${target.id}/restores/${id}`, { headers: auth })).json()) as any;
    expect(done.status).toBe("finished");
    expect(await memberships()).toEqual(before);
    expect(await otherCanActAsTargetOwner()).toBe(false);

    const owner = clients.connect(target.credentials.owner.connection_string);
    const outcomes = Object.fromEntries((await owner<{ what: string; outcome: string }[]>`select what, outcome from attempts`).map((r) => [r.what, r.outcome]));
    expect(outcomes["grant owner"]).toStartWith("refused");
    expect(outcomes["grant session user"]).toStartWith("refused");
    expect(outcomes["set session authorization"]).toStartWith("refused");
    expect(outcomes["alter session user"]).toStartWith("refused");
    // RESET ROLE leads back to the owner (the stand-in's startup role), never to anything more.
    expect(outcomes["reset role"]).toStartWith(`done as ${target.credentials.owner.role} (session p_${target.id}_x`);
    // The stand-in itself may hold nothing: it can create nothing.
    expect(outcomes["set role session user then create"]).toStartWith("refused");
    // No stand-in outlives its restore.
    expect(await server.ctx.clusterSql`select rolname from pg_roles where rolname ~ ${`^p_${target.id}_x`}`).toEqual([]);
  }, 120_000);

  it("changes no membership when the grant comes from a function in a CHECK constraint fired during COPY of an archive, or in an index expression", async () => {
    const source = clients.connect(other.credentials.owner.connection_string);
    await source.unsafe(`
      create function try_grant() returns boolean language plpgsql as $$
      begin
        begin execute 'grant ${target.credentials.owner.role} to ${other.credentials.app.role}'; exception when others then null; end;
        begin execute format('grant %I to ${other.credentials.app.role}', session_user); exception when others then null; end;
        return true;
      end $$;
      create function try_grant_indexed(x int) returns int language plpgsql immutable as $$ begin perform try_grant(); return x; end $$;
      create table checked (id int primary key, ok boolean check (try_grant()));
      insert into checked values (1, true), (2, true);
      create index on checked (try_grant_indexed(id));
    `);
    const file = join(tempDir("grant-dump"), "dump.custom");
    await pgDumpFile(server, databaseName(other.id), file, "custom");
    const before = await memberships();
    const uploaded = await uploadDump(server, auth, target.id, Bun.file(file));
    expect(uploaded.status).toBe(201);
    expect(["verified", "completed"]).toContain((await backupOf(server, auth, target.id, uploaded.body.id)).status);
    const started = await server.fetch(`/admin/api/projects/${target.id}/backups/${uploaded.body.id}/restore`, jsonRequest("POST", { mode: "new_project", confirm: "grant-target", name: "grant-copy" }, auth));
    expect(started.status).toBe(202);
    const { id } = (await started.json()) as any;
    await server.ctx.backups.settled(id);
    const after = (await memberships()).filter((m) => !m.role.includes("grant-copy"));
    expect(after.filter((m) => before.some((b) => b.role === m.role && b.member === m.member)).length).toBe(after.length);
    expect(await otherCanActAsTargetOwner()).toBe(false);
  }, 120_000);
});

describe("membership drift", () => {
  it("fails the stand-in's work and puts the memberships back when one appears while it runs", async () => {
    const grant = () => server.ctx.clusterSql`grant ${server.ctx.clusterSql(target.credentials.owner.role)} to ${server.ctx.clusterSql(other.credentials.app.role)}`;
    await expect(withStandIn(server.ctx, target.id, [databaseName(target.id)], async () => void (await grant()))).rejects.toThrow(/changed while AtlasHub ran the tenant's SQL/);
    expect(await membershipDrift(server.ctx, target.id)).toEqual({ extra: [], missing: [] });
    expect(await otherCanActAsTargetOwner()).toBe(false);
  });

  it("refuses to start the stand-in's work when drift is already there, and undoes it", async () => {
    await server.ctx.clusterSql`grant ${server.ctx.clusterSql(target.credentials.owner.role)} to ${server.ctx.clusterSql(other.credentials.app.role)}`;
    let ran = false;
    await expect(withStandIn(server.ctx, target.id, [databaseName(target.id)], async () => void (ran = true))).rejects.toThrow(/had changed outside AtlasHub/);
    expect(ran).toBe(false);
    expect(await otherCanActAsTargetOwner()).toBe(false);
  });

  it("is undone and audited by the reconciler, also a project role granted a predefined role", async () => {
    const sql = server.ctx.clusterSql;
    await sql`grant ${sql(target.credentials.owner.role)} to ${sql(other.credentials.app.role)}`;
    await sql`grant pg_read_all_data to ${sql(target.credentials.ro.role)}`;
    expect(await reconcileMemberships(server.ctx)).toBeGreaterThanOrEqual(1);
    expect(await membershipDrift(server.ctx, target.id)).toEqual({ extra: [], missing: [] });
    expect(await sql`select 1 from pg_auth_members a join pg_roles r on r.oid = a.roleid join pg_roles m on m.oid = a.member where r.rolname = 'pg_read_all_data' and m.rolname = ${target.credentials.ro.role}`).toEqual([]);
    const entries = await server.ctx.sql<{ details: { drift: string } }[]>`
      select details from audit_log where action = 'project.memberships_restored' and target_id in (${target.id}, ${other.id})`;
    const told = entries.map((e) => e.details.drift).join("; ");
    expect(told).toContain(`${other.credentials.app.role} had been made a member of ${target.credentials.owner.role}`);
    expect(told).toContain(`${target.credentials.ro.role} had been made a member of pg_read_all_data`);
  });
});

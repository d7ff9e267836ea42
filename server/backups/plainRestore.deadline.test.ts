// Hostile .sql scripts: no statement of one may hold a restore or a verification (and a backend) for ever.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { adminHeaders, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";

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

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import postgres from "postgres";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret } from "../test/harness";

let server: TestServer;
let auth: Record<string, string>;
let project: { id: string; credentials: Record<string, { connection_string: string; password: string }> };
const clients = clientTracker();

beforeAll(async () => {
  server = await startTestServer();
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "with-users");
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

const connect = (dsn: string) => clients.connect(dsn);

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await server.fetch(`/admin/api/projects/${project.id}${path}`, body === undefined ? { method, headers: { ...auth, ...headers } } : jsonRequest(method, body, { ...auth, ...headers }));
  const json = res.status === 204 ? undefined : await res.json();
  if (json?.password) registerSecret(json.password);
  return { status: res.status, body: json };
}

describe("database users", () => {
  it("migrate users run DDL as the owner role; write users get DML on those tables; read users only SELECT", async () => {
    const migrator = await call("POST", "/users", { username: "migrator", access: "migrate" });
    expect(migrator.status).toBe(201);
    expect(migrator.body).toMatchObject({ username: "migrator", access: "migrate", role_name: `p_${project.id}_u_migrator` });
    expect(migrator.body.connection_string).toStartWith(`postgresql://p_${project.id}_u_migrator:`);
    const writer = (await call("POST", "/users", { username: "writer", access: "write" })).body;
    const reader = (await call("POST", "/users", { username: "reader", access: "read" })).body;

    const m = connect(migrator.body.connection_string);
    await m`create table posts (id serial primary key, title text)`;
    // Switching back to itself gives it nothing: a migrate user can never own a table of its own.
    const self = connect(migrator.body.connection_string);
    await self`set role ${self(migrator.body.role_name)}`;
    expect((await self`create table public.mine (id int)`.catch((e) => e)).code).toBe("42501");
    expect((await self`select lo_from_bytea(0, 'x')`.catch((e) => e)).code).toBe("42501");
    const [owner] = await m`select tableowner from pg_tables where tablename = 'posts'`;
    expect(owner!.tableowner).toBe(`p_${project.id}_owner`);

    const w = connect(writer.connection_string);
    await w`insert into posts (title) values ('hello')`;
    expect((await w`create table x (id int)`.catch((e) => e)).code).toBe("42501");
    const r = connect(reader.connection_string);
    expect(await r`select title from posts`).toEqual([{ title: "hello" }]);
    expect((await r`delete from posts`.catch((e) => e)).code).toBe("42501");
  });

  it("lists users without passwords", async () => {
    const list = await call("GET", "/users");
    expect(list.body.items.map((u: { username: string }) => u.username)).toEqual(["migrator", "reader", "writer"]);
    expect(JSON.stringify(list.body)).not.toMatch(/password"/);
  });

  it("rejects bad usernames and duplicates", async () => {
    for (const username of ["ab", "1abc", "Bad", "a-b", "x".repeat(33)]) {
      expect((await call("POST", "/users", { username, access: "read" })).status).toBe(400);
    }
    expect((await call("POST", "/users", { username: "someone", access: "admin" })).status).toBe(400);
    expect((await call("POST", "/users", { username: "reader", access: "read" })).status).toBe(409);
  });

  it("regenerating a password ends the old one at once and ends open sessions", async () => {
    const created = (await call("POST", "/users", { username: "rotating", access: "read" })).body;
    const open = connect(created.connection_string);
    await open`select 1`;
    const rotated = await call("POST", "/users/rotating/regenerate-password", undefined, { "x-request-id": "rotate-1" });
    expect(rotated.status).toBe(200);
    expect(rotated.body.password).not.toBe(created.password);
    expect((await open`select 1`.catch((e) => e)) instanceof Error).toBe(true);
    expect((await connect(created.connection_string)`select 1`.catch((e) => e)).code).toBe("28P01");
    expect(await connect(rotated.body.connection_string)`select 1 as ok`).toEqual([{ ok: 1 }]);
    const [entry] = await server.ctx.sql`select action, details from audit_log where request_id = 'rotate-1'`;
    expect(entry).toEqual({ action: "project.user.password_rotate", details: { username: "rotating" } });
    expect((await call("POST", "/users/nobody/regenerate-password")).status).toBe(404);
  });

  it("deleting a user ends its sessions and drops its role", async () => {
    const created = (await call("POST", "/users", { username: "leaving", access: "write" })).body;
    const open = connect(created.connection_string);
    await open`select 1`;
    expect((await call("DELETE", "/users/leaving")).status).toBe(204);
    expect((await open`select 1`.catch((e) => e)) instanceof Error).toBe(true);
    expect(await server.ctx.sql`select 1 from pg_roles where rolname = ${created.role_name}`).toHaveLength(0);
    expect((await call("DELETE", "/users/leaving")).status).toBe(404);
  });

  it("a user the tenant granted to or named in a policy is not deleted: 409 naming what still refers to it", async () => {
    const kept = (await call("POST", "/users", { username: "kept", access: "read" })).body;
    const owner = connect(project.credentials.owner.connection_string);
    await owner`create table notes (id int)`;
    await owner.unsafe(`grant select on notes to "${kept.role_name}"`);
    await owner.unsafe(`create policy only_kept on notes to "${kept.role_name}" using (true)`);
    const refused = await call("DELETE", "/users/kept");
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("user_in_use");
    expect(refused.body.error.details.dependents.join("\n")).toContain("2 objects in database");
    expect((await call("GET", "/users")).body.items.map((u: { username: string }) => u.username)).toContain("kept");
    await owner.unsafe(`drop policy only_kept on notes`);
    await owner.unsafe(`revoke select on notes from "${kept.role_name}"`);
    expect((await call("DELETE", "/users/kept")).status).toBe(204);
  });

  it("cannot be created on a project being purged: the purge waits, then takes the new user with it", async () => {
    const p = await createTestProject(server, auth, "race-users");
    const [created, purged] = await Promise.all([
      server.fetch(`/admin/api/projects/${p.id}/users`, jsonRequest("POST", { username: "racer", access: "read" }, auth)).then(async (r) => ({ status: r.status, body: await r.json() })),
      server.fetch(`/admin/api/projects/${p.id}?purge=true`, jsonRequest("DELETE", { confirm: "race-users" }, auth)).then((r) => r.status),
    ]);
    if (created.body.password) registerSecret(created.body.password);
    expect(purged).toBe(200);
    expect([201, 404, 409]).toContain(created.status);
    expect(await server.ctx.sql`select 1 from pg_roles where rolname like ${`p\\_${p.id}%`}`).toHaveLength(0);
    expect(await server.ctx.sql`select 1 from project_users where project_id = ${p.id}`).toHaveLength(0);
  });

  it("are dropped with the project when it is purged", async () => {
    const p = await createTestProject(server, auth, "purge-users");
    const u = await server.fetch(`/admin/api/projects/${p.id}/users`, jsonRequest("POST", { username: "temp", access: "read" }, auth));
    registerSecret((await u.json()).password);
    await server.fetch(`/admin/api/projects/${p.id}?purge=true`, jsonRequest("DELETE", { confirm: "purge-users" }, auth));
    expect(await server.ctx.sql`select 1 from pg_roles where rolname like ${`p\\_${p.id}%`}`).toHaveLength(0);
    expect(await server.ctx.sql`select 1 from project_users where project_id = ${p.id}`).toHaveLength(0);
  });
});

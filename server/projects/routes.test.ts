import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import postgres from "postgres";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret, waitFor } from "../test/harness";
import { purgeExpiredProjects } from "./reconciler";

let server: TestServer;
let auth: Record<string, string>;
const clients = clientTracker();

beforeAll(async () => {
  server = await startTestServer();
  auth = await adminHeaders(server);
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

const connect = (dsn: string) => clients.connect(dsn);
const createProject = (name: string) => createTestProject(server, auth, name);

async function call(method: string, path: string, body?: unknown) {
  const res = await server.fetch(path, body === undefined ? { method, headers: auth } : jsonRequest(method, body, auth));
  return { status: res.status, body: await res.json().catch(() => undefined) };
}

describe("POST /admin/api/projects", () => {
  it("provisions a ready database with three roles and returns their connection strings once", async () => {
    const p = await createProject("shop-backend");
    expect(p).toMatchObject({ name: "shop-backend", status: "ready", database: { name: `p_${p.id}`, host: "127.0.0.1", sslmode: "disable" } });
    expect(p.id).toMatch(/^[a-z0-9]{10}$/);
    expect(p.database.roles).toEqual({ owner: `p_${p.id}_owner`, app: `p_${p.id}_app`, ro: `p_${p.id}_ro` });
    for (const kind of ["owner", "app", "ro"]) {
      expect(p.credentials[kind].password.length).toBeGreaterThanOrEqual(24);
      expect(p.credentials[kind].connection_string).toBe(
        `postgresql://p_${p.id}_${kind}:${p.credentials[kind].password}@127.0.0.1:${p.database.port}/p_${p.id}?sslmode=disable`,
      );
    }
    const again = await call("GET", `/admin/api/projects/${p.id}`);
    expect(again.body).not.toHaveProperty("credentials");
    expect(JSON.stringify(again.body)).not.toContain(p.credentials.app.password);
  });

  it("gives the owner DDL, the app DML, ro SELECT only, and vector to all", async () => {
    const p = await createProject("roles-check");
    const owner = connect(p.credentials.owner.connection_string);
    const app = connect(p.credentials.app.connection_string);
    const ro = connect(p.credentials.ro.connection_string);
    await owner`create table items (id serial primary key, label text, embedding vector(3))`;
    await app`insert into items (label, embedding) values ('a', '[1,2,3]')`;
    await app`update items set label = 'b'`;
    expect(await ro`select label, embedding <-> '[1,2,4]' as d from items`).toEqual([{ label: "b", d: 1 }]);
    // Large objects are the one way to write without table privileges: only the owner keeps them.
    for (const client of [app, ro]) expect((await client`select lo_from_bytea(0, 'x')`.catch((e) => e)).code).toBe("42501");
    expect((await owner`select lo_from_bytea(0, 'x') > 0 as ok`)[0]).toEqual({ ok: true });
    for (const [who, client, statement] of [
      ["ro", ro, "insert into items (label) values ('x')"],
      ["ro", ro, "delete from items"],
      ["app", app, "create table nope (id int)"],
      ["app", app, "drop table items"],
      ["app", app, "alter table items add column x int"],
      ["ro", ro, "create table nope (id int)"],
      ["app", app, "create schema other"],
    ] as const) {
      const error = await client.unsafe(statement).catch((e) => e);
      expect({ who, statement, code: error.code }).toEqual({ who, statement, code: "42501" });
    }
  });

  it("hardens the roles", async () => {
    const p = await createProject("hardened");
    const roles = await server.ctx.sql`
      select rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolconnlimit, rolconfig
      from pg_roles where rolname like ${`p\\_${p.id}\\_%`} order by rolname`;
    expect(roles.map((r) => r.rolname)).toEqual([`p_${p.id}_app`, `p_${p.id}_owner`, `p_${p.id}_ro`]);
    for (const r of roles) {
      expect(r).toMatchObject({ rolsuper: false, rolcreatedb: false, rolcreaterole: false, rolreplication: false, rolbypassrls: false });
      expect(r.rolconnlimit).toBeGreaterThan(0);
      expect(r.rolconfig).toEqual(expect.arrayContaining(["statement_timeout=30s", "idle_in_transaction_session_timeout=60s"]));
    }
    const [db] = await server.ctx.sql`select datacl::text from pg_database where datname = ${`p_${p.id}`}`;
    expect(db!.datacl).not.toMatch(/(^|[{,])=/); // no grant to PUBLIC
  });

  const badNames = ["ab", "x".repeat(41), "Upper", "with space", "dots.no", "ünï"];
  for (const name of badNames) {
    it(`rejects the name ${JSON.stringify(name)} with 400`, async () => {
      const res = await call("POST", "/admin/api/projects", { name });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("validation_failed");
    });
  }

  it("answers 409 for a name in use", async () => {
    await createProject("taken-name");
    const res = await call("POST", "/admin/api/projects", { name: "taken-name" });
    expect(res.status).toBe(409);
  });

  it("needs an admin", async () => {
    const res = await server.fetch("/admin/api/projects", jsonRequest("POST", { name: "anon-project" }));
    expect(res.status).toBe(401);
  });
});

describe("listing, reading and renaming", () => {
  it("lists newest first with paging and a status filter; GET unknown is 404", async () => {
    const a = await createProject("list-a");
    const b = await createProject("list-b");
    const page = await call("GET", "/admin/api/projects?limit=2");
    expect(page.body.items.map((p: { id: string }) => p.id)).toEqual([b.id, a.id]);
    const ready = await call("GET", "/admin/api/projects?status=ready&limit=1000");
    expect(ready.body.items.every((p: { status: string }) => p.status === "ready")).toBe(true);
    expect((await call("GET", "/admin/api/projects?status=bogus")).status).toBe(400);
    expect((await call("GET", "/admin/api/projects/zzzzzzzzzz")).status).toBe(404);
    expect((await call("GET", "/admin/api/projects/../etc")).status).toBe(404);
  });

  it("PATCH changes name and description, with the same name rules", async () => {
    const p = await createProject("before-rename");
    const res = await call("PATCH", `/admin/api/projects/${p.id}`, { name: "after-rename", description: "the shop" });
    expect(res.body).toMatchObject({ name: "after-rename", description: "the shop", database: { name: `p_${p.id}` } });
    await createProject("other-name");
    expect((await call("PATCH", `/admin/api/projects/${p.id}`, { name: "other-name" })).status).toBe(409);
    expect((await call("PATCH", `/admin/api/projects/${p.id}`, { name: "BAD" })).status).toBe(400);
    expect((await call("PATCH", `/admin/api/projects/${p.id}`, {})).status).toBe(400);
  });

  it("shows size_bytes (the database's size) and last_activity_at (the latest API key use) in list and get", async () => {
    const p = await createProject("stats-check");
    const listed = async () => (await call("GET", "/admin/api/projects?limit=1000")).body.items.find((x: { id: string }) => x.id === p.id);
    const before = await listed();
    expect(before.size_bytes).toBeGreaterThan(0);
    expect(before.last_activity_at).toBeNull();
    expect((await call("GET", `/admin/api/projects/${p.id}`)).body).toMatchObject({ size_bytes: before.size_bytes, last_activity_at: null });

    // About 8 MB of rows (1,000-byte values stay inline, uncompressed).
    const owner = connect(p.credentials.owner.connection_string);
    await owner`create table bulk as select g as id, repeat('x', 1000) as filler from generate_series(1, 8000) g`;
    expect((await listed()).size_bytes).toBeGreaterThan(before.size_bytes + 5_000_000);

    const created = await call("POST", `/admin/api/projects/${p.id}/keys`, { name: "stats", kind: "secret" });
    registerSecret(created.body.key);
    expect((await server.fetch("/v1/db/tables", { headers: { "x-api-key": created.body.key } })).status).toBe(200);
    // last_used_at is written off the request's path.
    const got = await waitFor("last_activity_at", async () => (await call("GET", `/admin/api/projects/${p.id}`)).body.last_activity_at ?? false);
    expect(Math.abs(Date.parse(got) - Date.now())).toBeLessThan(60_000);
    expect((await listed()).last_activity_at).toBe(got);

    // A deleted project keeps its size; the database is still there.
    await call("DELETE", `/admin/api/projects/${p.id}`);
    expect((await listed()).size_bytes).toBeGreaterThan(before.size_bytes + 5_000_000);
  });
});

describe("soft delete, restore and purge", () => {
  it("soft delete refuses connections; restore brings them back with the data", async () => {
    const p = await createProject("delete-me");
    const owner = connect(p.credentials.owner.connection_string);
    await owner`create table notes (body text)`;
    await owner`insert into notes values ('kept')`;
    const held = connect(p.credentials.app.connection_string);
    await held`select 1`;

    const deleted = await call("DELETE", `/admin/api/projects/${p.id}`);
    expect(deleted.body).toMatchObject({ status: "deleted", deleted_at: expect.any(String) });
    expect((await held`select 1`.catch((e) => e)).code).toBeDefined(); // its session was terminated
    const refused = await connect(p.credentials.app.connection_string)`select 1`.catch((e) => e);
    expect(refused.code).toBe("55000"); // database is not accepting connections (object_not_in_prerequisite_state)
    expect((await call("DELETE", `/admin/api/projects/${p.id}`)).status).toBe(409);

    const restored = await call("POST", `/admin/api/projects/${p.id}/restore`);
    expect(restored.body).toMatchObject({ status: "ready", deleted_at: null });
    const again = connect(p.credentials.app.connection_string);
    expect(await again`select body from notes`).toEqual([{ body: "kept" }]);
  });

  it("purge needs the name echoed back, then drops database and roles for good", async () => {
    const p = await createProject("purge-me");
    expect((await call("DELETE", `/admin/api/projects/${p.id}?purge=true`, { confirm: "wrong" })).status).toBe(422);
    expect((await call("DELETE", `/admin/api/projects/${p.id}?purge=true`, {})).status).toBe(400);
    expect((await call("DELETE", `/admin/api/projects/${p.id}?purge=1`, { confirm: "purge-me" })).status).toBe(400);
    const purged = await call("DELETE", `/admin/api/projects/${p.id}?purge=true`, { confirm: "purge-me" });
    expect(purged.body).toMatchObject({ status: "purged", purged_at: expect.any(String) });
    expect(await server.ctx.sql`select 1 from pg_database where datname = ${`p_${p.id}`}`).toHaveLength(0);
    expect(await server.ctx.sql`select 1 from pg_roles where rolname like ${`p\\_${p.id}%`}`).toHaveLength(0);
    expect((await call("GET", `/admin/api/projects/${p.id}`)).body.status).toBe("purged");
    expect((await call("POST", `/admin/api/projects/${p.id}/restore`)).status).toBe(404);
    // The name is free again.
    await createProject("purge-me");
  });
});

describe("POST /admin/api/projects/:id/credentials/reveal", () => {
  it("returns the current passwords and audits the reveal", async () => {
    const p = await createProject("reveal-me");
    const res = await server.fetch(`/admin/api/projects/${p.id}/credentials/reveal`, { method: "POST", headers: { ...auth, "x-request-id": "reveal-1" } });
    const body = await res.json();
    expect(body.credentials.app).toEqual(p.credentials.app);
    const [entry] = await server.ctx.sql`select action, target_id from audit_log where request_id = 'reveal-1'`;
    expect(entry).toEqual({ action: "project.credentials.reveal", target_id: p.id });
    expect(JSON.stringify(await server.ctx.sql`select details from audit_log`)).not.toContain(p.credentials.app.password);
  });
});

describe("POST /admin/api/projects/:id/credentials/rotate", () => {
  it("gives a role a new password: the old one fails at once, the new one works, reveal shows it", async () => {
    const p = await createProject("rotate-me");
    const open = connect(p.credentials.app.connection_string);
    await open`select 1`;
    const res = await server.fetch(`/admin/api/projects/${p.id}/credentials/rotate`, jsonRequest("POST", { role: "app" }, { ...auth, "x-request-id": "rotate-app" }));
    const rotated = await res.json();
    registerSecret(rotated.password);
    expect(rotated.role).toBe(`p_${p.id}_app`);
    expect(rotated.connection_string).toContain(`:${rotated.password}@`);
    expect(rotated.password).not.toBe(p.credentials.app.password);
    expect((await open`select 1`.catch((e) => e)) instanceof Error).toBe(true);
    expect((await connect(p.credentials.app.connection_string)`select 1`.catch((e) => e)).code).toBe("28P01");
    expect(await connect(rotated.connection_string)`select 1 as ok`).toEqual([{ ok: 1 }]);
    const revealed = (await call("POST", `/admin/api/projects/${p.id}/credentials/reveal`)).body.credentials;
    expect(revealed.app.password).toBe(rotated.password);
    expect(revealed.owner.password).toBe(p.credentials.owner.password);
    const [entry] = await server.ctx.sql`select action, details from audit_log where request_id = 'rotate-app'`;
    expect(entry).toEqual({ action: "project.credentials.rotate", details: { role: "app" } });
    expect((await call("POST", `/admin/api/projects/${p.id}/credentials/rotate`, { role: "admin" })).status).toBe(400);
  });
});

describe("many reveals at once", () => {
  it("all complete: a reveal holds one pool connection at a time", async () => {
    const p = await createProject("reveal-many");
    const statuses = await Promise.all(
      Array.from({ length: 8 }, () => server.fetch(`/admin/api/projects/${p.id}/credentials/reveal`, { method: "POST", headers: auth }).then((r) => r.status)),
    );
    expect(statuses).toEqual(Array(8).fill(200));
  });
});

describe("audit", () => {
  it("records create, delete, restore and purge", async () => {
    const p = await createProject("audited");
    await call("DELETE", `/admin/api/projects/${p.id}`);
    await call("POST", `/admin/api/projects/${p.id}/restore`);
    await call("DELETE", `/admin/api/projects/${p.id}?purge=true`, { confirm: "audited" });
    const actions = await server.ctx.sql`select action from audit_log where target_id = ${p.id} order by id`;
    expect(actions.map((a) => a.action)).toEqual(["project.create", "project.delete", "project.restore", "project.purge"]);
  });
});

describe("failed projects", () => {
  it("show the reason, and can be retried once the cause is gone", async () => {
    await server.ctx.sql`alter function atlashub_set_role_password(text, text) rename to atlashub_set_role_password_off`;
    let failed;
    try {
      failed = await call("POST", "/admin/api/projects", { name: "fails-once" });
    } finally {
      await server.ctx.sql`alter function atlashub_set_role_password_off(text, text) rename to atlashub_set_role_password`;
    }
    expect(failed.status).toBe(500);
    expect(failed.body.error).toMatchObject({ code: "provisioning_failed", details: { status: "failed" } });
    const id = failed.body.error.details.project_id;
    expect((await call("GET", `/admin/api/projects/${id}`)).body).toMatchObject({ status: "failed", failure_reason: expect.stringContaining("atlashub_set_role_password") });

    const retried = await call("POST", `/admin/api/projects/${id}/retry`);
    expect(retried.body).toMatchObject({ status: "ready", failure_reason: null });
    const creds = (await call("POST", `/admin/api/projects/${id}/credentials/reveal`)).body.credentials;
    registerSecret(creds.app.password, creds.owner.password, creds.ro.password);
    expect(await connect(creds.app.connection_string)`select 1 as ok`).toEqual([{ ok: 1 }]);
    expect((await call("POST", `/admin/api/projects/${id}/retry`)).status).toBe(409);
  });
});

describe("retention", () => {
  it("purges soft-deleted projects once ATLASHUB_DELETED_RETENTION has passed", async () => {
    const short = await startTestServer({ ATLASHUB_DELETED_RETENTION: "1s" });
    try {
      const shortAuth = await adminHeaders(short);
      const res = await short.fetch("/admin/api/projects", jsonRequest("POST", { name: "short-lived" }, shortAuth));
      const p = await res.json();
      for (const c of Object.values(p.credentials) as { password: string }[]) registerSecret(c.password);
      await short.fetch(`/admin/api/projects/${p.id}`, { method: "DELETE", headers: shortAuth });
      await short.ctx.sql`update projects set deleted_at = now() - interval '2 seconds' where id = ${p.id}`;
      expect(await purgeExpiredProjects(short.ctx)).toBe(1);
      const [row] = await short.ctx.sql`select status from projects where id = ${p.id}`;
      expect(row!.status).toBe("purged");
      expect(await short.ctx.sql`select 1 from pg_database where datname = ${`p_${p.id}`}`).toHaveLength(0);
      const [entry] = await short.ctx.sql`select actor_type, details from audit_log where action = 'project.purge' and target_id = ${p.id}`;
      expect(entry).toEqual({ actor_type: "system", details: { reason: "retention" } });
    } finally {
      await short.stop();
    }
  });
});

describe("connection strings", () => {
  it("name ATLASHUB_PUBLIC_PG_HOST/_PORT when set (what apps elsewhere use to reach Postgres)", async () => {
    const pub = await startTestServer({ ATLASHUB_PUBLIC_PG_HOST: "db.example.internal", ATLASHUB_PUBLIC_PG_PORT: "6543" });
    try {
      const p = await createTestProject(pub, await adminHeaders(pub), "public-host");
      expect(p.database).toMatchObject({ host: "db.example.internal", port: 6543 });
      expect(p.credentials.app.connection_string).toContain("@db.example.internal:6543/");
    } finally {
      await pub.stop();
    }
  });
});

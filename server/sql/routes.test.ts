// POST /admin/api/projects/:id/sql against the real server and a real Postgres: one statement only,
// as the project's owner in its own database, 5 s timeout, 5,000-row cap, the deny list, audit.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";

interface Project { id: string; database: { name: string; host: string; port: number }; credentials: Record<"owner" | "app" | "ro", { role: string; password: string }> }

let server: TestServer;
let auth: Record<string, string>;
let a: Project;
let b: Project;
const clients = clientTracker();

beforeAll(async () => {
  server = await startTestServer();
  auth = await adminHeaders(server);
  a = await createTestProject(server, auth, "sql-a");
  b = await createTestProject(server, auth, "sql-b");
  const bOwner = ownerSession(b);
  await bOwner`create table secrets (id int primary key, body text)`;
  await bOwner`insert into secrets values (1, 'b only')`;
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

/** A direct session as the project's owner, the way an app's migrations would connect. */
function ownerSession(project: Project) {
  const { role, password } = project.credentials.owner;
  return clients.connect({ host: project.database.host, port: project.database.port, user: role, password, database: project.database.name });
}

async function runSql(project: Pick<Project, "id">, query: string, headers = auth) {
  const res = await server.fetch(`/admin/api/projects/${project.id}/sql`, jsonRequest("POST", { query }, headers));
  return { status: res.status, body: (await res.json()) as any };
}

/** The statement must run; its result body is returned. */
async function ok(project: Project, query: string) {
  const { status, body } = await runSql(project, query);
  if (status !== 200) throw new Error(`${query} → ${status} ${JSON.stringify(body)}`);
  return body;
}

describe("POST /admin/api/projects/:id/sql: running a statement", () => {
  it("runs as the project's owner role in the project's database", async () => {
    const body = await ok(a, "select current_user, session_user, current_database()");
    expect(body.rows).toEqual([[a.credentials.owner.role, a.credentials.owner.role, a.database.name]]);
  });

  it("creates a table, inserts rows and reads them back", async () => {
    expect(await ok(a, "create table notes (id serial primary key, body text not null)")).toMatchObject({ command: "CREATE TABLE", columns: [], rows: [], row_count: null });
    expect(await ok(a, "insert into notes (body) values ('one'), ('two')")).toMatchObject({ command: "INSERT", row_count: 2, rows: [] });
    const read = await ok(a, "select id, body from notes order by id");
    expect(read).toMatchObject({
      command: "SELECT",
      columns: [{ name: "id", type: "integer" }, { name: "body", type: "text" }],
      rows: [[1, "one"], [2, "two"]],
      row_count: 2,
      truncated: false,
      notices: [],
    });
    expect(read.duration_ms).toBeGreaterThanOrEqual(0);
  });

  it("returns rows as arrays (two columns may share a name) with JSON-safe values and format_type names", async () => {
    const body = await ok(
      a,
      `select 1 as x, 2 as x, 9007199254740993::bigint as big, 1.50::numeric(4,2) as num, true as yes, null::text as nothing,
              '{"a": 1}'::jsonb as doc, '2024-01-02 03:04:05+00'::timestamptz at time zone 'UTC' as ts, '\\x0102'::bytea as bin,
              array[1,2] as arr, 'NaN'::float8 as nan, 0.5::float8 as half`,
    );
    expect(body.columns).toEqual([
      { name: "x", type: "integer" }, { name: "x", type: "integer" }, { name: "big", type: "bigint" }, { name: "num", type: "numeric" },
      { name: "yes", type: "boolean" }, { name: "nothing", type: "text" }, { name: "doc", type: "jsonb" }, { name: "ts", type: "timestamp without time zone" },
      { name: "bin", type: "bytea" }, { name: "arr", type: "integer[]" }, { name: "nan", type: "double precision" }, { name: "half", type: "double precision" },
    ]);
    expect(body.rows).toEqual([[1, 2, "9007199254740993", "1.50", true, null, '{"a": 1}', "2024-01-02 03:04:05", "\\x0102", "{1,2}", "NaN", 0.5]]);
  });

  it("returns the statement's notices", async () => {
    const body = await ok(a, "drop table if exists no_such_table");
    expect(body.notices).toEqual([{ severity: "NOTICE", code: "00000", message: 'table "no_such_table" does not exist, skipping' }]);
  });

  it("records the statement's text in the audit log, never its results", async () => {
    await ok(a, "select 'audit-' || 'result' as marker");
    const res = await server.fetch("/admin/api/audit?action=project.sql&limit=100", { headers: auth });
    const entries = ((await res.json()) as any).items as { target_id: string; details: Record<string, unknown> }[];
    const entry = entries.find((e) => e.details.query === "select 'audit-' || 'result' as marker");
    expect(entry).toMatchObject({ target_id: a.id });
    expect(JSON.stringify(entries)).not.toContain("audit-result");
  });
});

describe("POST /admin/api/projects/:id/sql: exactly one statement", () => {
  it.each([
    ["a trailing ; and a comment after it", "select 1; -- done"],
    ["empty statements around it", ";; select 1 ;;"],
    ["; inside a string", "select ';' as x"],
    ["; inside an E'' string after an escaped quote", "select E'\\';' as x"],
    ["; inside dollar quotes", "select $$;$$ as x, $tag$ ; $$ ; $tag$ as y"],
    ["; inside a quoted identifier", 'select 1 as ";"'],
    ["; inside -- and nested /* */ comments", "select 1 -- ; select 2\n /* ; /* ; */ ; */ as x"],
    ["; inside a BEGIN ATOMIC function body", "create function two() returns int language sql begin atomic select 1; select 2; end"],
  ])("runs one statement with %s", async (_, query) => {
    expect((await runSql(a, query)).status).toBe(200);
  });

  it("rejects several statements with 400 and points at the second one", async () => {
    const { status, body } = await runSql(a, "select ';';\n/* x */ select 2");
    expect(status).toBe(400);
    expect(body.error).toMatchObject({ code: "sql_multiple_statements", details: { statements: 2, position: 21 } });
  });

  it.each([
    "select 1; select 2",
    "select 1;/**/do $$ begin end $$",
    "select $$;$$; select 2",
    "create function f() returns int language sql begin atomic select 1; end; select 2",
  ])("rejects %p with 400", async (query) => {
    const { status, body } = await runSql(a, query);
    expect(status).toBe(400);
    expect(body.error.code).toBe("sql_multiple_statements");
  });

  it("leaves the last word to Postgres: two statements the lexer took for one are refused by the extended protocol", async () => {
    // `begin` right after CREATE FUNCTION looks like a BEGIN ATOMIC body to the psql-style splitter.
    const { status, body } = await runSql(a, "create function begin() returns int language sql return 1; select 2");
    expect(status).toBe(400);
    expect(body.error.code).toBe("sql_multiple_statements");
    expect((await ok(a, "select count(*)::int as n from pg_proc where proname = 'begin'")).rows).toEqual([[0]]);
  });

  it("rejects a query of only comments with 400 sql_empty", async () => {
    const { status, body } = await runSql(a, "  -- nothing\n/* at all */ ;");
    expect(status).toBe(400);
    expect(body.error.code).toBe("sql_empty");
  });
});

describe("POST /admin/api/projects/:id/sql: errors", () => {
  it("answers a Postgres error with 400, its message, SQLSTATE and position, and no stack", async () => {
    const { status, body } = await runSql(a, "select * fro notes");
    expect(status).toBe(400);
    expect(body).toEqual({ error: { code: "sql_error", message: 'syntax error at or near "fro"', details: { sqlstate: "42601", position: 10 } } });
  });

  it("counts the position in characters, as the editor shows them", async () => {
    const { body } = await runSql(a, "select 'ééé😀', nope");
    expect(body.error.details).toEqual({ sqlstate: "42703", position: 16 });
  });

  it("passes on detail, hint and where of an error raised in a function", async () => {
    await ok(a, "create function boom() returns int language plpgsql as $$ begin raise exception 'boom' using detail = 'd', hint = 'h'; end $$");
    const { status, body } = await runSql(a, "select boom()");
    expect(status).toBe(400);
    expect(body.error).toMatchObject({ code: "sql_error", message: "boom", details: { sqlstate: "P0001", detail: "d", hint: "h" } });
    expect(body.error.details.where).toContain("boom()");
  });

  it("answers 404 for an unknown project, 409 for a deleted one and 401 without credentials", async () => {
    expect((await runSql({ id: "zzzzzzzzzz" }, "select 1")).status).toBe(404);
    expect((await runSql({ id: "../x" }, "select 1")).status).toBe(404);
    const c = await createTestProject(server, auth, "sql-c");
    expect((await server.fetch(`/admin/api/projects/${c.id}`, { method: "DELETE", headers: auth })).status).toBe(200);
    const deleted = await runSql(c, "select 1");
    expect(deleted.status).toBe(409);
    expect((await runSql(a, "select 1", {})).status).toBe(401);
  });

  it("validates the body: a query is required", async () => {
    const res = await server.fetch(`/admin/api/projects/${a.id}/sql`, jsonRequest("POST", { sql: "select 1" }, auth));
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.code).toBe("validation_failed");
  });
});

describe("POST /admin/api/projects/:id/sql: limits", () => {
  it("cancels a statement after 5 s with a clear error, even when the owner role's own default says otherwise", async () => {
    // The owner may change its own defaults from any session; the editor's startup parameters win.
    await ownerSession(a)`alter role current_user set statement_timeout = 0`;
    const started = Date.now();
    const { status, body } = await runSql(a, "select pg_sleep(6)");
    const elapsed = Date.now() - started;
    expect(status).toBe(400);
    expect(body.error).toMatchObject({ code: "sql_timeout", message: "The statement ran longer than 5 s and was cancelled." });
    expect(elapsed).toBeGreaterThanOrEqual(4_900);
    expect(elapsed).toBeLessThan(6_000);
  });

  it("keeps standard_conforming_strings on whatever the owner role's default, so '\\' is a whole string", async () => {
    await ownerSession(a)`alter role current_user set standard_conforming_strings = off`;
    expect((await ok(a, "select '\\' as backslash")).rows).toEqual([["\\"]]);
  });

  it("caps a result at 5,000 rows and says it was truncated", async () => {
    const body = await ok(a, "select g from generate_series(1, 10000) g");
    expect(body.rows.length).toBe(5000);
    expect(body.rows[4999]).toEqual([5000]);
    expect(body).toMatchObject({ row_count: 5000, truncated: true });
  });

  it("does not flag exactly 5,000 rows as truncated", async () => {
    const body = await ok(a, "select g from generate_series(1, 5000) g");
    expect(body).toMatchObject({ row_count: 5000, truncated: false, command: "SELECT" });
  });

  it("reads a result through a portal, so a result of 10^10 rows returns its first 5,000 at once", async () => {
    const body = await ok(a, "select x, y from generate_series(1, 100000) x, generate_series(1, 100000) y");
    expect(body.rows.length).toBe(5000);
    expect(body.truncated).toBe(true);
    expect(body.duration_ms).toBeLessThan(4_000);
  });
});

describe("POST /admin/api/projects/:id/sql: deny list", () => {
  const DENIED: [rule: string, query: string][] = [
    ["copy_program", "copy notes to program 'cat > /tmp/x'"],
    ["copy_program", "COPY notes FROM PROGRAM 'id'"],
    ["copy_file", "copy notes to '/tmp/notes.csv'"],
    ["copy_file", "copy (select 1) to '/tmp/one'"],
    ["copy_file", "copy notes from '/etc/passwd'"],
    ["copy_stdio", "copy notes to stdout"],
    ["copy_stdio", "copy notes from stdin"],
    ["do", "do $$ begin perform 1; end $$"],
    ["do", "/**/DO $$ begin end $$"],
    ["do", "-- comment\n do language plpgsql 'begin end'"],
    ["role_ddl", "create role intruder login"],
    ["role_ddl", "alter role current_user createrole"],
    ["role_ddl", "drop user if exists someone"],
    ["role_ddl", "create group g"],
    ["role_ddl", "ALTER USER current_user SET search_path = x"],
    ["database_ddl", "create database other"],
    ["database_ddl", "alter database current set work_mem = '1GB'"],
    ["database_ddl", "drop database postgres"],
    ["extension", "create extension dblink"],
    ["extension", 'create extension if not exists "file_fdw"'],
    ["extension", "drop extension pgcrypto, adminpack"],
    ["extension", "alter extension plpgsql update"],
    ["alter_system", "alter system set shared_preload_libraries = 'x'"],
    ["load", "load 'auto_explain'"],
    ["set_role", "set role postgres"],
    ["set_role", "SET SESSION ROLE postgres"],
    ["set_role", "set local role none"],
    ["set_role", "set session authorization postgres"],
    ["set_role", "reset role"],
    ["set_role", 'set "role" to postgres'],
    ["set_role", "select set_config('role', 'postgres', false)"],
    ["set_role", "select pg_catalog.set_config('x.y', '1', false), set_config('Session_Authorization', 'postgres', false)"],
    ["set_role", "select set_config(E'\\x72ole', 'postgres', false)"],
    ["server_function", "select pg_read_file('/etc/passwd')"],
    ["server_function", "select pg_read_binary_file('postmaster.pid')"],
    ["server_function", "select * from pg_ls_dir('.')"],
    ["server_function", "select pg_ls_waldir()"],
    ["server_function", "select pg_stat_file('PG_VERSION')"],
    ["server_function", "select lo_import('/etc/hostname')"],
    ["server_function", "select lo_export(1, '/tmp/x')"],
    ["server_function", "select pg_reload_conf()"],
    ["server_function", "select pg_terminate_backend(1)"],
    ["server_function", "select pg_cancel_backend(1)"],
    ["server_function", "select * from dblink('dbname=postgres', 'select 1') as t(x int)"],
    ["server_function", "select dblink_connect('x')"],
    ["server_function", 'select pg_catalog."pg_read_file"(\'x\')'],
    ["server_function", "select U&\"\\0070g_read_file\"('x')"],
    ["server_function", "select pg_create_logical_replication_slot('s', 'test_decoding')"],
  ];

  it.each(DENIED)("refuses (%s) %p with 403 sql_denied, and audits the attempt", async (rule, query) => {
    const { status, body } = await runSql(a, query);
    expect(status).toBe(403);
    expect(body.error).toMatchObject({ code: "sql_denied", details: { rule } });
  });

  it("names the rule in the message and records the refusal in the audit log", async () => {
    const { body } = await runSql(a, "select pg_read_file('/etc/hostname')");
    expect(body.error.message).toBe("The SQL editor does not run this statement: pg_read_file() reaches the server's files, processes or other databases.");
    const res = await server.fetch("/admin/api/audit?action=project.sql&limit=100", { headers: auth });
    const entries = ((await res.json()) as any).items as { details: Record<string, unknown> }[];
    expect(entries.find((e) => e.details.query === "select pg_read_file('/etc/hostname')")?.details.denied).toBe("server_function");
  });

  it.each([
    ["a denied word inside a string", "select 'DO', 'copy x to program', 'pg_read_file' as x"],
    ["a denied word inside comments", "select 1 -- do $$ $$\n /* set role postgres */"],
    ["a denied word inside dollar quotes", "select $$ drop database x $$"],
    ["ON CONFLICT DO NOTHING", "insert into notes (id, body) values (1, 'x') on conflict do nothing"],
    ["a column named role", "create table members (name text, role text)"],
    ["UPDATE … SET role =", "update members set role = 'admin'"],
    ["set_config of a harmless setting", "select set_config('request.jwt.claims', '{}', false)"],
    ["an allowed extension", "create extension if not exists pg_trgm"],
    ["dropping an allowed extension", "drop extension if exists pg_trgm, citext"],
    ["SET of another setting", "set work_mem = '8MB'"],
  ])("runs %s", async (_, query) => {
    const { status, body } = await runSql(a, query);
    expect({ status, error: body.error }).toEqual({ status: 200, error: undefined });
  });
});

describe("POST /admin/api/projects/:id/sql: another project's data is out of reach", () => {
  it("cannot name another project's database", async () => {
    const { status, body } = await runSql(a, `select * from ${b.database.name}.public.secrets`);
    expect(status).toBe(400);
    expect(body.error.details.sqlstate).toBe("0A000"); // cross-database references are not implemented
  });

  it("does not see another project's tables in its own database", async () => {
    const { body } = await runSql(a, "select * from secrets");
    expect(body.error.details.sqlstate).toBe("42P01");
  });

  it("cannot switch to another project's role, nor reach it through dblink", async () => {
    expect((await runSql(a, `set role ${b.credentials.owner.role}`)).body.error.details.rule).toBe("set_role");
    expect((await runSql(a, `select set_config('role', '${b.credentials.owner.role}', false)`)).body.error.details.rule).toBe("set_role");
    expect((await runSql(a, `select * from dblink('dbname=${b.database.name}', 'select body from secrets') as t(body text)`)).body.error.details.rule).toBe("server_function");
    expect((await runSql(a, "create extension dblink")).body.error.details.rule).toBe("extension");
  });

  it("is stopped by the owner role's privileges where the deny list cannot look (SQL built inside a function)", async () => {
    await ok(a, `create function sneak(r text) returns void language plpgsql as $$ begin execute format('set role %I', r); end $$`);
    const { status, body } = await runSql(a, `select sneak('${b.credentials.owner.role}')`);
    expect(status).toBe(400);
    expect(body.error).toMatchObject({ code: "sql_error", details: { sqlstate: "42501" } });
    expect(body.error.message).toContain("permission denied to set role");
  });

  it("runs project B's SQL as B's owner in B's database", async () => {
    const body = await ok(b, "select current_user, current_database(), (select body from secrets)");
    expect(body.rows).toEqual([[b.credentials.owner.role, b.database.name, "b only"]]);
  });
});

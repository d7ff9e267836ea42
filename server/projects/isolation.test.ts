// The isolation suite (issue 4): whatever a project's own roles try, they stay inside their own
// database. Two projects A and B are created through the admin API; every attempt below is made as
// one of A's roles (owner, app, ro) and must fail with the exact Postgres error named in its row.
// An attempt that succeeds is a hole in provisioning (provision.ts, platform/db.ts), never a
// reason to relax the row.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import postgres from "postgres";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret } from "../test/harness";

type Kind = "owner" | "app" | "ro";
const KINDS: Kind[] = ["owner", "app", "ro"];

interface Credential { role: string; password: string; connection_string: string }
interface Project { id: string; database: { name: string; host: string; port: number }; credentials: Record<Kind, Credential> }

let server: TestServer;
let auth: Record<string, string>;
let a: Project;
let b: Project;
const clients = clientTracker();

beforeAll(async () => {
  server = await startTestServer();
  auth = await adminHeaders(server);
  a = await createProject("isolation-a");
  b = await createProject("isolation-b");
  const bOwner = connect(b, "owner");
  await bOwner`create table secrets (id int primary key, body text)`;
  await bOwner`insert into secrets values (1, 'b only')`;
  await bOwner.end({ timeout: 1 });
  await asA("owner", (sql) => sql`create table items (id int primary key, label text)`);
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

const createProject = (name: string): Promise<Project> => createTestProject(server, auth, name);

/** A session as one of a project's roles, to its own database unless another is named. */
function connect(project: Project, kind: Kind, database = project.database.name, notices: postgres.Notice[] = []) {
  return clients.connect({
    host: project.database.host,
    port: project.database.port,
    user: project.credentials[kind].role,
    password: project.credentials[kind].password,
    database,
    onnotice: (n) => notices.push(n),
  });
}

/** Runs `run` on a fresh session of A's role and ends it, so a statement that wrongly succeeds (SET ROLE) cannot leak into the next row. */
async function asA<T>(kind: Kind, run: (sql: postgres.Sql) => Promise<T>, notices?: postgres.Notice[]) {
  const sql = connect(a, kind, a.database.name, notices);
  try {
    return await run(sql);
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** The error `run` fails with; a success fails the test with what it returned. */
async function failure(run: () => Promise<unknown>): Promise<postgres.PostgresError> {
  const outcome = await run().then(
    (value) => ({ ok: true as const, value }),
    (error) => ({ ok: false as const, error }),
  );
  if (outcome.ok) throw new Error(`expected a Postgres error, but the attempt succeeded and returned ${JSON.stringify(outcome.value)}`);
  expect(outcome.error).toBeInstanceOf(postgres.PostgresError);
  return outcome.error;
}

/** What a failed attempt is compared on: the SQLSTATE, with the message alongside for a readable diff. */
const codeOf = (e: postgres.PostgresError, code: string) => ({ code: e.code, message: e.code === code ? "…" : e.message });
const want = (code: string) => ({ code, message: "…" });

const INSUFFICIENT_PRIVILEGE = "42501";

describe("positive control: each role works in its own database", () => {
  for (const kind of KINDS) {
    it(`${kind} connects to its own database and runs select 1`, async () => {
      const rows = await asA(kind, (sql) => sql`select 1 as ok, current_user as who, current_database() as db`);
      expect(rows).toEqual([{ ok: 1, who: a.credentials[kind].role, db: a.database.name }]);
    });
  }
});

describe("connecting to another database", () => {
  // Every database but the project's own has CONNECT revoked from PUBLIC, so the server refuses at
  // startup with "permission denied for database" (42501), after the password was accepted.
  const targets: [string, () => string][] = [
    ["project B's database", () => b.database.name],
    ["the control-plane database", () => server.ctx.config.controlDb],
    ["postgres", () => "postgres"],
    ["template1", () => "template1"],
  ];
  for (const kind of KINDS) {
    for (const [label, database] of targets) {
      it(`${kind} cannot connect to ${label}`, async () => {
        const error = await failure(() => connect(a, kind, database())`select 1`);
        expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
      });
    }
  }
});

describe("reading project B's tables", () => {
  for (const kind of KINDS) {
    it(`${kind} cannot connect to B's database to read secrets`, async () => {
      const error = await failure(() => connect(a, kind, b.database.name)`select body from secrets`);
      expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
    });

    it(`${kind} cannot name B's table across databases from A's database`, async () => {
      // Postgres has no cross-database references at all: feature_not_supported (0A000).
      const error = await failure(() => asA(kind, (sql) => sql.unsafe(`select body from ${b.database.name}.public.secrets`)));
      expect(codeOf(error, "0A000")).toEqual(want("0A000"));
    });

    for (const extension of ["dblink", "postgres_fdw"]) {
      it(`${kind} cannot create the ${extension} extension to reach B's database`, async () => {
        const error = await failure(() => asA(kind, (sql) => sql.unsafe(`create extension ${extension}`)));
        expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
      });
    }
  }
});

describe("creating databases, roles and temporary tables", () => {
  const attempts: [string, string][] = [
    ["CREATE DATABASE", "create database isolation_escape"],
    ["CREATE ROLE", "create role isolation_escape login password 'x'"],
    ["CREATE TEMP TABLE in its own database", "create temp table scratch (id int)"],
  ];
  for (const kind of KINDS) {
    for (const [label, statement] of attempts) {
      it(`${kind} cannot ${label}`, async () => {
        const error = await failure(() => asA(kind, (sql) => sql.unsafe(statement)));
        expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
      });
    }
  }
});

describe("SET ROLE", () => {
  for (const kind of KINDS) {
    const targets: [string, () => string][] = [
      ...KINDS.map((k) => [`B's ${k} role`, () => b.credentials[k].role] as [string, () => string]),
      ...KINDS.filter((k) => k !== kind).map((k) => [`A's ${k} role`, () => a.credentials[k].role] as [string, () => string]),
      ["the cluster superuser", () => server.ctx.engine.superuser().user],
    ];
    for (const [label, role] of targets) {
      it(`${kind} cannot SET ROLE to ${label}`, async () => {
        const error = await failure(() => asA(kind, (sql) => sql.unsafe(`set role "${role()}"`)));
        expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
      });
    }
    it(`${kind} cannot SET SESSION AUTHORIZATION to B's owner role`, async () => {
      const error = await failure(() => asA(kind, (sql) => sql.unsafe(`set session authorization "${b.credentials.owner.role}"`)));
      expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
    });
  }
});

describe("cannot block CREATE DATABASE by sitting on template1", () => {
  for (const kind of KINDS) {
    it(`${kind} cannot connect to template1`, async () => {
      const error = await failure(() => connect(a, kind, "template1")`select 1`);
      expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
    });
  }

  it("creating a project succeeds while A's roles hold connections open", async () => {
    const held = KINDS.map((kind) => connect(a, kind));
    try {
      await Promise.all(held.map((sql) => sql`select 1`));
      const c = await createProject("isolation-c");
      expect(c).toMatchObject({ status: "ready", database: { name: `p_${c.id}` } });
      expect(await connect(c, "app")`select 1 as ok`).toEqual([{ ok: 1 }]);
    } finally {
      await Promise.all(held.map((sql) => sql.end({ timeout: 1 })));
    }
  });

  it("creating a project succeeds even while a session sits on template1 (projects are copied from template0)", async () => {
    const su = server.ctx.engine.superuser();
    const squatter = clients.connect({ ...su, database: "template1" });
    try {
      await squatter`select 1`;
      const d = await createProject("isolation-d");
      expect(d).toMatchObject({ status: "ready" });
    } finally {
      await squatter.end({ timeout: 1 });
    }
  });
});

describe("other projects' credentials", () => {
  for (const kind of KINDS) {
    it(`${kind} cannot reach the control plane that stores them`, async () => {
      const error = await failure(() => connect(a, kind, server.ctx.config.controlDb)`select password_enc from project_roles`);
      expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
    });

    for (const [catalog, column, key] of [["pg_authid", "rolpassword", "rolname"], ["pg_shadow", "passwd", "usename"]] as const) {
      it(`${kind} cannot read ${catalog}`, async () => {
        const error = await failure(() => asA(kind, (sql) => sql`select ${sql(column)} from ${sql(catalog)} where ${sql(key)} = ${b.credentials.app.role}`));
        expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
      });
    }

    it(`${kind} sees B's password only as the pg_roles mask`, async () => {
      const rows = await asA(kind, (sql) => sql`select rolpassword from pg_roles where rolname = ${b.credentials.app.role}`);
      expect(rows).toEqual([{ rolpassword: "********" }]);
    });

    it(`${kind} cannot change B's password`, async () => {
      const error = await failure(() => asA(kind, (sql) => sql.unsafe(`alter role "${b.credentials.app.role}" password 'taken-over'`)));
      expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
    });
  }
});

describe("ALTER ROLE on itself", () => {
  const changes = ["superuser", "createdb", "createrole", "replication", "bypassrls", "connection limit -1", "connection limit 1000"];
  for (const kind of KINDS) {
    for (const change of changes) {
      it(`${kind} cannot give itself ${change.toUpperCase()}`, async () => {
        const error = await failure(() => asA(kind, (sql) => sql.unsafe(`alter role current_user with ${change}`)));
        expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
      });
    }
  }
});

describe("objects and grants inside A's own database", () => {
  const creations: [string, string][] = [
    ["a table in public", "create table public.sneaky (id int)"],
    ["a view in public", "create view public.sneaky_view as select 1 as one"],
    ["a function in public", "create function public.sneaky_fn() returns int language sql as 'select 1'"],
    ["a sequence in public", "create sequence public.sneaky_seq"],
    ["a schema of its own", "create schema sneaky"],
  ];
  for (const kind of ["app", "ro"] as const) {
    for (const [label, statement] of creations) {
      it(`${kind} cannot create ${label}`, async () => {
        const error = await failure(() => asA(kind, (sql) => sql.unsafe(statement)));
        expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
      });
    }
  }

  for (const kind of ["app", "ro"] as const) {
    for (const [grantee, name] of [["PUBLIC", () => "public"], ["B's app role", () => `"${b.credentials.app.role}"`]] as const) {
      it(`${kind} cannot GRANT on A's tables to ${grantee}`, async () => {
        // A role that holds privileges on a table but no grant option gets warning 01007
        // (privilege_not_granted) and nothing is granted; the table's ACL is what must not change.
        const before = await aclOfItems();
        const notices: postgres.Notice[] = [];
        await asA(kind, (sql) => sql.unsafe(`grant all on table items to ${name()}`), notices);
        expect(notices.map((n) => n.code)).toEqual(["01007"]);
        expect(await aclOfItems()).toEqual(before);
      });
    }
  }

  async function aclOfItems() {
    const [row] = await asA("owner", (sql) => sql`select relacl::text as acl from pg_class where oid = 'public.items'::regclass`);
    return row!.acl as string;
  }
});

describe("the server itself", () => {
  for (const kind of KINDS) {
    it(`${kind} cannot run a shell command through COPY … TO PROGRAM`, async () => {
      const error = await failure(() => asA(kind, (sql) => sql.unsafe("copy (select 1) to program 'true'")));
      expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
    });

    it(`${kind} cannot read server files with pg_read_file`, async () => {
      const error = await failure(() => asA(kind, (sql) => sql`select pg_read_file('postgresql.conf')`));
      expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
    });

    it(`${kind} cannot read or write server files through lo_import/lo_export`, async () => {
      for (const attempt of ["select lo_import('/etc/passwd')", "select lo_import('global/1260', 424242)", "select lo_export(0, '/tmp/atlashub-owned')"]) {
        const error = await failure(() => asA(kind, (sql) => sql.unsafe(attempt)));
        expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
      }
    });

    it(`${kind} cannot terminate a session of project B`, async () => {
      const victim = connect(b, "app");
      try {
        const [row] = await victim`select pg_backend_pid() as pid`;
        const error = await failure(() => asA(kind, (sql) => sql`select pg_terminate_backend(${row!.pid})`));
        expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
        expect(await victim`select 1 as alive`).toEqual([{ alive: 1 }]);
      } finally {
        await victim.end({ timeout: 1 });
      }
    });
  }
});

describe("projects made before a provisioning fix", () => {
  it("are brought up to the current hardening level by the reconciler (owner loses lo_import)", async () => {
    const { hardenProject, HARDENING_LEVEL } = await import("./provision");
    const { reconcileProjects } = await import("./reconciler");
    const old = await createProject("isolation-old");
    // As provisioning used to leave it: lo_import granted to the owner, level 0.
    const superuserDsn = new URL(process.env.ATLASHUB_TEST_DATABASE_URL!);
    superuserDsn.pathname = "/" + old.database.name;
    const su = clients.connect(superuserDsn.toString());
    await su.unsafe(`grant execute on function lo_import(text) to "${old.credentials.owner.role}"`);
    await server.ctx.sql`update projects set hardening = 0 where id = ${old.id}`;
    const owner = () => connect(old, "owner");
    const [{ oid }] = await owner()`select lo_import('PG_VERSION') as oid`;
    expect(Number(oid)).toBeGreaterThan(0);

    await reconcileProjects(server.ctx);
    expect((await server.ctx.sql`select hardening from projects where id = ${old.id}`)[0]!.hardening).toBe(HARDENING_LEVEL);
    const error = await failure(() => owner()`select lo_import('PG_VERSION')`);
    expect(codeOf(error, INSUFFICIENT_PRIVILEGE)).toEqual(want(INSUFFICIENT_PRIVILEGE));
    expect(await hardenProject(server.ctx, old.id)).toBe(false); // already done
  });
});

import { afterAll, describe, expect, it } from "bun:test";
import { readdirSync } from "node:fs";
import { resolve } from "node:path";
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { openControlPlane, type Sql } from "./db";
import { MigrationError, runMigrations, type Migration } from "./migrations";
import { migrations } from "../../migrations";

const superuser = (() => {
  const u = new URL(process.env.ATLASHUB_TEST_DATABASE_URL!);
  return { host: u.hostname, port: Number(u.port), user: u.username, password: decodeURIComponent(u.password), database: "postgres" };
})();

const pools: Sql[] = [];
async function freshControlPlane() {
  const sql = await openControlPlane(superuser, `mig_${randomBytes(5).toString("hex")}`);
  pools.push(sql);
  return sql;
}
afterAll(() => Promise.all(pools.map((p) => p.end())));

const sample: Migration[] = [
  { name: "0001_a", sql: "create table a (id int primary key); insert into a values (1);" },
  { name: "0002_b", sql: "create table b (id int primary key references a);" },
];

describe("runMigrations", () => {
  it("applies every migration in order on a fresh database and records checksums", async () => {
    const sql = await freshControlPlane();
    expect(await runMigrations(sql, sample)).toEqual(["0001_a", "0002_b"]);
    const rows = await sql`select name, checksum from schema_migrations order by name`;
    expect(rows.map((r) => r.name)).toEqual(["0001_a", "0002_b"]);
    expect(rows[0]!.checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  it("does nothing when run again", async () => {
    const sql = await freshControlPlane();
    await runMigrations(sql, sample);
    expect(await runMigrations(sql, sample)).toEqual([]);
    expect((await sql`select count(*)::int as n from a`)[0]!.n).toBe(1);
  });

  it("applies each migration once when two instances start together", async () => {
    const sql = await freshControlPlane();
    const other = postgres({ ...superuser, database: (await sql`select current_database() as d`)[0]!.d, max: 2, onnotice: () => {} });
    pools.push(other);
    const slow: Migration[] = [{ name: "0001_slow", sql: "select pg_sleep(0.3); create table s (id int);" }, ...sample];
    const [first, second] = await Promise.all([runMigrations(sql, slow), runMigrations(other, slow)]);
    expect([...first, ...second].sort()).toEqual(["0001_a", "0001_slow", "0002_b"]);
    expect((await sql`select count(*)::int as n from schema_migrations`)[0]!.n).toBe(3);
  });

  it("refuses to start when an applied migration was edited", async () => {
    const sql = await freshControlPlane();
    await runMigrations(sql, sample);
    const edited = [{ ...sample[0]!, sql: sample[0]!.sql + " -- tweak" }, sample[1]!];
    await expect(runMigrations(sql, edited)).rejects.toThrow(/0001_a was edited after it was applied/);
  });

  it("refuses an older binary on a newer control plane", async () => {
    const sql = await freshControlPlane();
    await runMigrations(sql, sample);
    await expect(runMigrations(sql, [sample[0]!])).rejects.toThrow(/does not know \(0002_b\)/);
  });

  it("rolls a failing migration back completely", async () => {
    const sql = await freshControlPlane();
    const broken: Migration[] = [sample[0]!, { name: "0002_broken", sql: "create table c (id int); select * from no_such_table;" }];
    const error = await runMigrations(sql, broken).catch((e) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect(error.message).toMatch(/0002_broken failed: .*no_such_table/);
    expect((await sql`select to_regclass('c') as c`)[0]!.c).toBeNull();
    expect((await sql`select name from schema_migrations`).map((r) => r.name)).toEqual(["0001_a"]);
  });

  it("applies the real control-plane migrations", async () => {
    const sql = await freshControlPlane();
    await runMigrations(sql, migrations);
    const tables = await sql`select tablename from pg_tables where schemaname = 'public' order by 1`;
    expect(tables.map((t) => t.tablename)).toEqual(expect.arrayContaining(["admin_users", "admin_sessions", "admin_tokens", "audit_log", "rate_limits", "schema_migrations"]));
  });

  it("lists every .sql file of migrations/ in migrations/index.ts, in order", () => {
    const files = readdirSync(resolve(import.meta.dir, "../../migrations")).filter((f) => f.endsWith(".sql")).sort();
    expect(migrations.map((m) => m.name + ".sql")).toEqual(files);
  });
});

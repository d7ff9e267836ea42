// 0006_storage on a control plane that already has projects: they get the default buckets too.
import { afterAll, describe, expect, it } from "bun:test";
import { randomBytes } from "node:crypto";
import { openControlPlane, type Sql } from "../platform/db";
import { runMigrations } from "../platform/migrations";
import { migrations } from "../../migrations";

const superuser = (() => {
  const u = new URL(process.env.ATLASHUB_TEST_DATABASE_URL!);
  return { host: u.hostname, port: Number(u.port), user: u.username, password: decodeURIComponent(u.password), database: "postgres" };
})();

let sql: Sql | undefined;
afterAll(() => sql?.end());

describe("migration 0006_storage", () => {
  it("gives every existing project but purged ones the buckets private and uploads", async () => {
    sql = await openControlPlane(superuser, `mig_storage_${randomBytes(5).toString("hex")}`);
    const before = migrations.findIndex((m) => m.name === "0006_storage");
    await runMigrations(sql, migrations.slice(0, before));
    await sql`insert into projects (id, name, status) values ('aaaaaaaaaa', 'old-ready', 'ready'), ('bbbbbbbbbb', 'old-deleted', 'deleted'), ('cccccccccc', 'old-purged', 'purged')`;
    await runMigrations(sql, migrations);
    const rows = await sql`select project_id, name, public from storage_buckets order by project_id, name`;
    expect(rows).toEqual([
      { project_id: "aaaaaaaaaa", name: "private", public: false },
      { project_id: "aaaaaaaaaa", name: "uploads", public: false },
      { project_id: "bbbbbbbbbb", name: "private", public: false },
      { project_id: "bbbbbbbbbb", name: "uploads", public: false },
    ]);
  });
});

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

describe("migration 0009_storage_staged_uploads", () => {
  it("drops signings of the earlier design and lets one key have several", async () => {
    const cp = await openControlPlane(superuser, `mig_staged_${randomBytes(5).toString("hex")}`);
    try {
      await runMigrations(cp, migrations.slice(0, migrations.findIndex((m) => m.name === "0009_storage_staged_uploads")));
      await cp`insert into projects (id, name, status) values ('dddddddddd', 'p', 'ready')`;
      await cp`insert into storage_buckets (project_id, name) values ('dddddddddd', 'uploads') on conflict do nothing`;
      const pending = (key: string) => cp`
        insert into storage_pending_uploads (project_id, bucket, key, content_type, max_bytes, expires_at)
        values ('dddddddddd', 'uploads', ${key}, 'text/plain', 1, now() + interval '1 hour')`;
      await pending("old.txt");
      await runMigrations(cp, migrations);
      expect(await cp`select key from storage_pending_uploads`).toEqual([]);
      await pending("same.txt");
      await pending("same.txt");
      expect(await cp`select key, completed_at, checked_at from storage_pending_uploads`).toEqual([
        { key: "same.txt", completed_at: null, checked_at: null },
        { key: "same.txt", completed_at: null, checked_at: null },
      ]);
    } finally {
      await cp.end();
    }
  });
});

import type { Sql } from "./db";
import { sha256Hex } from "./crypto";
import { log } from "./log";

export interface Migration {
  name: string;
  sql: string;
}

export class MigrationError extends Error {}

// Any fixed number works; it only has to be the same for every AtlasHub instance.
const LOCK_KEY = 7_461_236_011;

/**
 * Applies pending migrations in order, each in its own transaction, under an advisory lock so
 * instances starting together take turns. An applied migration whose text changed is an error,
 * and so is an applied migration this binary does not know (an older binary on a newer database).
 */
export async function runMigrations(sql: Sql, migrations: Migration[]): Promise<string[]> {
  const conn = await sql.reserve();
  const applied: string[] = [];
  try {
    // Waiting for another instance's migrations, and a long migration itself, may exceed the pool's timeout.
    await conn`set statement_timeout = 0`;
    await conn`select pg_advisory_lock(${LOCK_KEY})`.catch((err: Error) => {
      throw new MigrationError(`cannot take the migration lock: ${err.message}`);
    });
    await conn`create table if not exists schema_migrations (
      name text primary key, checksum text not null, applied_at timestamptz not null default now())`;
    const done = new Map((await conn<{ name: string; checksum: string }[]>`select name, checksum from schema_migrations`).map((r) => [r.name, r.checksum]));
    const known = new Set(migrations.map((m) => m.name));
    const unknown = [...done.keys()].filter((name) => !known.has(name));
    if (unknown.length) throw new MigrationError(`the control plane has migrations this binary does not know (${unknown.join(", ")}); run a newer atlashub`);

    for (const m of migrations) {
      const checksum = sha256Hex(m.sql);
      const previous = done.get(m.name);
      if (previous !== undefined) {
        if (previous !== checksum) throw new MigrationError(`migration ${m.name} was edited after it was applied; restore the original file and add a new migration instead`);
        continue;
      }
      await conn.unsafe("begin");
      try {
        await conn.unsafe(m.sql).simple();
        await conn`insert into schema_migrations (name, checksum) values (${m.name}, ${checksum})`;
        await conn.unsafe("commit");
      } catch (err) {
        await conn.unsafe("rollback");
        throw new MigrationError(`migration ${m.name} failed: ${(err as Error).message}`);
      }
      applied.push(m.name);
      log.info("applied migration", { migration: m.name });
    }
  } finally {
    await conn`select pg_advisory_unlock(${LOCK_KEY})`.catch(() => {});
    await conn`reset statement_timeout`.catch(() => {});
    conn.release();
  }
  return applied;
}

import postgres from "postgres";
import type { PgConnectionInfo } from "../engines/postgres/engine";
import { log } from "./log";

export type Sql = postgres.Sql;
/** A pool or a transaction: what services take, so a route can run a write and its audit entry in one transaction. */
export type Db = postgres.ISql;

const STATEMENT_TIMEOUT_MS = 15_000;

/** Creates the control-plane database if it is missing and returns a small pool on it. */
export async function openControlPlane(superuser: PgConnectionInfo, name: string): Promise<Sql> {
  const admin = postgres({ ...superuser, max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    const [exists] = await admin`select 1 from pg_database where datname = ${name}`;
    if (!exists) {
      // Two instances may race here; the loser sees duplicate_database and carries on.
      await admin`create database ${admin(name)}`.catch((err) => {
        if (err.code !== "42P04") throw err;
      });
      log.info("created control-plane database", { database: name });
    }
    await admin`revoke connect, temporary on database ${admin(name)} from public`;
  } finally {
    await admin.end({ timeout: 1 });
  }
  return postgres({
    ...superuser,
    database: name,
    max: 5,
    idle_timeout: 60,
    connect_timeout: 5,
    connection: { application_name: "atlashub", statement_timeout: STATEMENT_TIMEOUT_MS, idle_in_transaction_session_timeout: 60_000 },
    onnotice: () => {},
  });
}

/**
 * The pool provisioning uses: two connections to the control plane, 5-minute statement timeout, and a
 * 60 s lock timeout so a request waiting for a busy project gives up (503) instead of hanging.
 */
export function openClusterPool(superuser: PgConnectionInfo, controlDb: string): Sql {
  return postgres({
    ...superuser,
    database: controlDb,
    max: 2,
    idle_timeout: 60,
    connect_timeout: 5,
    connection: { application_name: "atlashub-provisioning", statement_timeout: 300_000, lock_timeout: 60_000, idle_in_transaction_session_timeout: 60_000 },
    onnotice: () => {},
  });
}

/**
 * PUBLIC may not connect to the cluster's own databases, nor make temp tables in them. An external
 * engine's admin role that is not a superuser keeps its own CONNECT, or the next start would be locked out.
 */
export async function hardenClusterDatabases(sql: Sql) {
  const [me] = await sql<{ rolsuper: boolean }[]>`select rolsuper from pg_roles where rolname = current_user`;
  for (const db of ["postgres", "template1"]) {
    if (!me!.rolsuper) await sql`grant connect on database ${sql(db)} to current_user`;
    await sql`revoke connect, temporary on database ${sql(db)} from public`;
  }
}

/** Which optional extensions this Postgres can create; projects skip `vector` when it is missing. */
export async function availableExtensions(sql: Sql): Promise<Record<string, boolean>> {
  const rows = await sql<{ name: string }[]>`
    select name from pg_available_extensions where name in ('vector', 'pg_stat_statements')`;
  const names = new Set(rows.map((r) => r.name));
  return { vector: names.has("vector"), pg_stat_statements: names.has("pg_stat_statements") };
}

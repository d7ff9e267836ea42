// The provisioning state machine. Every step is idempotent (check, then create), so a step cut
// short by a crash is simply run again by the reconciler; the project row records where each
// project stands. Creation:  pending → creating_roles → creating_db → configuring → ready
// Soft delete: deleting → deleted. Restore: restoring → ready. Purge: purging → purged.
// A step that fails leaves the project `failed`; `operation` says which of these a retry repeats.
import postgres from "postgres";
import type { AppContext } from "../context";
import type { Db, Sql } from "../platform/db";
import { decryptSecret } from "../platform/crypto";
import { log } from "../platform/log";
import { crashPoint } from "./crash";
import { purgeProjectStorage } from "../storage/service";
import { dropRestoreDatabases } from "../backups/restoreDatabases";

export const ROLE_KINDS = ["owner", "app", "ro"] as const;
export type RoleKind = (typeof ROLE_KINDS)[number];

export type ProjectStatus =
  | "pending" | "creating_roles" | "creating_db" | "configuring" | "ready" | "failed"
  | "deleting" | "deleted" | "restoring" | "purging" | "purged";

/** The statuses the reconciler finishes: an operation was under way when its process stopped. */
export const UNFINISHED: ProjectStatus[] = ["pending", "creating_roles", "creating_db", "configuring", "deleting", "restoring", "purging"];

export type Operation = "create" | "delete" | "restore" | "purge";
export const FIRST_STATUS: Record<Operation, ProjectStatus> = { create: "pending", delete: "deleting", restore: "restoring", purge: "purging" };

// Per-role limits; a Pi has ~50 backends in all (see smallMachineConf).
const CONNECTION_LIMITS: Record<RoleKind, number> = { owner: 5, app: 20, ro: 10 };
const ROLE_STATEMENT_TIMEOUT = "30s";
const ROLE_IDLE_IN_TRANSACTION_TIMEOUT = "60s";

const LARGE_OBJECT_WRITERS = ["pg_catalog.lo_creat(integer)", "pg_catalog.lo_create(oid)", "pg_catalog.lo_from_bytea(oid, bytea)", "pg_catalog.lo_put(oid, bigint, bytea)"];
// Server-side lo_import/lo_export read and write any file the database server's OS user can reach
// (other projects' data files, pg_authid's password hashes): the superuser's alone.
const SERVER_FILE_FUNCTIONS = ["pg_catalog.lo_import(text)", "pg_catalog.lo_import(text, oid)", "pg_catalog.lo_export(oid, text)"];

/** Raised when a fix to what configure sets up must reach existing projects (hardenProject). */
export const HARDENING_LEVEL = 1;

export const databaseName = (projectId: string) => `p_${projectId}`;

/**
 * A superuser connection into a project's database, for work only a superuser can do there: grants
 * and revokes, which change catalogs and run nothing of the tenant's (every function named with its
 * schema; views and foreign tables refused should anything read one).
 */
export function connectInside(ctx: Pick<AppContext, "engine">, database: string) {
  return postgres({
    ...ctx.engine.superuser(),
    database,
    max: 1,
    connect_timeout: 10,
    connection: {
      application_name: "atlashub-provisioning",
      statement_timeout: 60_000,
      lock_timeout: 10_000,
      search_path: "pg_catalog",
      restrict_nonsystem_relation_kind: "view,foreign-table",
    },
    onnotice: () => {},
  });
}
export const roleName = (projectId: string, kind: string) => `p_${projectId}_${kind}`;

/**
 * Moves a project through its state machine until it is ready, deleted, purged or failed, holding
 * the project's advisory lock so that a request and the reconciler never work on it at once.
 * `start` runs once the lock is held (a request records the new project or status there), so the
 * reconciler cannot pick up an operation whose request is still running it.
 * Returns the final status, or undefined when another process holds the lock (mode "try").
 * A step that throws marks the project failed with the reason, unless the error is transient
 * (connections exhausted, lock timeout…): then the status stays for the reconciler to retry.
 */
export async function advance(
  ctx: AppContext,
  projectId: string,
  mode: "wait" | "try",
  start: () => Promise<unknown> = async () => {},
): Promise<ProjectStatus | undefined> {
  return withProjectLock(ctx, projectId, mode, async (conn) => {
    await start();
    return runSteps(ctx, conn, projectId);
  });
}

/** Runs `use` holding the project's advisory lock; undefined when `try` finds it taken. */
async function withProjectLock<T>(ctx: AppContext, projectId: string, mode: "wait" | "try", use: (conn: Sql) => Promise<T>): Promise<T | undefined> {
  const conn = await ctx.clusterSql.reserve();
  try {
    const [locked] = await (mode === "wait"
      ? conn`select pg_advisory_lock(hashtext('atlashub.project'), hashtext(${projectId})) is not null as ok`
      : conn`select pg_try_advisory_lock(hashtext('atlashub.project'), hashtext(${projectId})) as ok`);
    if (!locked!.ok) return undefined;
    try {
      return await use(conn);
    } finally {
      await conn`select pg_advisory_unlock(hashtext('atlashub.project'), hashtext(${projectId}))`;
    }
  } finally {
    conn.release();
  }
}

/**
 * Brings a ready project made before the latest HARDENING_LEVEL up to it (new projects get it from
 * configure); the reconciler runs it. True when it changed the project.
 */
export async function hardenProject(ctx: AppContext, projectId: string): Promise<boolean> {
  const done = await withProjectLock(ctx, projectId, "try", async (conn) => {
    const [project] = await conn<{ status: string; hardening: number }[]>`select status, hardening from projects where id = ${projectId}`;
    if (project?.status !== "ready" || project.hardening >= HARDENING_LEVEL) return false;
    const inside = connectInside(ctx, databaseName(projectId));
    try {
      await revokeServerFileAccess(inside, roleName(projectId, "owner"));
    } finally {
      await inside.end({ timeout: 5 });
    }
    await conn`update projects set hardening = ${HARDENING_LEVEL} where id = ${projectId}`;
    return true;
  });
  return done === true;
}

async function revokeServerFileAccess(sql: Db, owner: string) {
  for (const fn of SERVER_FILE_FUNCTIONS) await sql`revoke execute on function ${sql.unsafe(fn)} from public, ${sql(owner)}`;
}

async function runSteps(ctx: AppContext, conn: Sql, projectId: string): Promise<ProjectStatus> {
  for (;;) {
    const [project] = await conn<{ status: ProjectStatus }[]>`select status from projects where id = ${projectId}`;
    if (!project) throw new Error(`project ${projectId} vanished`);
    const step = STEPS[project.status];
    if (!step) return project.status;
    let next: ProjectStatus;
    try {
      next = await step(ctx, conn, projectId);
    } catch (err) {
      if (isTransient(err)) throw err;
      const reason = describe(err);
      log.warn("project step failed", { project: projectId, status: project.status, reason });
      await conn`update projects set status = 'failed', failure_reason = ${reason}, updated_at = now() where id = ${projectId}`;
      return "failed";
    }
    crashPoint(`after:${project.status}`);
    await conn`
      update projects set status = ${next}, failure_reason = null, updated_at = now(),
        deleted_at = case when ${next} = 'deleted' then now() when ${next} = 'ready' then null else deleted_at end,
        purged_at = case when ${next} = 'purged' then now() else purged_at end
      where id = ${projectId}`;
  }
}

type Step = (ctx: AppContext, conn: Sql, projectId: string) => Promise<ProjectStatus>;

const STEPS: Partial<Record<ProjectStatus, Step>> = {
  pending: async () => "creating_roles",
  creating_roles: createRoles,
  creating_db: createDatabase,
  configuring: configureDatabase,
  deleting: closeDatabase,
  restoring: reopenDatabase,
  purging: dropEverything,
};

async function createRoles(ctx: AppContext, conn: Sql, projectId: string): Promise<ProjectStatus> {
  const roles = await conn<{ kind: RoleKind; role_name: string; password_enc: string }[]>`
    select kind, role_name, password_enc from project_roles where project_id = ${projectId}`;
  for (const role of roles) {
    const name = role.role_name;
    const [exists] = await conn`select 1 from pg_roles where rolname = ${name}`;
    if (!exists) {
      await conn`
        create role ${conn(name)} with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls
        connection limit ${conn.unsafe(String(CONNECTION_LIMITS[role.kind]))}`;
    }
    // Always (re)set: a crash may have come between CREATE ROLE and here.
    await conn`select atlashub_set_role_password(${name}, ${decryptSecret(ctx.masterKey, role.password_enc)})`;
    await conn`alter role ${conn(name)} set statement_timeout = ${conn.unsafe(`'${ROLE_STATEMENT_TIMEOUT}'`)}`;
    await conn`alter role ${conn(name)} set idle_in_transaction_session_timeout = ${conn.unsafe(`'${ROLE_IDLE_IN_TRANSACTION_TIMEOUT}'`)}`;
    crashPoint("during:creating_roles");
  }
  return "creating_db";
}

async function createDatabase(_ctx: AppContext, conn: Sql, projectId: string): Promise<ProjectStatus> {
  const db = databaseName(projectId);
  const [exists] = await conn`select 1 from pg_database where datname = ${db}`;
  // template0: nobody can connect to it, so nobody can block CREATE DATABASE by sitting on the template.
  if (!exists) await conn`create database ${conn(db)} template template0`;
  return "configuring";
}

/** Privileges inside the new database, run as superuser on a short-lived connection to it. */
async function configureDatabase(ctx: AppContext, conn: Sql, projectId: string): Promise<ProjectStatus> {
  await configureProjectDatabase(ctx, conn, databaseName(projectId), projectId);
  await conn`update projects set has_vector = ${ctx.extensions.vector === true}, hardening = ${HARDENING_LEVEL} where id = ${projectId}`;
  return "ready";
}

/**
 * What configure sets up in a database of the project: its own, or one a restore fills and then
 * swaps in under the project's name (server/backups/restore.ts). Idempotent. The project's
 * extensions are made (`extensions`) only in a database no tenant has been able to put anything in
 * yet — before CONNECT is granted: an extension's script runs as the superuser, in schema public. A
 * restore has them made by createRestoreDatabase instead, and passes false.
 */
export async function configureProjectDatabase(ctx: AppContext, conn: Sql, db: string, projectId: string, options: { extensions: boolean } = { extensions: true }) {
  const [owner, app, ro] = ROLE_KINDS.map((k) => roleName(projectId, k)) as [string, string, string];
  await conn`revoke all on database ${conn(db)} from public`;
  const inside = connectInside(ctx, db);
  try {
    await inside.begin(async (tx) => {
      await tx`alter schema public owner to ${tx(owner)}`;
      await tx`revoke all on schema public from public`;
      await tx`grant usage on schema public to ${tx(app)}, ${tx(ro)}`;
      await tx`grant select, insert, update, delete on all tables in schema public to ${tx(app)}`;
      await tx`grant usage, select on all sequences in schema public to ${tx(app)}`;
      await tx`grant select on all tables in schema public to ${tx(ro)}`;
      await tx`alter default privileges for role ${tx(owner)} in schema public grant select, insert, update, delete on tables to ${tx(app)}`;
      await tx`alter default privileges for role ${tx(owner)} in schema public grant usage, select on sequences to ${tx(app)}`;
      await tx`alter default privileges for role ${tx(owner)} in schema public grant select on tables to ${tx(ro)}`;
      // Large objects are written through functions PUBLIC may execute: a read-only role could write
      // data (and fill the disk) through them. Only the owner role keeps them.
      for (const fn of LARGE_OBJECT_WRITERS) {
        await tx`revoke execute on function ${tx.unsafe(fn)} from public`;
        await tx`grant execute on function ${tx.unsafe(fn)} to ${tx(owner)}`;
      }
      await revokeServerFileAccess(tx, owner);
      if (options.extensions) for (const ext of projectExtensions(ctx)) await tx`create extension if not exists ${tx(ext.name)} with schema ${tx(ext.schema)}`;
    });
  } finally {
    await inside.end({ timeout: 5 });
  }
  await conn`grant connect on database ${conn(db)} to ${conn(owner)}, ${conn(app)}, ${conn(ro)}`;
  await conn`grant create on database ${conn(db)} to ${conn(owner)}`;
}

/** The extensions every project database has (vector when this Postgres has it). */
export const projectExtensions = (ctx: Pick<AppContext, "extensions">) => (ctx.extensions.vector ? [{ name: "vector", schema: "public" }] : []);

/** Soft delete: the database stays, but nobody can connect until it is restored. */
async function closeDatabase(_ctx: AppContext, conn: Sql, projectId: string): Promise<ProjectStatus> {
  const db = databaseName(projectId);
  await conn`alter database ${conn(db)} allow_connections false`;
  await terminateBackends(conn, db);
  return "deleted";
}

async function reopenDatabase(_ctx: AppContext, conn: Sql, projectId: string): Promise<ProjectStatus> {
  await conn`alter database ${conn(databaseName(projectId))} allow_connections true`;
  return "ready";
}

async function dropEverything(ctx: AppContext, conn: Sql, projectId: string): Promise<ProjectStatus> {
  const db = databaseName(projectId);
  const [exists] = await conn`select 1 from pg_database where datname = ${db}`;
  if (exists) {
    await conn`alter database ${conn(db)} allow_connections false`;
    await terminateBackends(conn, db);
    await conn`drop database if exists ${conn(db)}`;
    crashPoint("during:purging");
  }
  // A replaced database kept for rollback holds objects of the project's roles: it goes first.
  await dropRestoreDatabases(conn, projectId, ctx.backups.store);
  await purgeProjectStorage(ctx, conn, projectId);
  await conn`delete from project_users where project_id = ${projectId}`;
  await conn`delete from project_roles where project_id = ${projectId}`;
  const roles = await conn<{ rolname: string }[]>`select rolname from pg_roles where rolname like ${`p\\_${projectId}\\_%`}`;
  for (const { rolname } of roles) {
    await conn`select pg_terminate_backend(pid) from pg_stat_activity where usename = ${rolname}`;
    await conn`drop role if exists ${conn(rolname)}`;
  }
  return "purged";
}

async function terminateBackends(conn: Sql, db: string) {
  await conn`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${db} and pid <> pg_backend_pid()`;
}

/** Errors worth retrying later rather than failing the project for: the cluster was busy, not wrong. */
export function isTransient(err: unknown) {
  const code = (err as { code?: string }).code ?? "";
  return /^(08|53|57P0)/.test(code) || ["55006", "55P03", "40001", "40P01", "57014"].includes(code);
}

function describe(err: unknown) {
  if (err instanceof postgres.PostgresError) return `${err.message} (${err.code})`;
  return (err as Error).message ?? String(err);
}

// Restoring a dump into a fresh database. pg_restore runs as a stand-in for the project's owner role
// (server/projects/standIn.ts), never as the superuser nor with the owner as its session user: a dump
// is the tenant's own SQL (functions called by index expressions, defaults…), and what runs during a
// restore runs with the rights of the role restoring. With --no-owner everything comes out owned by
// the owner role, as in a provisioned project. The few things an owner may not do —
// create an untrusted extension (vector), comment on an extension — are done beforehand as superuser
// (the extensions the source had, in their schemas) and taken out of the restore's table of contents.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import postgres from "postgres";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AppContext } from "../context";
import type { Sql } from "../platform/db";
import type { PgConnectionInfo } from "../engines/postgres/engine";
import { decryptSecret } from "../platform/crypto";
import { roleName } from "../projects/provision";
import { log } from "../platform/log";
import { pgEnv, type PgTools } from "./pgTools";
import { connectForBackup, type ExtensionEntry } from "./snapshot";
import { BackupFailure, describeDuration, tailOf } from "./failure";
import type { Manifest } from "./service";
import { restorePlainScript } from "./plainRestore";
import { connectStandIn, standInPgOptions, type StandIn } from "../projects/standIn";

export interface RestoreTarget {
  database: string;
  /** Who restores: a stand-in for the project's owner, made for this restore. */
  standIn: StandIn;
  /**
   * What becomes of GRANTs, default privileges and policies, which name roles: "keep" restores them
   * as dumped (same project, same roles); "none" leaves them out (verification); a mapping restores
   * them with the source project's owner/app/ro roles renamed to the target's (a new project).
   */
  privileges: "keep" | "none" | { fromProject: string; toProject: string };
}

/** The owner role of a project with its password, to restore as. */
export async function projectOwner(ctx: AppContext, projectId: string) {
  const [row] = await ctx.sql<{ role_name: string; password_enc: string }[]>`
    select role_name, password_enc from project_roles where project_id = ${projectId} and kind = 'owner'`;
  if (!row) throw new BackupFailure(`project ${projectId} has no owner role`);
  return { role: row.role_name, password: decryptSecret(ctx.masterKey, row.password_enc) };
}

export const ownerRole = (projectId: string) => roleName(projectId, "owner");

interface RoleState {
  password: string | null;
  settings: { setdatabase: number; setconfig: string[] }[];
}

async function roleState(cluster: Sql, role: string): Promise<RoleState> {
  const [row] = await cluster<RoleState[]>`
    select a.rolpassword as password,
      coalesce((select json_agg(json_build_object('setdatabase', s.setdatabase, 'setconfig', s.setconfig) order by s.setdatabase)
                from pg_db_role_setting s where s.setrole = a.oid), '[]') as settings
    from pg_authid a where a.rolname = ${role}`;
  if (!row) throw new BackupFailure(`the role ${role} does not exist`);
  return row;
}

/**
 * Runs `work` (a restore of a dump as the project's owner role) and then puts the owner role back as
 * it was: a role may change its own password and settings (ALTER ROLE current_user PASSWORD / SET /
 * IN DATABASE … SET, also from a DO block or a function, where no reading of the script sees it), and
 * roles are the cluster's, not the restored database's — a dump from someone else could give the
 * project's owner a password its author knows. Any change is undone (the password AtlasHub keeps set
 * again, the settings written back) and the restore fails saying so.
 */
export async function keepingOwnerRole<T>(ctx: AppContext, projectId: string, work: () => Promise<T>): Promise<T> {
  const cluster = ctx.clusterSql;
  const role = ownerRole(projectId);
  const before = await roleState(cluster, role);
  try {
    return await work();
  } finally {
    const after = await roleState(cluster, role);
    const changed = after.password !== before.password || JSON.stringify(after.settings) !== JSON.stringify(before.settings);
    if (changed) {
      log.warn("a restored dump changed the project's owner role; put back", { project: projectId });
      const owner = await projectOwner(ctx, projectId);
      await cluster.begin(async (tx) => {
        await tx`select atlashub_set_role_password(${role}, ${owner.password})`;
        const oid = (await tx<{ oid: number }[]>`select oid from pg_roles where rolname = ${role}`)[0]!.oid;
        await tx`delete from pg_db_role_setting where setrole = ${oid}`;
        for (const s of before.settings) {
          await tx`insert into pg_db_role_setting (setdatabase, setrole, setconfig) values (${s.setdatabase}, ${oid}, ${s.setconfig}::text[])`;
        }
      });
      // In place of what work() returned or threw: this is what the restore must report.
      // eslint-disable-next-line no-unsafe-finally
      throw new BackupFailure("the dump changed the project's owner role (its password or settings, with ALTER ROLE), which a restore may not do; it was put back as it was");
    }
  }
}

/**
 * Creates an empty database for `owner` to restore into (or readies a new project's): CONNECT and
 * CREATE for the owner only, the public schema its own, and the source's extensions made by the
 * superuser in their schemas. Idempotent (a crash may have come halfway). For a database the tenant
 * could already reach (a new project's), call it before its credentials are handed out.
 */
export async function createRestoreDatabase(ctx: AppContext, cluster: Sql, database: string, owner: string, extensions: ExtensionEntry[]) {
  const missing = await missingExtensions(cluster, extensions);
  if (missing.length) throw new BackupFailure(`the backup needs the extension(s) ${missing.join(", ")}, which this Postgres does not have`);
  const refused = await refusedExtensions(cluster, extensions);
  if (refused.length) throw new BackupFailure(`the backup names extension(s) AtlasHub does not create for a project: ${refused.join(", ")}`);
  const [exists] = await cluster`select 1 from pg_database where datname = ${database}`;
  if (!exists) await cluster`create database ${cluster(database)} template template0`;
  await cluster`revoke all on database ${cluster(database)} from public`;
  // The extensions' scripts run as superuser: they are made before the owner (the tenant) may
  // connect and put anything into the schemas they run in.
  const inside = connectForBackup(ctx, database);
  try {
    await inside.begin(async (tx) => {
      await tx`alter schema public owner to ${tx(owner)}`;
      await tx`revoke all on schema public from public`;
      for (const ext of extensions) {
        if (ext.schema !== "public") await tx`create schema if not exists ${tx(ext.schema)} authorization ${tx(owner)}`;
        await tx`create extension if not exists ${tx(ext.name)} with schema ${tx(ext.schema)}`;
      }
    });
  } finally {
    await inside.end({ timeout: 5 });
  }
  await cluster`grant connect, create on database ${cluster(database)} to ${cluster(owner)}`;
}

/** The extensions of `extensions` this Postgres cannot create. */
export async function missingExtensions(cluster: Sql, extensions: ExtensionEntry[]) {
  const available = new Set((await cluster<{ name: string }[]>`select name from pg_available_extensions`).map((e) => e.name));
  return extensions.filter((e) => !available.has(e.name)).map((e) => e.name);
}

/**
 * Untrusted extensions AtlasHub itself creates in every project database (configureProjectDatabase),
 * so a restore may too. Any other extension a dump names is made by the superuser only if the
 * project's owner could create it itself (a trusted one): the list comes from the dump, i.e. from
 * whoever wrote it, and an untrusted extension made for them (dblink, file_fdw, adminpack…) would
 * hand the owner role what only a superuser may have.
 */
const PROJECT_EXTENSIONS = new Set(["vector", "plpgsql"]);
// Schemas an owner may not create objects in; an extension the superuser put there would be beyond it too.
const SYSTEM_SCHEMA = /^(pg_.*|information_schema)$/;

/** The extensions of `extensions` a restore will not have the superuser create, each with why. */
export async function refusedExtensions(cluster: Sql, extensions: ExtensionEntry[]) {
  if (extensions.length === 0) return [];
  const trusted = new Set(
    (await cluster<{ name: string }[]>`
      select v.name from pg_available_extension_versions v join pg_available_extensions e on e.name = v.name and e.default_version = v.version
      where v.trusted`).map((e) => e.name),
  );
  const refused: string[] = [];
  for (const ext of extensions) {
    if (!PROJECT_EXTENSIONS.has(ext.name) && !trusted.has(ext.name)) refused.push(`${ext.name} (only a superuser may create it)`);
    else if (SYSTEM_SCHEMA.test(ext.schema) && !(ext.name === "plpgsql" && ext.schema === "pg_catalog")) refused.push(`${ext.name} in the system schema ${ext.schema}`);
  }
  return refused;
}

/** Drops a database and every session in it; no error when it is gone. */
export async function dropDatabase(cluster: Sql, database: string) {
  await cluster`drop database if exists ${cluster(database)} with (force)`;
}

/**
 * Restores the dump `open()` streams into `target.database` (made by createRestoreDatabase) as
 * `target.role`. The dump is read twice: its table of contents first (pg_restore -l stops after it),
 * then the whole of it (a third time for the entries whose role names are rewritten). Throws
 * BackupFailure with pg_restore's last error lines when it fails.
 */
export async function restoreDump(
  tools: PgTools,
  connection: PgConnectionInfo,
  open: (signal: AbortSignal) => ReadableStream<Uint8Array>,
  target: RestoreTarget,
  extensions: ExtensionEntry[],
  signal: AbortSignal,
  statementTimeoutMs: number,
) {
  const watch = watchStatements(connection, target.database, target.standIn.user, statementTimeoutMs);
  try {
    await restoreArchive(tools, connection, open, target, extensions, signal);
  } catch (err) {
    if (watch.expired) throw new BackupFailure(`a statement of the dump ran longer than ${describeDuration(statementTimeoutMs)} (ATLASHUB_RESTORE_STATEMENT_TIMEOUT) and was stopped`);
    throw err;
  } finally {
    await watch.stop();
  }
}

/**
 * Ends every statement of the session user `role` in `database` running longer than `ms`, checked every few seconds by
 * the superuser from its maintenance database: what pg_restore runs is the dump's SQL (an index
 * expression may call the tenant's function), which may SET its own statement_timeout and catch a
 * cancel, but cannot outlive its session.
 */
function watchStatements(superuser: PgConnectionInfo, database: string, role: string, ms: number) {
  const sql = postgres({ ...superuser, max: 1, connect_timeout: 10, onnotice: () => {}, connection: { application_name: "atlashub-restore-watch" } });
  const state = { expired: false, stopped: false };
  const every = Math.min(5_000, Math.max(250, ms / 4));
  let wake: () => void = () => {};
  const loop = (async () => {
    while (!state.stopped) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, every);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (state.stopped) break;
      const ended = await sql`
        select pg_terminate_backend(pid) from pg_stat_activity
        where datname = ${database} and usename = ${role} and state = 'active'
          and query_start < now() - ${ms / 1000} * interval '1 second'`.catch(() => []);
      if (ended.length > 0) state.expired = true;
    }
  })();
  return {
    get expired() {
      return state.expired;
    },
    async stop() {
      state.stopped = true;
      wake();
      await loop;
      await sql.end({ timeout: 5 });
    },
  };
}

async function restoreArchive(
  tools: PgTools,
  connection: PgConnectionInfo,
  open: (signal: AbortSignal) => ReadableStream<Uint8Array>,
  target: RestoreTarget,
  extensions: ExtensionEntry[],
  signal: AbortSignal,
) {
  const info = { ...connection, user: target.standIn.user, password: target.standIn.password };
  const env = pgEnv(info, target.database, {
    // The owner role's own statement_timeout (30 s) would cut off a large COPY or index build.
    PGOPTIONS: standInPgOptions(target.standIn, RESTORE_SETTINGS),
  });
  const toc = await runTool(tools.pgRestore, ["--list"], env, open, signal);
  const list = filterToc(toc.stdout, extensions);
  const mapped = typeof target.privileges === "object" ? target.privileges : undefined;
  const dir = await mkdtemp(join(tmpdir(), "atlashub-restore-"));
  try {
    const listFile = join(dir, "toc.list");
    await writeFile(listFile, mapped ? withoutRoleEntries(list) : list, { mode: 0o600 });
    const args = ["--exit-on-error", "--no-owner", "--no-subscriptions", "--no-security-labels", "--no-tablespaces", `--use-list=${listFile}`, `--dbname=${target.database}`];
    if (target.privileges === "none") args.push("--no-privileges");
    await runTool(tools.pgRestore, args, env, open, signal);
    if (mapped) {
      const roleFile = join(dir, "roles.list");
      await writeFile(roleFile, onlyRoleEntries(list), { mode: 0o600 });
      const sqlText = await runTool(tools.pgRestore, ["--no-owner", `--use-list=${roleFile}`, "--file=-"], env, open, signal);
      await runAsStandIn(connection, target, renameProjectRoles(sqlText.stdout, mapped.fromProject, mapped.toProject));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A backup's dump restored whichever its format: pg_restore for an archive, plainRestore.ts for an SQL script. */
export function restoreBackupDump(
  tools: PgTools,
  connection: PgConnectionInfo,
  open: (signal: AbortSignal) => ReadableStream<Uint8Array>,
  target: RestoreTarget,
  manifest: Pick<Manifest, "dump" | "database">,
  signal: AbortSignal,
  statementTimeoutMs: number,
) {
  if (manifest.dump.format === "plain") return restorePlainScript(connection, open, target, manifest.database.extensions, signal, statementTimeoutMs);
  return restoreDump(tools, connection, open, target, manifest.database.extensions, signal, statementTimeoutMs);
}

/** What pg_restore says about an archive: its table of contents (throws BackupFailure when it cannot read it). */
export async function listDump(tools: PgTools, open: (signal: AbortSignal) => ReadableStream<Uint8Array>, signal: AbortSignal) {
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C" };
  return (await runTool(tools.pgRestore, ["--list"], env, open, signal)).stdout;
}

/** The extensions an archive creates, with their schemas (from the SQL of its EXTENSION entries). */
export async function dumpExtensions(tools: PgTools, open: (signal: AbortSignal) => ReadableStream<Uint8Array>, toc: string, signal: AbortSignal): Promise<ExtensionEntry[]> {
  const entries = toc.split("\n").filter((l) => /^\d+; \d+ \d+ EXTENSION - /.test(l));
  if (entries.length === 0) return [];
  const dir = await mkdtemp(join(tmpdir(), "atlashub-restore-"));
  try {
    const listFile = join(dir, "extensions.list");
    await writeFile(listFile, entries.join("\n"), { mode: 0o600 });
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C" };
    const { stdout } = await runTool(tools.pgRestore, [`--use-list=${listFile}`, "--file=-"], env, open, signal);
    const unquote = (name: string) => (name.startsWith('"') ? name.slice(1, -1).replaceAll('""', '"') : name);
    return [...stdout.matchAll(/^CREATE EXTENSION IF NOT EXISTS ("(?:[^"]|"")+"|\S+) WITH SCHEMA ("(?:[^"]|"")+"|\S+);$/gm)].map((m) => ({ name: unquote(m[1]!), schema: unquote(m[2]!) }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// Entries whose SQL names roles: privileges, default privileges, row-level security policies.
const ROLE_ENTRY = /^\d+; \d+ \d+ (ACL|DEFAULT ACL|POLICY) /;

const withoutRoleEntries = (list: string) => list.split("\n").filter((l) => !ROLE_ENTRY.test(l)).join("\n");
const onlyRoleEntries = (list: string) => list.split("\n").filter((l) => ROLE_ENTRY.test(l)).join("\n");

/**
 * The SQL of privilege and policy entries with the source project's roles renamed to the target's.
 * psql meta-commands (\restrict) are dropped; a GRANT naming another role of the source project (a
 * database user, which the new project does not have) is dropped too (pg_dump writes one per line).
 */
export function renameProjectRoles(sqlText: string, fromProject: string, toProject: string) {
  const from = `p_${fromProject}_`;
  const renamed = sqlText
    .split("\n")
    .filter((line) => !line.startsWith("\\"))
    .map((line) => line.replace(new RegExp(`(?<![A-Za-z0-9_$])${from}(owner|app|ro)(?![A-Za-z0-9_$])`, "g"), `p_${toProject}_$1`))
    .filter((line) => !(line.includes(from) && /^(GRANT|REVOKE) /.test(line)));
  return renamed.join("\n");
}

const RESTORE_SETTINGS = "-c statement_timeout=0 -c idle_in_transaction_session_timeout=0 -c lock_timeout=0";

/** Runs SQL text (several statements) as the target's stand-in, without the owner role's statement timeout. */
async function runAsStandIn(connection: PgConnectionInfo, target: RestoreTarget, sqlText: string) {
  const sql = connectStandIn(connection, target.standIn, target.database, { statement_timeout: 0, application_name: "atlashub-restore" });
  try {
    await sql.unsafe(sqlText);
  } catch (err) {
    throw new BackupFailure(`restoring privileges and policies failed: ${(err as Error).message}`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Takes out of pg_restore's list what the superuser did beforehand: the extensions, comments on
 * them, and the schemas made to hold them. Lines look like `12; 3079 16385 EXTENSION - vector `.
 */
export function filterToc(list: string, extensions: ExtensionEntry[]): string {
  const schemas = new Set(extensions.map((e) => e.schema).filter((s) => s !== "public"));
  return list
    .split("\n")
    .filter((line) => {
      const entry = line.match(/^\d+; \d+ \d+ (.*)$/)?.[1];
      if (!entry) return true;
      if (entry.startsWith("EXTENSION - ") || entry.startsWith("COMMENT - EXTENSION ")) return false;
      // Privileges on the system's own functions (provisioning's lo_* grants): set by configure, not the owner's to grant.
      if (entry.startsWith("ACL pg_catalog ")) return false;
      const schema = entry.match(/^SCHEMA - (\S+) /)?.[1];
      return !(schema && schemas.has(schema));
    })
    .join("\n");
}

// The list and the privilege SQL are held in memory: one line per object of the database.
const MAX_TOOL_OUTPUT = 64 * 1024 * 1024;

/** Runs pg_restore with the dump on standard input; its standard output (the list) is returned. */
async function runTool(path: string, args: string[], env: Record<string, string>, open: (signal: AbortSignal) => ReadableStream<Uint8Array>, signal: AbortSignal) {
  signal.throwIfAborted();
  const input = new AbortController();
  const child = Bun.spawn([path, ...args], { env, stdin: open(AbortSignal.any([signal, input.signal])), stdout: "pipe", stderr: "pipe" });
  const kill = () => child.kill("SIGTERM");
  signal.addEventListener("abort", kill, { once: true });
  try {
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), tailOf(child.stderr), child.exited]);
    signal.throwIfAborted();
    if (code !== 0) throw new BackupFailure(`pg_restore${args[0] === "--list" ? " --list" : ""} failed: ${stderr || `exit code ${code}`}`);
    if (stdout.length > MAX_TOOL_OUTPUT) throw new BackupFailure("pg_restore wrote more than 64 MB of table of contents or privileges");
    return { stdout };
  } finally {
    signal.removeEventListener("abort", kill);
    // pg_restore --list stops reading after the table of contents: let go of the rest of the dump.
    input.abort();
  }
}

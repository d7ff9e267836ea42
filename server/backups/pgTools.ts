// pg_dump and pg_restore of the same Postgres installation as the engine. A dump made by another major
// version may not restore (older pg_dump refuses a newer server; a newer one writes archives an older
// pg_restore cannot read), so the tools are matched on the server's major version and refused otherwise.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import type { AppContext } from "../context";
import type { PgConnectionInfo } from "../engines/postgres/engine";
import { findPgBinDir } from "../engines/postgres/binaries";
import { errors } from "../http/errors";

export interface PgTools {
  pgDump: string;
  pgRestore: string;
  /** "15.20": what `pg_dump --version` says. */
  version: string;
  /** The server's own version string, e.g. "15.20 (Debian 15.20-0+deb12u1)". */
  serverVersion: string;
  major: number;
}

const found = new WeakMap<object, PgTools>();

/** The tools for this engine, looked up once per process; throws 503 pg_tools_mismatch when none fits. */
export async function pgToolsFor(ctx: Pick<AppContext, "engine" | "config" | "sql">): Promise<PgTools> {
  const cached = found.get(ctx.engine);
  if (cached) return cached;
  const [server] = await ctx.sql<{ num: number; text: string }[]>`
    select current_setting('server_version_num')::int as num, current_setting('server_version') as text`;
  const serverMajor = Math.floor(server!.num / 10000);
  const dirs = ctx.engine.kind === "native" ? [findPgBinDir(ctx.config.pgBinDir)] : externalCandidates(ctx.config.pgBinDir, serverMajor);
  const tools = matchTools(dirs, serverMajor, server!.text);
  found.set(ctx.engine, tools);
  return tools;
}

/** Where the external engine's client tools may be: the setting, PATH, pg_config --bindir, then Debian's layout. */
function externalCandidates(fromSetting: string | undefined, serverMajor: number): string[] {
  if (fromSetting) return [fromSetting];
  const dirs: string[] = [];
  const onPath = Bun.which("pg_dump");
  if (onPath) dirs.push(dirname(onPath));
  const pgConfig = Bun.which("pg_config");
  if (pgConfig) {
    const out = Bun.spawnSync([pgConfig, "--bindir"]);
    if (out.exitCode === 0) dirs.push(out.stdout.toString().trim());
  }
  dirs.push(`/usr/lib/postgresql/${serverMajor}/bin`);
  return [...new Set(dirs)];
}

/** The first directory whose pg_dump has the server's major version; a clear refusal naming what was found otherwise. */
export function matchTools(dirs: string[], serverMajor: number, serverVersion: string): PgTools {
  const seen: string[] = [];
  for (const dir of dirs) {
    const pgDump = join(dir, "pg_dump");
    const pgRestore = join(dir, "pg_restore");
    if (!existsSync(pgDump) || !existsSync(pgRestore)) continue;
    const version = toolVersion(pgDump);
    if (!version) continue;
    if (majorOf(version) === serverMajor) return { pgDump, pgRestore, version, serverVersion, major: serverMajor };
    seen.push(`${pgDump} is ${version}`);
  }
  throw errors.pgToolsMismatch(serverVersion, seen);
}

/**
 * The first minor release of each major whose pg_dump refuses to read views and foreign tables
 * (restrict_nonsystem_relation_kind, CVE-2024-7348): an older one, run as the superuser, can be
 * made to read a tenant's view — to call the tenant's function — by a table swapped for a view while
 * it dumps. 17 and later have it from the start.
 */
const FIXED_PG_DUMP: Record<number, number> = { 12: 20, 13: 16, 14: 13, 15: 8, 16: 4 };

/** Why this pg_dump may not make backups, or undefined when it may. */
export function pgDumpRefusal(version: string): string | undefined {
  const [major, minor = 0] = version.split(".").map(Number) as [number, number?];
  if (major >= 17) return undefined;
  const fixed = FIXED_PG_DUMP[major];
  if (fixed !== undefined && minor >= fixed) return undefined;
  const needed = fixed === undefined ? "12.20 or later" : `${major}.${fixed} or later`;
  return `pg_dump ${version} lacks the fix for CVE-2024-7348 (a tenant's view read as the superuser while dumping); AtlasHub makes no backups with it: install pg_dump ${needed}`;
}

/** "pg_dump (PostgreSQL) 15.20 (Debian …)" → "15.20". */
export function parseToolVersion(output: string): string | undefined {
  return output.match(/\(PostgreSQL\)\s+(\d+(?:\.\d+)?)/)?.[1];
}

export const majorOf = (version: string) => Number(version.split(".")[0]);

function toolVersion(path: string) {
  const out = Bun.spawnSync([path, "--version"], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C" } });
  return out.exitCode === 0 ? parseToolVersion(out.stdout.toString()) : undefined;
}

/**
 * The environment of a pg_dump/pg_restore child: who and where to connect, never on the command line
 * (which every local user can read in /proc). Nothing else of AtlasHub's environment is passed on.
 */
export function pgEnv(info: PgConnectionInfo, database: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    LC_ALL: "C",
    PGHOST: info.host,
    PGPORT: String(info.port),
    PGUSER: info.user,
    PGPASSWORD: info.password,
    PGDATABASE: database,
    PGSSLMODE: info.ssl ?? "disable",
    PGCONNECT_TIMEOUT: "10",
    PGAPPNAME: "atlashub-backup",
    ...extra,
  };
}

import { existsSync, readdirSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { EngineError } from "./engine";

const needed = ["initdb", "postgres"];

/** Finds the Postgres server binaries (initdb, postgres): the setting, then PATH, then pg_config --bindir, then /usr/lib/postgresql/<newest>/bin. */
export function findPgBinDir(fromSetting: string | undefined): string {
  if (fromSetting) {
    if (!hasAll(fromSetting)) throw new EngineError(`ATLASHUB_PG_BIN_DIR=${fromSetting} does not contain ${needed.join(", ")}`);
    return fromSetting;
  }
  for (const candidate of candidates()) {
    if (hasAll(candidate)) return realDir(candidate);
  }
  throw new EngineError(
    "Postgres server binaries (initdb, postgres) not found on PATH, via pg_config or in /usr/lib/postgresql/*/bin; install postgresql-15 (build/setup-postgres.sh) or set ATLASHUB_PG_BIN_DIR",
  );
}

function* candidates(): Generator<string> {
  for (const dir of (process.env.PATH ?? "").split(":")) if (dir) yield dir;
  const pgConfig = Bun.which("pg_config");
  if (pgConfig) {
    const out = Bun.spawnSync([pgConfig, "--bindir"]);
    if (out.exitCode === 0) yield out.stdout.toString().trim();
  }
  const root = "/usr/lib/postgresql";
  if (existsSync(root)) {
    const versions = readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) yield join(root, v, "bin");
  }
}

function hasAll(dir: string) {
  return needed.every((name) => existsSync(join(dir, name)));
}

/** /usr/local/bin/initdb is often a symlink; the real directory is where pg_dump of the same installation lives. */
function realDir(dir: string) {
  return realpathSync(join(dir, "initdb")).replace(/\/initdb$/, "");
}

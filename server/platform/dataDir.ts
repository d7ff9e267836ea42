import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Creates the data dir. 0711: the Postgres OS user must traverse it to reach <data>/pg, while
 * nobody else may list it (master.key and the superuser secret are 0600 inside).
 */
export function prepareDataDir(dataDir: string) {
  if (!existsSync(dataDir)) mkdirSync(dataDir, { recursive: true, mode: 0o711 });
  chmodSync(dataDir, 0o711);
  mkdirSync(join(dataDir, "storage"), { recursive: true, mode: 0o700 });
}

/**
 * One `serve` per data dir. A lock left by a killed process (its pid is gone or is not atlashub) is taken over.
 * Returns a release function.
 */
export function lockDataDir(dataDir: string): () => void {
  const path = join(dataDir, "atlashub.pid");
  if (existsSync(path)) {
    const pid = Number(readFileSync(path, "utf8").trim());
    if (pid && pid !== process.pid && isAtlasHub(pid)) {
      throw new Error(`another atlashub (pid ${pid}) is serving ${dataDir}; stop it first`);
    }
  }
  writeFileSync(path, String(process.pid) + "\n");
  return () => {
    if (existsSync(path) && readFileSync(path, "utf8").trim() === String(process.pid)) rmSync(path);
  };
}

function isAtlasHub(pid: number) {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return /atlashub|main\.ts/.test(cmdline);
  } catch {
    return false;
  }
}

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

export type DataDirLock = { release: () => void } | { heldBy: number };

/**
 * One process owns a data dir (and its Postgres) at a time: `serve`, or a CLI command when no serve
 * runs. The lock file is created atomically; one left by a process that is gone (or whose pid now
 * belongs to something that is not atlashub) is taken over.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  const path = join(dataDir, "atlashub.pid");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, String(process.pid) + "\n", { flag: "wx" });
      return {
        release: () => {
          if (existsSync(path) && readFileSync(path, "utf8").trim() === String(process.pid)) rmSync(path);
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const holder = Number(readFileSync(path, "utf8").trim());
    if (holder && holder !== process.pid && isAtlasHub(holder)) return { heldBy: holder };
    rmSync(path, { force: true });
  }
  throw new Error(`cannot lock ${dataDir}: another process keeps replacing ${path}`);
}

function isAtlasHub(pid: number) {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return /atlashub|main\.ts/.test(cmdline);
  } catch {
    return false;
  }
}

// What the in-process benchmarks share: a throwaway Postgres cluster in a temp dir and AtlasHub
// serving on it (external engine, random port, log lines dropped), both removed afterwards.
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NativeEngine } from "../server/engines/postgres/native";
import type { PgConnectionInfo } from "../server/engines/postgres/engine";
import { loadConfig } from "../server/config";
import { startAtlasHub } from "../server/serve";
import { setLogSink } from "../server/platform/log";

export type BenchAtlasHub = Awaited<ReturnType<typeof startAtlasHub>>;

export async function withBenchAtlasHub(run: (atlashub: BenchAtlasHub, superuser: PgConnectionInfo) => Promise<void>, env: Record<string, string> = {}) {
  setLogSink(() => {}); // one access-log line per request would measure the terminal, not us
  const root = mkdtempSync(join(tmpdir(), "atlashub-bench."));
  chmodSync(root, 0o755);
  const port = 55000 + Math.floor(Math.random() * 5000);
  const cluster = new NativeEngine({ dataDir: join(root, "pg"), listen: "127.0.0.1", port, masterKey: randomBytes(32), attach: false, initialise: true });
  try {
    await cluster.start();
    const su = cluster.superuser();
    const url = `postgres://${su.user}:${encodeURIComponent(su.password)}@${su.host}:${su.port}/postgres`;
    const atlashub = await startAtlasHub(
      loadConfig({ ATLASHUB_DATA_DIR: join(root, "data"), ATLASHUB_PORT: "0", ATLASHUB_PG_ENGINE: "external", ATLASHUB_DATABASE_URL: url, ATLASHUB_MASTER_KEY: randomBytes(32).toString("hex"), ...env }),
    );
    try {
      await run(atlashub, su);
    } finally {
      await atlashub.stop();
    }
  } finally {
    await cluster.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

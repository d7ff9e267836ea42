import { ConfigError, type Config } from "./config";
import type { PostgresEngine } from "./engines/postgres/engine";
import type { AppContext } from "./context";
import { buildApp } from "./app";
import { createPostgresEngine } from "./engines/postgres";
import { availableExtensions, openControlPlane } from "./platform/db";
import { runMigrations } from "./platform/migrations";
import { loadMasterKey } from "./platform/masterKey";
import { lockDataDir, prepareDataDir } from "./platform/dataDir";
import { log } from "./platform/log";
import { migrations } from "../migrations";
import pkg from "../package.json";

export const VERSION: string = pkg.version;

/**
 * Everything a command needs before it can touch the control plane: data dir, master key, a running
 * Postgres, the control-plane pool, migrations applied. `serve` owns the Postgres; CLI commands attach to it.
 */
export async function openPlatform(config: Config, mode: { serve: boolean; onEngine?: (engine: PostgresEngine) => void }) {
  prepareDataDir(config.dataDir);
  const unlock = mode.serve ? lockDataDir(config.dataDir) : () => {};
  const masterKey = loadMasterKey(config.dataDir, config.masterKey);
  const engine = createPostgresEngine(config, masterKey, { attach: !mode.serve });
  mode.onEngine?.(engine);
  try {
    await engine.start();
    const sql = await openControlPlane(engine.superuser(), config.controlDb);
    await runMigrations(sql, migrations);
    const extensions = await availableExtensions(sql);
    const ctx: AppContext = { config, version: VERSION, engine, sql, masterKey, extensions };
    const close = async () => {
      await sql.end({ timeout: 5 });
      await engine.stop();
      unlock();
    };
    return { ctx, close };
  } catch (err) {
    await engine.stop().catch(() => {});
    unlock();
    throw err;
  }
}

/** `onEngine` hands out the engine before Postgres starts, so a signal during start-up can stop it. */
export async function startAtlasHub(config: Config, onEngine?: (engine: PostgresEngine) => void) {
  const { ctx, close } = await openPlatform(config, { serve: true, onEngine });
  if (!ctx.extensions.vector) {
    log.warn("pgvector is not installed: projects will be created without the vector extension (run build/setup-postgres.sh as root to add it)");
  }
  const app = buildApp(ctx);
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({ hostname: config.host, port: config.port, fetch: app.fetch });
  } catch (err) {
    await close();
    throw new ConfigError(`invalid setting ATLASHUB_PORT (--port): cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`);
  }
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${server.port}`;
  log.info("atlashub listening", { url, version: VERSION, pg_engine: config.pgEngine });
  return {
    ctx,
    url,
    port: server.port!,
    async stop() {
      await server.stop(true);
      await close();
    },
  };
}

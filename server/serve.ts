import { pgDumpRefusal, pgToolsFor } from "./backups/pgTools";
import { ConfigError, type Config } from "./config";
import type { PostgresEngine } from "./engines/postgres/engine";
import type { AppContext } from "./context";
import { buildApp } from "./app";
import { createPostgresEngine } from "./engines/postgres";
import { availableExtensions, hardenClusterDatabases, openClusterPool, openControlPlane } from "./platform/db";
import { runMigrations } from "./platform/migrations";
import { loadMasterKey } from "./platform/masterKey";
import { lockDataDir, prepareDataDir } from "./platform/dataDir";
import { log } from "./platform/log";
import { startReconciler } from "./projects/reconciler";
import { ProjectPools } from "./data/pools";
import { JobRunner } from "./jobs/runner";
import { registerPlatformJobs } from "./jobs/platform";
import { createObjectStore } from "./engines/storage";
import { BackupRunner } from "./backups/runner";
import { startBackupReconciler } from "./backups/reconciler";
import { issueSetupToken } from "./admin/service";
import { migrations } from "../migrations";
import pkg from "../package.json";

export const VERSION: string = pkg.version;

/**
 * Everything a command needs before it can touch the control plane: data dir, master key, a running
 * Postgres, the control-plane pool, migrations applied. Whoever holds the data-dir lock owns the
 * Postgres; a CLI command run while `serve` holds it attaches to serve's Postgres instead.
 */
export async function openPlatform(config: Config, mode: { serve: boolean; onEngine?: (engine: PostgresEngine) => void }) {
  prepareDataDir(config.dataDir);
  const lock = lockDataDir(config.dataDir);
  if ("heldBy" in lock && mode.serve) throw new Error(`another atlashub process (pid ${lock.heldBy}) is using ${config.dataDir}; stop it first`);
  const release = "release" in lock ? lock.release : () => {};
  try {
    const masterKey = loadMasterKey(config.dataDir, config.masterKey);
    const engine = createPostgresEngine(config, masterKey, { attach: "heldBy" in lock, initialise: mode.serve });
    mode.onEngine?.(engine);
    try {
      await engine.start();
      const sql = await openControlPlane(engine.superuser(), config.controlDb);
      await runMigrations(sql, migrations);
      await registerPlatformJobs(sql);
      await hardenClusterDatabases(sql);
      const extensions = await availableExtensions(sql);
      const clusterSql = openClusterPool(engine.superuser(), config.controlDb);
      const storage = createObjectStore(config);
      const backups = new BackupRunner(config);
      // Only the process that owns the data dir: a CLI command beside a running serve must not
      // remove the temp files of serve's uploads in flight.
      if (mode.serve) {
        const removed = await storage.recover();
        if (removed > 0) log.info("removed partial uploads left by a previous run", { count: removed });
        const partial = await backups.store.recover();
        if (partial > 0) log.info("removed partial backup parts left by a previous run", { count: partial });
      }
      const base = { config, version: VERSION, engine, sql, clusterSql, masterKey, extensions, storage, backups };
      const ctx = { ...base, pools: new ProjectPools(base) } as AppContext;
      // Platform jobs run with the whole context, so the runner is made once the rest of it exists.
      ctx.jobs = new JobRunner(ctx);
      const close = async () => {
        await ctx.jobs.stop();
        await ctx.backups.stop();
        await ctx.pools.closeAll();
        await Promise.all([sql.end({ timeout: 5 }), clusterSql.end({ timeout: 5 })]);
        await engine.stop();
        release();
      };
      return { ctx, close };
    } catch (err) {
      await engine.stop().catch(() => {});
      throw err;
    }
  } catch (err) {
    release();
    throw err;
  }
}

/**
 * The one log line of the first-run setup token. This is the one secret AtlasHub prints on purpose:
 * whoever can read the server log (the operator: `journalctl -u atlashub`) can create the first admin,
 * and nobody else can. The token is in the message, not in a field, because fields named like secrets
 * are redacted.
 */
function announceSetupToken(token: string, url: string) {
  log.info(`first-run setup: no admin exists yet. Open ${url}/login and enter the one-time setup token ${token} (valid until an admin exists or AtlasHub starts again), or run \`atlashub admin create\``, { url: `${url}/login` });
}

/** Said once at start-up: backups are refused with a pg_dump lacking the CVE-2024-7348 fix (also in /health). */
async function warnOfUnsafePgDump(ctx: AppContext) {
  const tools = await pgToolsFor(ctx).catch(() => undefined);
  const refusal = tools && pgDumpRefusal(tools.version);
  if (refusal) log.warn(refusal);
}

/** `onEngine` hands out the engine before Postgres starts, so a signal during start-up can stop it. */
export async function startAtlasHub(config: Config, onEngine?: (engine: PostgresEngine) => void) {
  const { ctx, close } = await openPlatform(config, { serve: true, onEngine });
  // While no admin exists, a new setup token (the previous one stops working). Made before listening:
  // once /health answers, start-up must be over (a signal then stops the whole server, not just Postgres).
  const setupToken = await issueSetupToken(ctx.sql).catch(async (err) => {
    await close();
    throw err;
  });
  if (!ctx.extensions.vector) {
    log.warn("pgvector is not installed: projects will be created without the vector extension (run build/setup-postgres.sh as root to add it)");
  }
  void warnOfUnsafePgDump(ctx);
  const stopReconciler = startReconciler(ctx);
  const stopBackupReconciler = startBackupReconciler(ctx);
  ctx.jobs.start();
  const app = buildApp(ctx, ctx.pools);
  let server: ReturnType<typeof Bun.serve>;
  try {
    // idleTimeout at Bun's maximum: creating a project on a busy Pi can take longer than the 10 s default,
    // and a closed socket would lose credentials that are shown only once.
    // maxRequestBodySize: Bun's own cap (128 MB) would cut off large uploads; the body limit
    // middleware and each upload's signed size limit are what bound request bodies.
    server = Bun.serve({ hostname: config.host, port: config.port, routes: app.routes, fetch: app.fetch, idleTimeout: 255, maxRequestBodySize: Number.MAX_SAFE_INTEGER });
  } catch (err) {
    await stopReconciler();
    await stopBackupReconciler();
    await close();
    throw new ConfigError(`invalid setting ATLASHUB_HOST/ATLASHUB_PORT (--host/--port): cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`);
  }
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${server.port}`;
  log.info("atlashub listening", { url, version: VERSION, pg_engine: config.pgEngine });
  if (setupToken) announceSetupToken(setupToken, url);
  return {
    ctx,
    url,
    port: server.port!,
    /** Lets requests in flight finish (10 s at most), then stops Postgres. */
    async stop() {
      const force = setTimeout(() => void server.stop(true), 10_000);
      await server.stop();
      clearTimeout(force);
      await stopReconciler();
      await stopBackupReconciler();
      await close();
    },
  };
}

import { Hono } from "hono";
import type { AppContext, AppEnv } from "../context";
import { pgDumpRefusal, pgToolsFor } from "../backups/pgTools";

const PG_CHECK_TIMEOUT_MS = 2_000;

/** GET /health: 200 when Postgres answers, 503 otherwise; storage and optional extensions reported beside. */
export function healthRoutes(ctx: AppContext) {
  const app = new Hono<AppEnv>();
  app.get("/health", async (c) => {
    const postgres = await checkPostgres(ctx);
    const storage = { ok: await ctx.storage.check(), driver: ctx.storage.driver };
    const ok = postgres.ok && storage.ok;
    const backups = postgres.ok ? await checkBackupTools(ctx) : undefined;
    return c.json({ status: ok ? (backups?.ok === false ? "degraded" : "ok") : "unavailable", version: ctx.version, postgres, storage, ...(backups ? { backups } : {}) }, ok ? 200 : 503);
  });
  return app;
}

/**
 * Whether backups can run: pg_dump of the server's version, and one without CVE-2024-7348. Looking
 * for the tools spawns processes (pgToolsFor caches what it finds, not a failure), so an answer is
 * kept for a minute.
 */
const backupTools = new WeakMap<object, { at: number; answer: Promise<{ ok: boolean; pg_dump?: string; problem?: string }> }>();
const BACKUP_TOOLS_RECHECK_MS = 60_000;

function checkBackupTools(ctx: AppContext) {
  let kept = backupTools.get(ctx.engine);
  if (!kept || Date.now() - kept.at > BACKUP_TOOLS_RECHECK_MS) backupTools.set(ctx.engine, (kept = { at: Date.now(), answer: backupToolsAnswer(ctx) }));
  return kept.answer;
}

async function backupToolsAnswer(ctx: AppContext) {
  try {
    const tools = await pgToolsFor(ctx);
    const problem = pgDumpRefusal(tools.version);
    return problem ? { ok: false, pg_dump: tools.version, problem } : { ok: true, pg_dump: tools.version };
  } catch (err) {
    return { ok: false, problem: (err as Error).message };
  }
}

async function checkPostgres(ctx: AppContext) {
  const base = { engine: ctx.engine.kind, state: ctx.engine.state(), extensions: ctx.extensions };
  if (ctx.engine.state() !== "running") return { ok: false, ...base };
  const query = ctx.sql<{ version: string }[]>`select current_setting('server_version') as version`;
  const timer = setTimeout(() => query.cancel(), PG_CHECK_TIMEOUT_MS);
  try {
    const [row] = await query;
    return { ok: true, version: row!.version, ...base };
  } catch {
    return { ok: false, ...base };
  } finally {
    clearTimeout(timer);
  }
}

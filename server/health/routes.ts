import { Hono } from "hono";
import type { AppContext, AppEnv } from "../context";

const PG_CHECK_TIMEOUT_MS = 2_000;

/** GET /health: 200 when Postgres answers, 503 otherwise; storage and optional extensions reported beside. */
export function healthRoutes(ctx: AppContext) {
  const app = new Hono<AppEnv>();
  app.get("/health", async (c) => {
    const postgres = await checkPostgres(ctx);
    const storage = { ok: await ctx.storage.check(), driver: ctx.storage.driver };
    const ok = postgres.ok && storage.ok;
    return c.json({ status: ok ? "ok" : "unavailable", version: ctx.version, postgres, storage }, ok ? 200 : 503);
  });
  return app;
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

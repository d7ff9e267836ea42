import { Hono } from "hono";
import type { AppContext, AppEnv } from "../context";
import { requireApiKey } from "../http/auth";
import { ApiError } from "../http/errors";
import { parseReadRequest } from "./parse";
import { planRead } from "./plan";
import { renderCount, renderRead } from "./render";
import type { ProjectPools } from "./pools";

/** /v1/db: read access to a project's public tables (GET); writes are a later slice. */
export function dataRoutes(ctx: AppContext, pools: ProjectPools) {
  const app = new Hono<AppEnv>();
  app.use("*", requireApiKey(ctx));

  app.get("/tables", async (c) => {
    const schema = await pools.schema(c.get("apiKey").projectId);
    return c.json({ items: [...schema.values()].map((t) => ({ name: t.name, kind: t.kind, primary_key: t.primaryKey, columns: t.columns })) });
  });

  app.get("/:table", async (c) => {
    const projectId = c.get("apiKey").projectId;
    const request = parseReadRequest(new URL(c.req.url).searchParams);
    const table = c.req.param("table");
    // A name the cache does not know may be a table created a moment ago: look once more before saying no.
    const plan = await Promise.resolve(planRead(await pools.schema(projectId), table, request)).catch(async (err) => {
      if (!(err instanceof ApiError)) throw err;
      return planRead(await pools.schema(projectId, true), table, request);
    });
    const { sql } = await pools.get(projectId);
    const read = renderRead(plan);
    const [rows] = await sql.unsafe<{ body: string }[]>(read.text, read.params);
    if (/count=exact/.test(c.req.header("prefer") ?? "")) {
      const count = renderCount(plan);
      const [total] = await sql.unsafe<{ total: string }[]>(count.text, count.params);
      const shown = (JSON.parse(rows!.body) as unknown[]).length;
      c.header("Content-Range", shown ? `${plan.offset}-${plan.offset + shown - 1}/${total!.total}` : `*/${total!.total}`);
    }
    return c.body(rows!.body, 200, { "content-type": "application/json" });
  });

  return app;
}

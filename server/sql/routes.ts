import { Hono } from "hono";
import type { AppContext, AppEnv } from "../context";
import { errors, parseBody } from "../http/errors";
import { audit } from "../http/auth";
import { checkStatement, requireReadyProject, runStatement, sqlRequestSchema } from "./service";

export function sqlRoutes(ctx: AppContext) {
  const app = new Hono<AppEnv>();

  app.post("/:id/sql", async (c) => {
    const id = c.req.param("id");
    const { query } = await parseBody(c, sqlRequestSchema);
    await requireReadyProject(ctx, id);
    const denial = checkStatement(query);
    // On record before it runs (a statement that never returns is still there); the text, never the results.
    await audit(ctx.sql, c, { action: "project.sql", target: { type: "project", id }, details: { query, ...(denial ? { denied: denial.rule } : {}) } });
    if (denial) throw errors.sqlDenied(denial.rule, denial.reason);
    return c.json(await runStatement(ctx, id, query));
  });

  return app;
}

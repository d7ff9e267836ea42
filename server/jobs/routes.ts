import { Hono, type Context } from "hono";
import type { AppContext, AppEnv } from "../context";
import type { Db } from "../platform/db";
import { parseBody } from "../http/errors";
import { audit } from "../http/auth";
import { pageSchema } from "../http/schemas";
import * as jobs from "./service";

export function jobRoutes(ctx: AppContext) {
  const app = new Hono<AppEnv>();
  const auditing = (c: Context<AppEnv>, action: string, details?: Record<string, unknown>) => (db: Db, job: jobs.JobRow) =>
    audit(db, c, { action, target: { type: "job", id: job.id }, details: { name: job.name, ...details } });

  app.get("/preview", (c) => {
    const q = jobs.previewQuery.parse(c.req.query());
    return c.json({ schedule: q.schedule, timezone: q.timezone, next_runs: jobs.previewSchedule(q.schedule, q.timezone) });
  });

  app.post("/", async (c) => {
    const input = await parseBody(c, jobs.createJobSchema);
    return c.json(await jobs.createJob(ctx, input, auditing(c, "job.create", { project_id: input.project_id ?? null })), 201);
  });

  app.get("/", async (c) => {
    const q = jobs.listJobsQuery.parse(c.req.query());
    return c.json({ items: await jobs.listJobs(ctx, q), limit: q.limit, offset: q.offset });
  });

  app.get("/:id", async (c) => c.json(await jobs.getJob(ctx, c.req.param("id"))));

  app.patch("/:id", async (c) => {
    const input = await parseBody(c, jobs.updateJobSchema);
    return c.json(await jobs.updateJob(ctx, c.req.param("id"), input, auditing(c, "job.update", { changed: Object.keys(input) })));
  });

  app.delete("/:id", async (c) => {
    await jobs.deleteJob(ctx, c.req.param("id"), auditing(c, "job.delete"));
    return c.body(null, 204);
  });

  app.post("/:id/run", async (c) => {
    const { runId } = await jobs.runJobNow(ctx, c.req.param("id"), auditing(c, "job.run"));
    return c.json({ run_id: runId }, 202);
  });

  app.get("/:id/runs", async (c) => {
    const page = pageSchema.parse(c.req.query());
    return c.json({ items: await jobs.listRuns(ctx, c.req.param("id"), page), limit: page.limit, offset: page.offset });
  });

  app.get("/:id/runs/:runId", async (c) => c.json(await jobs.getRun(ctx, c.req.param("id"), c.req.param("runId"))));

  return app;
}

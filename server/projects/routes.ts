import { Hono, type Context } from "hono";
import { z } from "zod";
import type { AppContext, AppEnv } from "../context";
import type { Db } from "../platform/db";
import { errors, parseBody } from "../http/errors";
import { audit } from "../http/auth";
import * as projects from "./service";
import * as users from "./users";

const purgeBody = z.object({ confirm: z.string() });
const rotateBody = z.object({ role: z.enum(["owner", "app", "ro"]) });
const deleteQuery = z.object({ purge: z.enum(["true", "false"]).optional().transform((v) => v === "true") });

export function projectRoutes(ctx: AppContext) {
  const app = new Hono<AppEnv>();
  const auditing = (c: Context<AppEnv>, action: string, details?: Record<string, unknown>) => (db: Db, p: projects.ProjectRow) =>
    audit(db, c, { action, target: { type: "project", id: p.id }, details: { name: p.name, ...details } });

  app.post("/", async (c) => {
    const input = await parseBody(c, projects.createProjectSchema);
    const { project, credentials } = await projects.createProject(ctx, input, auditing(c, "project.create"));
    // Passwords are shown this once; later only through POST /:id/credentials/reveal (audited).
    return c.json({ ...projects.presentProject(ctx, project), credentials }, 201);
  });

  app.get("/", async (c) => {
    const q = projects.listProjectsQuery.parse(c.req.query());
    const rows = await projects.listProjects(ctx, q);
    return c.json({ items: rows.map((p) => projects.presentProject(ctx, p)), limit: q.limit, offset: q.offset });
  });

  app.get("/:id", async (c) => c.json(projects.presentProject(ctx, await projects.getProjectWithStats(ctx, c.req.param("id")))));

  app.patch("/:id", async (c) => {
    const input = await parseBody(c, projects.updateProjectSchema);
    const project = await ctx.sql.begin(async (tx) => {
      const updated = await projects.updateProject(tx, c.req.param("id"), input);
      await auditing(c, "project.update", { changed: Object.keys(input) })(tx, updated);
      return updated;
    });
    return c.json(projects.presentProject(ctx, project));
  });

  app.delete("/:id", async (c) => {
    const id = c.req.param("id");
    const { purge } = deleteQuery.parse(c.req.query());
    if (purge) {
      const { confirm } = await parseBody(c, purgeBody);
      const current = await projects.getProject(ctx, id);
      if (confirm !== current.name) throw errors.unprocessable("confirm must be the project's name.");
      return c.json(projects.presentProject(ctx, await projects.startOperation(ctx, id, "purge", auditing(c, "project.purge"))));
    }
    return c.json(projects.presentProject(ctx, await projects.startOperation(ctx, id, "delete", auditing(c, "project.delete"))));
  });

  app.post("/:id/restore", async (c) => {
    const project = await projects.startOperation(ctx, c.req.param("id"), "restore", auditing(c, "project.restore"));
    return c.json(projects.presentProject(ctx, project));
  });

  app.post("/:id/retry", async (c) => {
    const project = await projects.startOperation(ctx, c.req.param("id"), "retry", auditing(c, "project.retry"));
    return c.json(projects.presentProject(ctx, project));
  });

  app.post("/:id/users", async (c) => {
    const input = await parseBody(c, users.createUserSchema);
    const id = c.req.param("id");
    const user = await users.createUser(ctx, id, input, (db) =>
      audit(db, c, { action: "project.user.create", target: { type: "project", id }, details: { username: input.username, access: input.access } }),
    );
    return c.json(user, 201);
  });

  app.get("/:id/users", async (c) => c.json({ items: await users.listUsers(ctx, c.req.param("id")) }));

  app.post("/:id/users/:username/regenerate-password", async (c) => {
    const { id, username } = c.req.param();
    const user = await users.regeneratePassword(ctx, id, username, (db) =>
      audit(db, c, { action: "project.user.password_rotate", target: { type: "project", id }, details: { username } }),
    );
    return c.json(user);
  });

  app.delete("/:id/users/:username", async (c) => {
    const { id, username } = c.req.param();
    await users.deleteUser(ctx, id, username, (db) => audit(db, c, { action: "project.user.delete", target: { type: "project", id }, details: { username } }));
    return c.body(null, 204);
  });

  app.post("/:id/credentials/rotate", async (c) => {
    const id = c.req.param("id");
    const { role } = await parseBody(c, rotateBody);
    const rotated = await projects.rotateRolePassword(ctx, id, role, (db) =>
      audit(db, c, { action: "project.credentials.rotate", target: { type: "project", id }, details: { role } }),
    );
    return c.json(rotated);
  });

  app.post("/:id/credentials/reveal", async (c) => {
    const id = c.req.param("id");
    const credentials = await projects.revealCredentials(ctx, id);
    // Shown only once the reveal is on record.
    await audit(ctx.sql, c, { action: "project.credentials.reveal", target: { type: "project", id } });
    return c.json({ credentials });
  });

  return app;
}

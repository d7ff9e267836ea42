import { Hono } from "hono";
import { z } from "zod";
import type { AppContext, AppEnv } from "../context";
import { ApiError, errors, parseBody } from "../http/errors";
import { audit } from "../http/auth";
import { actorFromToken } from "../admin/service";
import { constantTimeEqual, sha256Hex } from "../platform/crypto";
import type { Actor } from "../platform/audit";
import { log } from "../platform/log";
import { createProject } from "./service";

// POST /provision: the compatibility endpoint for scripts that only want a DSN. The key is an admin
// API token or ATLASHUB_PROVISION_KEY; with neither configured the endpoint does not exist.

const provisionBody = z.object({
  app_name: z.string().regex(/^[a-z0-9_]{3,32}$/, "must be 3–32 characters of a-z, 0-9 and _"),
  admin_key: z.string().max(512).optional(),
});

export function provisionRoutes(ctx: AppContext) {
  const app = new Hono<AppEnv>();
  app.post("/provision", async (c) => {
    if (!ctx.config.provisionKey && !(await anyActiveToken(ctx))) throw errors.routeNotFound();
    // The key first: a caller without one hears 401 whatever its body looks like.
    const body: unknown = await parseBody(c, z.unknown()).catch(() => undefined);
    const bodyKey = (body as { admin_key?: unknown } | undefined)?.admin_key;
    const key = c.req.header("x-admin-key") ?? (typeof bodyKey === "string" ? bodyKey : undefined);
    const actor = key ? await actorForKey(ctx, key) : undefined;
    if (!actor) throw errors.unauthorized("Send a valid admin key as X-Admin-Key or admin_key.");
    c.set("actor", actor);
    if (body === undefined) await parseBody(c, z.unknown()); // the precise 400/415 for an authorised caller
    const input = provisionBody.safeParse(body);
    if (!input.success) throw errors.validation(input.error.issues);

    try {
      const { project, credentials } = await createProject(ctx, { name: input.data.app_name, description: "created by POST /provision" }, (db, p) =>
        audit(db, c, { action: "project.create", target: { type: "project", id: p.id }, details: { name: p.name, via: "provision" } }),
      );
      return c.json({ project_id: project.id, connection_string: credentials.app.connection_string }, 201);
    } catch (err) {
      // This endpoint promises a bare 500 with the request id; the reason stays on the failed project.
      if (err instanceof ApiError && err.status === 500) {
        log.warn("provision failed", { request_id: c.get("requestId"), ...err.details });
        throw new Error("provisioning failed");
      }
      throw err;
    }
  });
  return app;
}

async function anyActiveToken(ctx: AppContext) {
  const [row] = await ctx.sql`select 1 from admin_tokens where revoked_at is null and (expires_at is null or expires_at > now()) limit 1`;
  return row !== undefined;
}

async function actorForKey(ctx: AppContext, key: string): Promise<Actor | undefined> {
  // Hashes first, so the comparison takes the same time whatever the lengths.
  if (ctx.config.provisionKey && constantTimeEqual(sha256Hex(key), sha256Hex(ctx.config.provisionKey))) {
    return { type: "system", label: "provision key" };
  }
  return actorFromToken(ctx.sql, key);
}

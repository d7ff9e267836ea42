import { Hono, type Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { z } from "zod";
import type { AppContext, AppEnv } from "../context";
import { errors, parseBody } from "../http/errors";
import { audit, SESSION_COOKIE } from "../http/auth";
import { pageSchema } from "../http/pagination";
import { listAudit } from "../platform/audit";
import * as admin from "./service";

const loginSchema = z.object({ email: admin.emailSchema, password: z.string().min(1).max(512) });
const auditQuery = pageSchema.extend({ action: z.string().max(100).optional() });

/** Behind a trusted TLS-terminating proxy the socket is plain HTTP; X-Forwarded-Proto tells. */
function isHttps(c: Context, trustProxy: boolean) {
  if (trustProxy && c.req.header("x-forwarded-proto")) return c.req.header("x-forwarded-proto")!.split(",")[0]!.trim() === "https";
  return new URL(c.req.url).protocol === "https:";
}

export function adminRoutes(ctx: AppContext) {
  const app = new Hono<AppEnv>();

  app.post("/login", async (c) => {
    const input = await parseBody(c, loginSchema);
    const result = await admin.login(ctx.sql, {
      ...input,
      ip: c.get("clientIp"),
      userAgent: c.req.header("user-agent"),
      sessionHours: ctx.config.sessionHours,
    });
    if (!result) {
      await audit(ctx, c, { action: "admin.login_failed", actor: { type: "anonymous", label: input.email } });
      throw errors.invalidCredentials();
    }
    const actor = { type: "admin" as const, id: result.user.id, label: result.user.email, email: result.user.email };
    await audit(ctx, c, { action: "admin.login", actor });
    setCookie(c, SESSION_COOKIE, result.token, {
      httpOnly: true,
      sameSite: "Strict",
      secure: isHttps(c, ctx.config.trustProxy),
      path: "/",
      expires: result.expiresAt,
    });
    return c.json({ user: result.user, expires_at: result.expiresAt });
  });

  app.post("/logout", async (c) => {
    const session = getCookie(c, SESSION_COOKIE);
    if (session) await admin.logout(ctx.sql, session);
    deleteCookie(c, SESSION_COOKIE, { path: "/" });
    await audit(ctx, c, { action: "admin.logout" });
    return c.body(null, 204);
  });

  app.get("/me", (c) => {
    const actor = c.get("actor");
    return c.json({ id: actor.id, email: actor.email, via: actor.type });
  });

  app.post("/tokens", async (c) => {
    const input = await parseBody(c, admin.createTokenSchema);
    const token = await admin.createToken(ctx.sql, c.get("actor").id!, input);
    await audit(ctx, c, { action: "admin.token.create", target: { type: "admin_token", id: token.id }, details: { name: token.name } });
    return c.json(token, 201);
  });

  app.get("/tokens", async (c) => {
    const page = pageSchema.parse(c.req.query());
    return c.json({ items: await admin.listTokens(ctx.sql, c.get("actor").id!, page), ...page });
  });

  app.delete("/tokens/:id", async (c) => {
    const id = z.uuid().safeParse(c.req.param("id"));
    if (!id.success) throw errors.notFound("token");
    await admin.revokeToken(ctx.sql, c.get("actor").id!, id.data);
    await audit(ctx, c, { action: "admin.token.revoke", target: { type: "admin_token", id: id.data } });
    return c.body(null, 204);
  });

  app.get("/audit", async (c) => {
    const q = auditQuery.parse(c.req.query());
    return c.json({ items: await listAudit(ctx.sql, q), limit: q.limit, offset: q.offset });
  });

  return app;
}

import { Hono, type Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { z } from "zod";
import type { AppContext, AppEnv } from "../context";
import { errors, parseBody } from "../http/errors";
import { audit, SESSION_COOKIE } from "../http/auth";
import { pageSchema, safeText } from "../http/schemas";
import { listAudit } from "../platform/audit";
import * as admin from "./service";

const loginSchema = z.object({ email: admin.emailSchema, password: z.string().min(1).max(512) });
const auditQuery = pageSchema.extend({ action: safeText(100).optional() });

/** Behind a trusted TLS-terminating proxy the socket is plain HTTP; X-Forwarded-Proto tells. */
function isHttps(c: Context, trustProxy: boolean) {
  if (trustProxy && c.req.header("x-forwarded-proto")) return c.req.header("x-forwarded-proto")!.split(",")[0]!.trim() === "https";
  return new URL(c.req.url).protocol === "https:";
}

export function adminRoutes(ctx: AppContext) {
  const app = new Hono<AppEnv>();

  app.post("/login", async (c) => {
    const input = await parseBody(c, loginSchema);
    const ip = c.get("clientIp");
    const user = await admin.verifyLogin(ctx.sql, { ...input, ip });
    if (!user) {
      await audit(ctx.sql, c, { action: "admin.login_failed", actor: { type: "anonymous", label: input.email } });
      throw errors.invalidCredentials();
    }
    const session = await ctx.sql.begin(async (tx) => {
      const created = await admin.createSession(tx, user.id, { ip, userAgent: c.req.header("user-agent"), hours: ctx.config.sessionHours });
      await audit(tx, c, { action: "admin.login", actor: { type: "admin", id: user.id, label: user.email, email: user.email } });
      return created;
    });
    setCookie(c, SESSION_COOKIE, session.token, {
      httpOnly: true,
      sameSite: "Strict",
      secure: isHttps(c, ctx.config.trustProxy),
      path: "/",
      expires: session.expiresAt,
    });
    return c.json({ user, expires_at: session.expiresAt });
  });

  app.post("/logout", async (c) => {
    const cookie = getCookie(c, SESSION_COOKIE);
    if (cookie) {
      await ctx.sql.begin(async (tx) => {
        if (await admin.endSession(tx, cookie)) await audit(tx, c, { action: "admin.logout" });
      });
    }
    deleteCookie(c, SESSION_COOKIE, { path: "/" });
    return c.body(null, 204);
  });

  app.get("/me", (c) => {
    const actor = c.get("actor");
    return c.json({ id: actor.id, email: actor.email, via: actor.type });
  });

  app.post("/tokens", async (c) => {
    const input = await parseBody(c, admin.createTokenSchema);
    const token = await ctx.sql.begin(async (tx) => {
      const created = await admin.createToken(tx, c.get("actor").id!, input);
      await audit(tx, c, { action: "admin.token.create", target: { type: "admin_token", id: created.id }, details: { name: created.name } });
      return created;
    });
    return c.json(token, 201);
  });

  app.get("/tokens", async (c) => {
    const page = pageSchema.parse(c.req.query());
    return c.json({ items: await admin.listTokens(ctx.sql, c.get("actor").id!, page), ...page });
  });

  app.delete("/tokens/:id", async (c) => {
    const id = z.uuid().safeParse(c.req.param("id"));
    if (!id.success) throw errors.notFound("token");
    await ctx.sql.begin(async (tx) => {
      await admin.revokeToken(tx, c.get("actor").id!, id.data);
      await audit(tx, c, { action: "admin.token.revoke", target: { type: "admin_token", id: id.data } });
    });
    return c.body(null, 204);
  });

  app.get("/audit", async (c) => {
    const q = auditQuery.parse(c.req.query());
    return c.json({ items: await listAudit(ctx.sql, q), limit: q.limit, offset: q.offset });
  });

  return app;
}

import { Hono, type Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { z } from "zod";
import type { AppContext, AppEnv } from "../context";
import { ApiError, errors, parseBody } from "../http/errors";
import { audit, SESSION_COOKIE, sessionCookiePrefix } from "../http/auth";
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
  const prefix = sessionCookiePrefix(ctx.config);

  const setSessionCookie = (c: Context, session: { token: string; expiresAt: Date }) =>
    setCookie(c, SESSION_COOKIE, session.token, {
      httpOnly: true,
      sameSite: "Strict",
      secure: prefix === "host" || isHttps(c, ctx.config.trustProxy),
      path: "/",
      expires: session.expiresAt,
      prefix,
    });

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
    setSessionCookie(c, session);
    return c.json({ user, expires_at: session.expiresAt });
  });

  // First-run setup (public): the setup screen asks whether it is needed, then creates the first
  // admin with the one-time token `atlashub serve` printed, and signs them in.
  app.get("/setup", async (c) => c.json({ needed: await admin.setupNeeded(ctx.sql) }));

  app.post("/setup", async (c) => {
    const ip = c.get("clientIp");
    // Counted outside the transaction, so a refused attempt still counts.
    await admin.countSetupAttempt(ctx.sql, ip);
    const input = await parseBody(c, admin.setupSchema);
    const passwordHash = await admin.hashPassword(input.password);
    const result = await ctx.sql
      .begin(async (tx) => {
        const user = await admin.completeSetup(tx, { token: input.token, email: input.email, passwordHash });
        const actor = { type: "admin" as const, id: user.id, label: user.email, email: user.email };
        const session = await admin.createSession(tx, user.id, { ip, userAgent: c.req.header("user-agent"), hours: ctx.config.sessionHours });
        await audit(tx, c, { action: "admin.setup", actor, target: { type: "admin_user", id: user.id } });
        await audit(tx, c, { action: "admin.login", actor });
        return { user, session };
      })
      .catch(async (err) => {
        if (err instanceof ApiError) await audit(ctx.sql, c, { action: "admin.setup_failed", actor: { type: "anonymous", label: input.email }, details: { code: err.code } });
        throw err;
      });
    setSessionCookie(c, result.session);
    return c.json({ user: { id: result.user.id, email: result.user.email }, expires_at: result.session.expiresAt }, 201);
  });

  app.post("/logout", async (c) => {
    const cookie = getCookie(c, SESSION_COOKIE, prefix);
    if (cookie) {
      await ctx.sql.begin(async (tx) => {
        if (await admin.endSession(tx, cookie)) await audit(tx, c, { action: "admin.logout" });
      });
    }
    deleteCookie(c, SESSION_COOKIE, { path: "/", prefix });
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

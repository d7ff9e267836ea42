import { afterAll, beforeAll, beforeEach, describe, expect, it } from "bun:test";
import { startTestServer, jsonRequest, type TestServer } from "../test/server";
import { registerSecret } from "../test/harness";
import { createAdmin, LOGIN_LIMITS } from "./service";

const EMAIL = "owner@example.com";
const PASSWORD = "correct horse battery staple";
registerSecret(PASSWORD);

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
  await createAdmin(server.ctx.sql, EMAIL, PASSWORD);
});
afterAll(() => server.stop());
// Every test logs in from 127.0.0.1; start each with fresh rate-limit windows.
beforeEach(async () => {
  await server.ctx.sql`delete from rate_limits`;
});

async function login(email = EMAIL, password = PASSWORD, headers: Record<string, string> = {}) {
  return server.fetch("/admin/api/login", jsonRequest("POST", { email, password }, headers));
}

async function sessionCookie() {
  const res = await login();
  expect(res.status).toBe(200);
  const cookie = res.headers.get("set-cookie")!.split(";")[0]!;
  registerSecret(cookie.split("=")[1]);
  return cookie;
}

async function auditActions(requestId?: string) {
  const rows = await server.ctx.sql`select action, actor_type, actor_label, request_id, details from audit_log
    where ${requestId ? server.ctx.sql`request_id = ${requestId}` : server.ctx.sql`true`} order by id`;
  return rows;
}

describe("POST /admin/api/login", () => {
  it("sets an HttpOnly, SameSite=Strict session cookie and audits the login", async () => {
    const res = await login("Owner@Example.com", PASSWORD, { "x-request-id": "login-ok-1" });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ user: { email: EMAIL }, expires_at: expect.any(String) });
    const cookie = res.headers.get("set-cookie")!;
    registerSecret(cookie.split(";")[0]!.split("=")[1]);
    expect(cookie).toMatch(/^atlashub_session=[A-Za-z0-9_-]{43}; /);
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("SameSite=Strict");
    expect(cookie).toContain("Path=/");
    // Plain http and no https ATLASHUB_PUBLIC_URL: a Secure cookie would never come back.
    expect(cookie).not.toContain("Secure");
    expect(await auditActions("login-ok-1")).toEqual([{ action: "admin.login", actor_type: "admin", actor_label: EMAIL, request_id: "login-ok-1", details: {} }]);
  });

  it("answers a wrong password and an unknown email alike, with 401", async () => {
    for (const [id, email, password] of [["bad-1", EMAIL, "wrong password!"], ["bad-2", "nobody@example.com", PASSWORD]] as const) {
      const res = await login(email, password, { "x-request-id": id });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: { code: "invalid_credentials", message: "Email or password is wrong." } });
      expect((await auditActions(id))[0]).toMatchObject({ action: "admin.login_failed", actor_type: "anonymous" });
    }
  });

  it("rejects malformed bodies with 400 and the JSON error shape", async () => {
    const notJson = await server.fetch("/admin/api/login", { method: "POST", headers: { "content-type": "application/json" }, body: "{nope" });
    expect(notJson.status).toBe(400);
    expect((await notJson.json()).error.code).toBe("invalid_json");
    const badEmail = await login("not-an-email", "x");
    expect(badEmail.status).toBe(400);
    expect(await badEmail.json()).toMatchObject({ error: { code: "validation_failed", details: { issues: [{ path: "email" }] } } });
  });

  it("rejects bodies over the limit with 413", async () => {
    const res = await server.fetch("/admin/api/login", jsonRequest("POST", { email: EMAIL, password: "x".repeat(1_100_000) }));
    expect(res.status).toBe(413);
    expect((await res.json()).error.code).toBe("payload_too_large");
  });

  it("backs off failures per account and address: 429 with Retry-After doubling from 1 s, even for the right password", async () => {
    const email = "target@example.com";
    const password = "target password 123";
    registerSecret(password);
    await createAdmin(server.ctx.sql, email, password);
    for (let i = 0; i < LOGIN_LIMITS.freeFailures; i++) expect((await login(email, "guess-" + i)).status).toBe(401);
    const limited = await login(email, password);
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("1");
    expect(await limited.json()).toEqual({ error: { code: "rate_limited", message: expect.any(String), details: { retry_after: 1 } } });
    // The wait passes (moved into the past here): one more attempt, then twice the wait.
    const waitPasses = (seconds: number) =>
      server.ctx.sql`update rate_limits set window_start = window_start - make_interval(secs => ${seconds}) where key like ${`login:account:${email}:%`}`;
    await waitPasses(1);
    expect((await login(email, "guess-again")).status).toBe(401);
    const longer = await login(email, password);
    expect([longer.status, longer.headers.get("retry-after")]).toEqual([429, "2"]);
    await waitPasses(2);
    expect((await login(email, password)).status).toBe(200);
    // A success from the address starts it afresh.
    expect((await login(email, "guess-after-success")).status).toBe(401);
  });

  it("caps the backoff at 15 minutes", async () => {
    const email = "capped@example.com";
    expect((await login(email, "guess")).status).toBe(401);
    // As if a thousand failures had come from this address, the last one just now.
    await server.ctx.sql`update rate_limits set hits = 1000 where key like ${`login:account:${email}:%`}`;
    const res = await login(email, "guess");
    expect(res.status).toBe(429);
    expect(Number(res.headers.get("retry-after"))).toBe(LOGIN_LIMITS.maxBackoffSeconds);
  });

  it("does not let failures from one address lock the account out from another", async () => {
    const proxied = await startTestServer({ ATLASHUB_TRUST_PROXY: "true" });
    try {
      await createAdmin(proxied.ctx.sql, EMAIL, PASSWORD);
      const from = (ip: string, password: string) => proxied.fetch("/admin/api/login", jsonRequest("POST", { email: EMAIL, password }, { "x-forwarded-for": ip }));
      for (let i = 0; i < LOGIN_LIMITS.freeFailures; i++) expect((await from("203.0.113.66", "guess-" + i)).status).toBe(401);
      for (let i = 0; i < 3; i++) expect((await from("203.0.113.66", "guess-more-" + i)).status).toBe(429);
      const owner = await from("198.51.100.7", PASSWORD);
      expect(owner.status).toBe(200);
      registerSecret(owner.headers.get("set-cookie")!.split(";")[0]!.split("=")[1]);
      const attacker = await from("203.0.113.66", PASSWORD);
      expect(attacker.status).toBe(429);
      expect(Number(attacker.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    } finally {
      await proxied.stop();
    }
  });

  it("does not count successful logins against the account", async () => {
    for (let i = 0; i < LOGIN_LIMITS.freeFailures + 2; i++) expect((await login()).status).toBe(200);
  });

  it("marks the cookie Secure behind a trusted TLS proxy", async () => {
    const proxied = await startTestServer({ ATLASHUB_TRUST_PROXY: "true" });
    try {
      await createAdmin(proxied.ctx.sql, EMAIL, PASSWORD);
      const res = await proxied.fetch("/admin/api/login", jsonRequest("POST", { email: EMAIL, password: PASSWORD }, { "x-forwarded-proto": "https" }));
      registerSecret(res.headers.get("set-cookie")!.split(";")[0]!.split("=")[1]);
      expect(res.headers.get("set-cookie")).toContain("Secure");
    } finally {
      await proxied.stop();
    }
  });

  it("counts parallel failed attempts on one account and address atomically", async () => {
    const email = "parallel@example.com";
    const statuses = await Promise.all(Array.from({ length: 25 }, (_, i) => login(email, "guess-" + i).then((r) => r.status)));
    expect(statuses.filter((s) => s === 401)).toHaveLength(LOGIN_LIMITS.freeFailures);
    expect(statuses.filter((s) => s === 429)).toHaveLength(25 - LOGIN_LIMITS.freeFailures);
  });

  it("rate-limits attempts per IP across accounts, and client-written X-Forwarded-For hops do not help", async () => {
    const ipServer = await startTestServer({ ATLASHUB_TRUST_PROXY: "true" });
    try {
      // The proxy appends the real client address last; everything to its left is the client's own.
      const attempt = (i: number) =>
        ipServer.fetch("/admin/api/login", jsonRequest("POST", { email: `u${i}@example.com`, password: "pw" }, { "x-forwarded-for": `10.9.${i % 250}.1, 203.0.113.7` }));
      for (let i = 0; i < LOGIN_LIMITS.perIp; i++) expect((await attempt(i)).status).toBe(401);
      expect((await attempt(999)).status).toBe(429);
      const otherIp = await ipServer.fetch("/admin/api/login", jsonRequest("POST", { email: "x@example.com", password: "pw" }, { "x-forwarded-for": "203.0.113.8" }));
      expect(otherIp.status).toBe(401);
    } finally {
      await ipServer.stop();
    }
  });
});

describe("session cookie with an https ATLASHUB_PUBLIC_URL", () => {
  it("is always Secure and named __Host-atlashub_session (Path=/, no Domain); only that name is read", async () => {
    const https = await startTestServer({ ATLASHUB_PUBLIC_URL: "https://atlashub.example.com" });
    try {
      await createAdmin(https.ctx.sql, EMAIL, PASSWORD);
      // The request itself arrives over plain http (a TLS proxy in front): the cookie is Secure all the same.
      const res = await https.fetch("/admin/api/login", jsonRequest("POST", { email: EMAIL, password: PASSWORD }));
      expect(res.status).toBe(200);
      const setCookie = res.headers.get("set-cookie")!;
      const [pair, ...attributes] = setCookie.split(/;\s*/);
      const [name, token] = pair!.split("=");
      registerSecret(token);
      expect(name).toBe("__Host-atlashub_session");
      expect(attributes).toEqual(expect.arrayContaining(["Path=/", "Secure", "HttpOnly", "SameSite=Strict"]));
      expect(attributes.some((a) => /^domain=/i.test(a))).toBe(false);
      expect((await https.fetch("/admin/api/me", { headers: { cookie: pair! } })).status).toBe(200);
      expect((await https.fetch("/admin/api/me", { headers: { cookie: `atlashub_session=${token}` } })).status).toBe(401);
      const out = await https.fetch("/admin/api/logout", { method: "POST", headers: { cookie: pair! } });
      expect(out.status).toBe(204);
      expect(out.headers.get("set-cookie")).toMatch(/^__Host-atlashub_session=;.*Secure/);
      expect((await https.fetch("/admin/api/me", { headers: { cookie: pair! } })).status).toBe(401);
    } finally {
      await https.stop();
    }
  });
});

describe("sessions", () => {
  it("GET /admin/api/me answers for a session and logout ends it", async () => {
    const cookie = await sessionCookie();
    const me = await server.fetch("/admin/api/me", { headers: { cookie } });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ email: EMAIL, via: "admin" });
    const out = await server.fetch("/admin/api/logout", { method: "POST", headers: { cookie, "x-request-id": "logout-1" } });
    expect(out.status).toBe(204);
    expect(out.headers.get("set-cookie")).toMatch(/atlashub_session=;/);
    expect((await auditActions("logout-1"))[0]).toMatchObject({ action: "admin.logout", actor_label: EMAIL });
    expect((await server.fetch("/admin/api/me", { headers: { cookie } })).status).toBe(401);
  });

  it("ignores an expired session", async () => {
    const cookie = await sessionCookie();
    await server.ctx.sql`update admin_sessions set expires_at = now() - interval '1 second'`;
    expect((await server.fetch("/admin/api/me", { headers: { cookie } })).status).toBe(401);
  });
});

describe("admin API tokens", () => {
  it("are shown once, listed without the secret, accepted as Bearer and dead once revoked", async () => {
    const cookie = await sessionCookie();
    const created = await server.fetch("/admin/api/tokens", jsonRequest("POST", { name: "ci" }, { cookie, "x-request-id": "tok-create" }));
    expect(created.status).toBe(201);
    const token = await created.json();
    registerSecret(token.token);
    expect(token.token).toMatch(/^ah_at_[A-Za-z0-9_-]{43}$/);
    expect(token.prefix).toBe(token.token.slice(0, 12));

    const listed = await (await server.fetch("/admin/api/tokens", { headers: { cookie } })).json();
    expect(listed.items).toHaveLength(1);
    expect(JSON.stringify(listed)).not.toContain(token.token);
    expect(listed.items[0]).not.toHaveProperty("token_hash");

    const stored = await server.ctx.sql`select token_hash from admin_tokens where id = ${token.id}`;
    expect(stored[0]!.token_hash).toMatch(/^[0-9a-f]{64}$/);

    const bearer = { authorization: `Bearer ${token.token}` };
    const me = await server.fetch("/admin/api/me", { headers: bearer });
    expect(await me.json()).toMatchObject({ via: "token", email: EMAIL });

    const revoked = await server.fetch(`/admin/api/tokens/${token.id}`, { method: "DELETE", headers: { ...bearer, "x-request-id": "tok-revoke" } });
    expect(revoked.status).toBe(204);
    expect((await server.fetch("/admin/api/me", { headers: bearer })).status).toBe(401);

    expect((await auditActions("tok-create"))[0]).toMatchObject({ action: "admin.token.create", details: { name: "ci" } });
    expect((await auditActions("tok-revoke"))[0]).toMatchObject({ action: "admin.token.revoke", actor_type: "token" });
    expect(JSON.stringify(await auditActions())).not.toContain(token.token);
  });

  it("rejects unknown, malformed and expired tokens", async () => {
    const cookie = await sessionCookie();
    const { token, id } = await (await server.fetch("/admin/api/tokens", jsonRequest("POST", { name: "short" }, { cookie }))).json();
    registerSecret(token);
    await server.ctx.sql`update admin_tokens set expires_at = now() - interval '1 second' where id = ${id}`;
    for (const value of [token, "ah_at_" + "A".repeat(43), "garbage"]) {
      expect((await server.fetch("/admin/api/me", { headers: { authorization: `Bearer ${value}` } })).status).toBe(401);
    }
    expect((await server.fetch("/admin/api/tokens/not-a-uuid", { method: "DELETE", headers: { cookie } })).status).toBe(404);
  });
});

describe("cross-site request forgery", () => {
  it("refuses bodies that are not application/json with 415", async () => {
    const cookie = await sessionCookie();
    for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]) {
      const res = await server.fetch("/admin/api/tokens", { method: "POST", headers: { cookie, "content-type": type }, body: JSON.stringify({ name: "csrf" }) });
      expect(res.status).toBe(415);
      expect((await res.json()).error.code).toBe("unsupported_media_type");
    }
    expect(await server.ctx.sql`select 1 from admin_tokens where name = 'csrf'`).toHaveLength(0);
  });

  it("refuses writes whose Origin is another host, even a sibling subdomain", async () => {
    const cookie = await sessionCookie();
    const host = new URL(server.url).host;
    const foreign = await server.fetch("/admin/api/tokens", jsonRequest("POST", { name: "csrf" }, { cookie, origin: "https://evil.example.com" }));
    expect(foreign.status).toBe(403);
    expect((await foreign.json()).error.code).toBe("cross_origin");
    const own = await server.fetch("/admin/api/tokens", jsonRequest("POST", { name: "same-origin" }, { cookie, origin: `http://${host}` }));
    expect(own.status).toBe(201);
    registerSecret((await own.json()).token);
  });
});

describe("bad input never reaches Postgres as a 500", () => {
  const bodies: [string, unknown][] = [
    ["a NUL byte in the token name", { name: "a\u0000b" }],
    ["a control character in the token name", { name: "a\u0007b" }],
    ["an expiry in the past", { name: "old", expires_at: "2000-01-01T00:00:00Z" }],
    ["an expiry in year 0", { name: "zero", expires_at: "0000-01-01T00:00:00Z" }],
    ["an expiry past year 9999", { name: "far", expires_at: "+010000-01-01T00:00:00Z" }],
    ["an empty name", { name: "   " }],
  ];
  for (const [what, body] of bodies) {
    it(`answers 400 for ${what}`, async () => {
      const res = await server.fetch("/admin/api/tokens", jsonRequest("POST", body, { cookie: await sessionCookie() }));
      expect(res.status).toBe(400);
      expect((await res.json()).error.code).toBe("validation_failed");
    });
  }

  it("answers 400 for a NUL byte in a query parameter", async () => {
    const res = await server.fetch("/admin/api/audit?action=%00", { headers: { cookie: await sessionCookie() } });
    expect(res.status).toBe(400);
  });
});

describe("writes and their audit entries", () => {
  it("are one transaction: when the audit entry cannot be written, no token exists", async () => {
    const cookie = await sessionCookie();
    await server.ctx.sql`alter table audit_log add constraint test_refuse check (action <> 'admin.token.create') not valid`;
    try {
      const res = await server.fetch("/admin/api/tokens", jsonRequest("POST", { name: "unaudited" }, { cookie, "x-request-id": "unaudited-1" }));
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual({ error: { code: "internal_error", message: expect.any(String), details: { request_id: "unaudited-1" } } });
      expect(await server.ctx.sql`select 1 from admin_tokens where name = 'unaudited'`).toHaveLength(0);
    } finally {
      await server.ctx.sql`alter table audit_log drop constraint test_refuse`;
    }
  });

  it("logout audits only a session that really ended", async () => {
    const cookie = await sessionCookie();
    const { token } = await (await server.fetch("/admin/api/tokens", jsonRequest("POST", { name: "logout-check" }, { cookie }))).json();
    registerSecret(token);
    const res = await server.fetch("/admin/api/logout", { method: "POST", headers: { authorization: `Bearer ${token}`, "x-request-id": "bearer-logout" } });
    expect(res.status).toBe(204);
    expect(await auditActions("bearer-logout")).toEqual([]);
  });
});

describe("every /admin/api route except login needs a session or token", () => {
  const routes: [string, string][] = [
    ["GET", "/admin/api/me"],
    ["POST", "/admin/api/logout"],
    ["GET", "/admin/api/tokens"],
    ["POST", "/admin/api/tokens"],
    ["DELETE", "/admin/api/tokens/00000000-0000-0000-0000-000000000000"],
    ["GET", "/admin/api/audit"],
    ["GET", "/admin/api/no-such-route"],
  ];
  for (const [method, path] of routes) {
    it(`${method} ${path} → 401`, async () => {
      const res = await server.fetch(path, { method });
      expect(res.status).toBe(401);
      expect((await res.json()).error.code).toBe("unauthorized");
    });
  }
});

describe("GET /admin/api/audit", () => {
  it("pages through the log newest first and filters by action", async () => {
    const cookie = await sessionCookie();
    const res = await server.fetch("/admin/api/audit?action=admin.login&limit=2", { headers: { cookie } });
    const body = await res.json();
    expect(body.limit).toBe(2);
    expect(body.items).toHaveLength(2);
    expect(body.items.every((e: { action: string }) => e.action === "admin.login")).toBe(true);
    expect(BigInt(body.items[0].id)).toBeGreaterThan(BigInt(body.items[1].id));
    expect((await server.fetch("/admin/api/audit?limit=5000", { headers: { cookie } })).status).toBe(400);
  });
});

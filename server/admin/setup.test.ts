import { afterAll, beforeAll, beforeEach, describe, expect, it } from "bun:test";
import { startTestServer, jsonRequest, type TestServer } from "../test/server";
import { appendToSuiteLog, registerSecret } from "../test/harness";
import { setLogSink } from "../platform/log";
import { issueSetupToken, SETUP_LIMITS } from "./service";

// The setup token is the one secret the server prints on purpose, so it is not registered as a
// secret for the suite's log scan; these tests check instead that exactly one line holds it.
const PASSWORD = "first admin password 42";
registerSecret(PASSWORD);

const logLines: string[] = [];
let server: TestServer;
let printedToken = "";

beforeAll(async () => {
  setLogSink((line) => {
    logLines.push(line);
    appendToSuiteLog(line);
  });
  server = await startTestServer();
  const line = logLines.find((l) => l.includes("first-run setup"));
  printedToken = /ah_setup_[A-Za-z0-9_-]{43}\b/.exec(line ?? "")?.[0] ?? "";
});
afterAll(async () => {
  await server.stop();
  setLogSink(appendToSuiteLog);
});
beforeEach(async () => {
  await server.ctx.sql`delete from rate_limits`;
});

const setup = (body: unknown, headers: Record<string, string> = {}) => server.fetch("/admin/api/setup", jsonRequest("POST", body, headers));
const needed = async () => ((await (await server.fetch("/admin/api/setup")).json()) as { needed: boolean }).needed;
const adminCount = async () => Number((await server.ctx.sql`select count(*)::int as n from admin_users`)[0]!.n);

describe("first-run setup", () => {
  it("prints a setup token with the URL on start while no admin exists, and GET /admin/api/setup says needed", async () => {
    expect(printedToken).toMatch(/^ah_setup_/);
    const line = JSON.parse(logLines.find((l) => l.includes(printedToken))!);
    expect(line).toMatchObject({ level: "info", url: `${server.url}/login` });
    expect(line.msg).toContain(`Open ${server.url}/login`);
    expect(await needed()).toBe(true);
    const stored = await server.ctx.sql`select token_hash from admin_setup`;
    expect(stored).toHaveLength(1);
    expect(stored[0]!.token_hash).not.toContain(printedToken);
  });

  it("refuses a wrong token with 401 invalid_setup_token, and a malformed body with 400", async () => {
    const res = await setup({ token: "ah_setup_" + "x".repeat(43), email: "a@example.com", password: PASSWORD }, { "x-request-id": "setup-bad-1" });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: { code: "invalid_setup_token", message: expect.stringContaining("setup token is wrong") } });
    expect(res.headers.get("set-cookie")).toBeNull();
    const [row] = await server.ctx.sql`select action, actor_type, details from audit_log where request_id = 'setup-bad-1'`;
    expect(row).toMatchObject({ action: "admin.setup_failed", actor_type: "anonymous", details: { code: "invalid_setup_token" } });
    const short = await setup({ token: printedToken, email: "a@example.com", password: "short" });
    expect(short.status).toBe(400);
    expect(await short.json()).toMatchObject({ error: { code: "validation_failed", details: { issues: [{ path: "password" }] } } });
    expect(await adminCount()).toBe(0);
  });

  it("rate-limits attempts per IP with 429 and Retry-After", async () => {
    for (let i = 0; i < SETUP_LIMITS.perIp; i++) {
      expect((await setup({ token: "wrong", email: "a@example.com", password: PASSWORD })).status).toBe(401);
    }
    const res = await setup({ token: printedToken, email: "a@example.com", password: PASSWORD });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await res.json()).error.code).toBe("rate_limited");
    expect(await adminCount()).toBe(0);
  });

  it("accepts only the latest token: a new start replaces the printed one", async () => {
    const newer = (await issueSetupToken(server.ctx.sql))!;
    expect(newer).toMatch(/^ah_setup_[A-Za-z0-9_-]{43}$/);
    const old = await setup({ token: printedToken, email: "a@example.com", password: PASSWORD });
    expect(old.status).toBe(401);
    printedToken = newer;
  });

  it("creates exactly one admin from concurrent setups with the right token, signs them in, and audits it", async () => {
    const attempts = await Promise.all(
      Array.from({ length: 5 }, (_, i) => setup({ token: printedToken, email: `Owner${i}@Example.com`, password: PASSWORD }, { "x-request-id": `setup-race-${i}` })),
    );
    const statuses = attempts.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409, 409, 409, 409]);
    const winner = attempts.find((r) => r.status === 201)!;
    const body = await winner.json();
    const email: string = body.user.email;
    expect(email).toMatch(/^owner\d@example\.com$/);
    expect(typeof body.expires_at).toBe("string");
    for (const loser of attempts.filter((r) => r.status === 409)) {
      expect(await loser.json()).toEqual({ error: { code: "setup_done", message: "An admin already exists; sign in instead." } });
    }
    expect(await adminCount()).toBe(1);
    expect(await server.ctx.sql`select * from admin_setup`).toHaveLength(0);
    // Signed in: the cookie is a session like a login's.
    const cookie = winner.headers.get("set-cookie")!;
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("SameSite=Strict");
    const session = cookie.split(";")[0]!;
    registerSecret(session.split("=")[1]);
    const me = await server.fetch("/admin/api/me", { headers: { cookie: session } });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ email: email, via: "admin" });
    const audit = await server.ctx.sql`select action, actor_label from audit_log where request_id like 'setup-race-%' and action in ('admin.setup', 'admin.login') order by id`;
    expect(audit).toEqual([
      { action: "admin.setup", actor_label: email },
      { action: "admin.login", actor_label: email },
    ]);
    // The new admin can sign in with the password.
    const login = await server.fetch("/admin/api/login", jsonRequest("POST", { email: email, password: PASSWORD }));
    expect(login.status).toBe(200);
    registerSecret(login.headers.get("set-cookie")!.split(";")[0]!.split("=")[1]);
  });

  it("is over once an admin exists: 409 setup_done for any token, needed false, no new token on start", async () => {
    for (const token of [printedToken, "wrong"]) {
      const res = await setup({ token, email: "late@example.com", password: PASSWORD });
      expect(res.status).toBe(409);
      expect((await res.json()).error.code).toBe("setup_done");
    }
    expect(await needed()).toBe(false);
    expect(await issueSetupToken(server.ctx.sql)).toBeUndefined();
    expect(await server.ctx.sql`select * from admin_setup`).toHaveLength(0);
    expect(await adminCount()).toBe(1);
  });

  it("leaves the token in one log line only, and nowhere in the audit log", async () => {
    const first = /ah_setup_[A-Za-z0-9_-]{43}\b/.exec(logLines.find((l) => l.includes("first-run setup"))!)![0];
    expect(logLines.filter((l) => l.includes(first))).toHaveLength(1);
    expect(logLines.filter((l) => l.includes(printedToken))).toHaveLength(0); // issued by the test, never printed
    expect(logLines.filter((l) => l.includes("first-run setup"))).toHaveLength(1);
    expect(logLines.filter((l) => l.includes(PASSWORD))).toHaveLength(0);
    const [row] = await server.ctx.sql`select count(*)::int as n from audit_log where details::text like '%ah_setup_%' or actor_label like '%ah_setup_%'`;
    expect(row!.n).toBe(0);
  });
});

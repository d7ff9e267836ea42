import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import postgres from "postgres";
import { adminHeaders, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret } from "../test/harness";

const PROVISION_KEY = "provision-key-for-tests-0123456789";
registerSecret(PROVISION_KEY);

let server: TestServer;
let token: string;
beforeAll(async () => {
  server = await startTestServer({ ATLASHUB_PROVISION_KEY: PROVISION_KEY });
  token = (await adminHeaders(server)).authorization!.slice("Bearer ".length);
});
afterAll(() => server.stop());

async function provision(body: unknown, headers: Record<string, string> = {}) {
  const res = await server.fetch("/provision", jsonRequest("POST", body, headers));
  return { status: res.status, body: await res.json() };
}

describe("POST /provision", () => {
  it("creates a project and returns the app role's connection string (key in the body)", async () => {
    const res = await provision({ app_name: "scripted_app", admin_key: PROVISION_KEY });
    expect(res.status).toBe(201);
    registerSecret(new URL(res.body.connection_string).password);
    expect(res.body.connection_string).toMatch(new RegExp(`^postgresql://p_${res.body.project_id}_app:[A-Za-z0-9_-]{32}@127\\.0\\.0\\.1:\\d+/p_${res.body.project_id}\\?sslmode=disable$`));
    const app = postgres(res.body.connection_string, { max: 1, onnotice: () => {} });
    expect(await app`select current_user as u`).toEqual([{ u: `p_${res.body.project_id}_app` }]);
    await app.end();
  });

  it("accepts an admin API token as X-Admin-Key", async () => {
    const res = await provision({ app_name: "token_app" }, { "x-admin-key": token });
    expect(res.status).toBe(201);
    registerSecret(new URL(res.body.connection_string).password);
  });

  const badNames = ["ab", "a".repeat(33), "With-Dash", "UPPER", "sp ace", ""];
  for (const app_name of badNames) {
    it(`answers 400 for app_name ${JSON.stringify(app_name)}`, async () => {
      const res = await provision({ app_name, admin_key: PROVISION_KEY });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("validation_failed");
    });
  }

  it("answers 401 to a caller without a key whatever its body is", async () => {
    const res = await server.fetch("/provision", { method: "POST", headers: { "content-type": "text/plain" }, body: "hello" });
    expect(res.status).toBe(401);
  });

  it("answers 401 for a missing or wrong key, before looking at the name", async () => {
    for (const body of [{ app_name: "no_key" }, { app_name: "bad_key", admin_key: "wrong" }, { app_name: "x", admin_key: PROVISION_KEY + "x" }]) {
      const res = await provision(body);
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe("unauthorized");
    }
  });

  it("answers 409 for a name in use, and exactly one of two concurrent requests wins", async () => {
    const [a, b] = await Promise.all([
      provision({ app_name: "race_app", admin_key: PROVISION_KEY }),
      provision({ app_name: "race_app", admin_key: PROVISION_KEY }),
    ]);
    expect([a.status, b.status].sort()).toEqual([201, 409]);
    for (const r of [a, b]) if (r.status === 201) registerSecret(new URL(r.body.connection_string).password);
    expect((await provision({ app_name: "race_app", admin_key: PROVISION_KEY })).status).toBe(409);
  });

  it("answers a provisioning failure with a bare 500 carrying the request id", async () => {
    // Break one provisioning step for the length of this request.
    await server.ctx.sql`alter function atlashub_set_role_password(text, text) rename to atlashub_set_role_password_off`;
    try {
      const res = await server.fetch("/provision", jsonRequest("POST", { app_name: "doomed_app", admin_key: PROVISION_KEY }, { "x-request-id": "prov-500" }));
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual({ error: { code: "internal_error", message: expect.any(String), details: { request_id: "prov-500" } } });
    } finally {
      await server.ctx.sql`alter function atlashub_set_role_password_off(text, text) rename to atlashub_set_role_password`;
    }
    const [failed] = await server.ctx.sql`select status, failure_reason from projects where name = 'doomed_app'`;
    expect(failed).toMatchObject({ status: "failed", failure_reason: expect.stringContaining("atlashub_set_role_password") });
  });
});

describe("POST /provision with no key configured", () => {
  it("does not exist (404) until an admin token exists", async () => {
    const bare = await startTestServer();
    try {
      const res = await bare.fetch("/provision", jsonRequest("POST", { app_name: "nobody_app", admin_key: "anything" }));
      expect(res.status).toBe(404);
      const auth = await adminHeaders(bare);
      const withToken = await bare.fetch("/provision", jsonRequest("POST", { app_name: "somebody_app" }, { "x-admin-key": auth.authorization!.slice(7) }));
      expect(withToken.status).toBe(201);
      registerSecret(new URL((await withToken.json()).connection_string).password);
    } finally {
      await bare.stop();
    }
  });
});

import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { loadConfig } from "../config";
import { startAtlasHub } from "../serve";
import { registerSecret, tempDir } from "./harness";

/**
 * Starts the real server in-process on a random port, on the external engine pointed at the suite's
 * cluster, with a control-plane database of its own so tests never see each other's rows.
 */
export async function startTestServer(env: Record<string, string> = {}) {
  const masterKey = randomBytes(32).toString("hex");
  registerSecret(masterKey);
  const config = loadConfig({
    ATLASHUB_DATA_DIR: tempDir("server"),
    ATLASHUB_PORT: "0",
    ATLASHUB_PG_ENGINE: "external",
    ATLASHUB_DATABASE_URL: process.env.ATLASHUB_TEST_DATABASE_URL,
    ATLASHUB_CONTROL_DB: `atlashub_t_${randomBytes(5).toString("hex")}`,
    ATLASHUB_MASTER_KEY: masterKey,
    // Tests fire requests back to back; the rate-limit tests set a project's own limit instead.
    ATLASHUB_API_RATE_LIMIT: "100000",
    ATLASHUB_API_RATE_BURST: "100000",
    ...env,
  });
  const server = await startAtlasHub(config);
  return {
    ...server,
    /** fetch() against the running server: `await server.fetch("/health")`. */
    fetch: (path: string, init?: RequestInit) => fetch(server.url + path, init),
  };
}

export type TestServer = Awaited<ReturnType<typeof startTestServer>>;

export function jsonRequest(method: string, body: unknown, headers: Record<string, string> = {}): RequestInit {
  return { method, headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) };
}

/** An admin and an API token for it: the headers an automation script would send. */
export async function adminHeaders(server: TestServer): Promise<Record<string, string>> {
  const { createAdmin, createToken } = await import("../admin/service");
  const email = `admin-${randomBytes(4).toString("hex")}@example.com`;
  const admin = await createAdmin(server.ctx.sql, email, randomBytes(16).toString("hex"));
  const { token } = await createToken(server.ctx.sql, admin.id, { name: "tests" });
  registerSecret(token);
  return { authorization: `Bearer ${token}` };
}

/** Creates a project through the admin API; its passwords are registered as secrets. Throws unless 201. */
export async function createTestProject(server: TestServer, auth: Record<string, string>, name: string) {
  const res = await server.fetch("/admin/api/projects", jsonRequest("POST", { name }, auth));
  const body = (await res.json()) as any;
  if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${JSON.stringify(body)}`);
  for (const c of Object.values(body.credentials) as { password: string }[]) registerSecret(c.password);
  return body;
}

/** The postgres.js clients a test file opens; `endAll()` in afterAll closes every one. */
export function clientTracker() {
  const clients: postgres.Sql[] = [];
  return {
    connect(dsnOrOptions: string | postgres.Options<{}>) {
      const options = { max: 1, connect_timeout: 5, onnotice: () => {} };
      const client = typeof dsnOrOptions === "string" ? postgres(dsnOrOptions, options) : postgres({ ...options, ...dsnOrOptions });
      clients.push(client);
      return client;
    },
    endAll: () => Promise.all(clients.map((c) => c.end({ timeout: 1 }))),
  };
}

// What the whole-binary e2e tests share: the compiled atlashub on the suite's cluster (external
// engine) with a control-plane database of its own, and an admin token made straight in that
// control plane, for tests that then drive the admin and public APIs over HTTP.
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import postgres from "postgres";
import { createAdmin, createToken } from "../admin/service";
import { freePort, registerSecret, tempDir } from "./harness";

export function binaryTestSetup(name: string, extraEnv: Record<string, string> = {}) {
  const masterKey = randomBytes(32).toString("hex");
  registerSecret(masterKey);
  const controlDb = `atlashub_${name.replaceAll("-", "_")}_${randomBytes(4).toString("hex")}`;
  const env: Record<string, string> = {
    ATLASHUB_PG_ENGINE: "external",
    ATLASHUB_DATABASE_URL: process.env.ATLASHUB_TEST_DATABASE_URL!,
    ATLASHUB_CONTROL_DB: controlDb,
    ATLASHUB_MASTER_KEY: masterKey,
    ATLASHUB_PORT: String(freePort()),
    ...extraEnv,
  };
  const url = (path: string) => `http://127.0.0.1:${env.ATLASHUB_PORT}${path}`;
  return {
    env,
    dataDir: join(tempDir(name), "data"),
    url,
    /** A connection to the cluster itself (superuser), and one to the control plane (after the first start made it). */
    cluster: (max = 1) => postgres(process.env.ATLASHUB_TEST_DATABASE_URL!, { max, onnotice: () => {} }),
    controlPlane: (max = 1) => postgres(process.env.ATLASHUB_TEST_DATABASE_URL!, { database: controlDb, max, onnotice: () => {} }),
    /** An admin with an API token, made in the control plane: the headers of an automation script. */
    async adminHeaders(control: postgres.Sql): Promise<Record<string, string>> {
      const admin = await createAdmin(control, `${name}@example.com`, randomBytes(16).toString("hex"));
      const { token } = await createToken(control, admin.id, { name });
      registerSecret(token);
      return { authorization: `Bearer ${token}`, "content-type": "application/json" };
    },
    /** POSTs JSON and returns the parsed answer; throws unless 2xx. */
    async post(path: string, headers: Record<string, string>, body: unknown) {
      const res = await fetch(url(path), { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
      const json = await res.json();
      if (res.status >= 300) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
      return json;
    },
  };
}

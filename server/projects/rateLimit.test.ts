import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { adminHeaders, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret, waitFor } from "../test/harness";

let server: TestServer;
let auth: Record<string, string>;

async function keyFor(projectId: string) {
  const res = await server.fetch(`/admin/api/projects/${projectId}/keys`, jsonRequest("POST", { name: "limits", kind: "secret" }, auth));
  const body = await res.json();
  registerSecret(body.key);
  return body.key as string;
}
const tables = (key: string) => server.fetch("/v1/db/tables", { headers: { "x-api-key": key } });
const patch = async (id: string, body: unknown) => {
  const res = await server.fetch(`/admin/api/projects/${id}`, jsonRequest("PATCH", body, auth));
  return { status: res.status, body: await res.json() };
};

beforeAll(async () => {
  server = await startTestServer();
  auth = await adminHeaders(server);
});
afterAll(() => server.stop());

describe("/v1 rate limits", () => {
  it("PATCH sets a project's own limit, GET shows it, null goes back to the default", async () => {
    const p = await createTestProject(server, auth, "limits-fields");
    expect(p).toMatchObject({ rate_limit_rps: null, rate_limit_burst: null });
    expect((await patch(p.id, { rate_limit_rps: 7, rate_limit_burst: 20 })).body).toMatchObject({ rate_limit_rps: 7, rate_limit_burst: 20 });
    expect(await (await server.fetch(`/admin/api/projects/${p.id}`, { headers: auth })).json()).toMatchObject({ rate_limit_rps: 7, rate_limit_burst: 20 });
    expect((await patch(p.id, { rate_limit_burst: null })).body).toMatchObject({ name: "limits-fields", rate_limit_rps: 7, rate_limit_burst: null });
    for (const bad of [{ rate_limit_rps: 0 }, { rate_limit_burst: 1.5 }, { rate_limit_rps: "10" }, {}]) {
      const res = await patch(p.id, bad);
      expect({ bad, status: res.status, code: res.body.error.code }).toEqual({ bad, status: 400, code: "validation_failed" });
    }
  });

  it("answers a burst beyond the project's limit with 429 and Retry-After; the project's keys share it, other projects do not", async () => {
    const limited = await createTestProject(server, auth, "limits-low");
    const other = await createTestProject(server, auth, "limits-other");
    const [first, second, otherKey] = [await keyFor(limited.id), await keyFor(limited.id), await keyFor(other.id)];
    expect((await patch(limited.id, { rate_limit_rps: 1, rate_limit_burst: 3 })).status).toBe(200);

    const burst = await Promise.all(Array.from({ length: 8 }, () => tables(first)));
    const ok = burst.filter((r) => r.status === 200).length;
    expect(ok).toBeGreaterThanOrEqual(3);
    expect(ok).toBeLessThanOrEqual(4); // 3 at once, perhaps one more refilled meanwhile
    const refused = burst.find((r) => r.status === 429)!;
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(await refused.json()).toEqual({
      error: { code: "rate_limited", message: expect.stringContaining("try again in 1 s"), details: { retry_after: 1 } },
    });

    // A second key of the project has its own key bucket, but the project's is empty.
    const fromSecond = await tables(second);
    expect(fromSecond.status).toBe(429);
    expect(fromSecond.headers.get("retry-after")).toBe("1");
    // Another project has its own buckets.
    expect((await Promise.all(Array.from({ length: 8 }, () => tables(otherKey)))).map((r) => r.status)).toEqual(Array(8).fill(200));

    // Back to the default (50/s, burst 100): the change is seen at once on this instance.
    expect((await patch(limited.id, { rate_limit_rps: null, rate_limit_burst: null })).status).toBe(200);
    await waitFor("a token at the default rate", async () => (await tables(first)).status === 200, 2_000);
  });

  it("refuses a 2 MB body with 413 and the JSON error", async () => {
    const p = await createTestProject(server, auth, "limits-body");
    const key = await keyFor(p.id);
    const rows = JSON.stringify([{ text: "x".repeat(2 * 1024 * 1024) }]);
    // Connection: close, else the server keeps the half-read connection open and stop() waits 10 s for it.
    const headers = { "x-api-key": key, "content-type": "application/json", connection: "close" };
    const res = await server.fetch("/v1/db/notes", { method: "POST", headers, body: rows });
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ error: { code: "payload_too_large", message: expect.any(String), details: { limit: 1048576 } } });
  });
});

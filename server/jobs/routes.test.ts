import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { adminHeaders, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret, waitFor } from "../test/harness";
import { startHttpTarget } from "../test/httpTarget";

let server: TestServer;
let auth: Record<string, string>;
const target = startHttpTarget();
// Every response of this file is kept, so the last test can check that no secret was ever sent back.
const responses: string[] = [];

const SECRET_TOKEN = "Bearer job-secret-9f8e7d6c5b4a39281706";
const SECRET_SIGNATURE = "sig-5e4d3c2b1a0f9e8d7c6b";
const WEBHOOK = "http://127.0.0.1:9/notify/hook-token-1a2b3c4d5e6f";
registerSecret(SECRET_TOKEN, SECRET_SIGNATURE, WEBHOOK);

beforeAll(async () => {
  // The scheduler stays off here: these tests run jobs with "run now"; runner.test.ts drives schedules.
  server = await startTestServer({ ATLASHUB_JOB_ALLOW_HOSTS: "127.0.0.1", ATLASHUB_SCHEDULER: "false" });
  auth = await adminHeaders(server);
});
afterAll(async () => {
  await server.stop();
  target.stop();
});

async function call(method: string, path: string, body?: unknown) {
  const res = await server.fetch(path, body === undefined ? { method, headers: auth } : jsonRequest(method, body, auth));
  const text = await res.text();
  responses.push(text);
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

let seq = 0;
function httpJob(path: string, overrides: Record<string, unknown> = {}, http: Record<string, unknown> = {}) {
  return { name: `job-${++seq}`, schedule: "*/5 * * * *", kind: "http", http: { method: "POST", url: target.url + path, ...http }, ...overrides };
}

async function createJob(path: string, overrides: Record<string, unknown> = {}, http: Record<string, unknown> = {}) {
  const res = await call("POST", "/admin/api/jobs", httpJob(path, overrides, http));
  if (res.status !== 201) throw new Error(`create job: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

async function runAndWait(jobId: string) {
  const started = await call("POST", `/admin/api/jobs/${jobId}/run`);
  expect(started.status).toBe(202);
  return waitFor("the run to finish", async () => {
    const run = (await call("GET", `/admin/api/jobs/${jobId}/runs/${started.body.run_id}`)).body;
    return run.status !== "running" && run;
  });
}

describe("POST /admin/api/jobs", () => {
  it("creates an HTTP job with defaults, next run and secret headers masked (encrypted at rest)", async () => {
    const job = await createJob("/ok", { timezone: "Europe/Berlin" }, { headers: { Authorization: SECRET_TOKEN, "X-Plain": "visible" }, secret_headers: { "X-Signature": SECRET_SIGNATURE }, body: "{}" });
    expect(job).toMatchObject({
      kind: "http",
      schedule: "*/5 * * * *",
      timezone: "Europe/Berlin",
      enabled: true,
      missed: "skip",
      concurrency: "forbid",
      retries: 0,
      backoff_ms: 1000,
      project_id: null,
      last_run: null,
      http: { method: "POST", url: target.url + "/ok", body: "{}", timeout_ms: 10_000, headers: { authorization: "********", "x-plain": "visible", "x-signature": "********" }, secret_headers: ["authorization", "x-signature"] },
    });
    const next = Date.parse(job.next_run_at);
    expect(next).toBeGreaterThan(Date.now());
    expect(new Date(next).getUTCMinutes() % 5).toBe(0);
    const [row] = await server.ctx.sql`select secrets, payload::text as payload from jobs where id = ${job.id}`;
    expect(row!.secrets).toStartWith("v1:");
    expect(row!.secrets + row!.payload).not.toContain("job-secret");
    expect(row!.payload).not.toContain("sig-5e4d");
    const [entry] = await server.ctx.sql`select action, details from audit_log where target_id = ${job.id}`;
    expect(entry).toMatchObject({ action: "job.create", details: { name: job.name } });
  });

  const invalid: [string, Record<string, unknown>, number, string][] = [
    ["a missing schedule", { schedule: undefined }, 400, "validation_failed"],
    ["an unknown kind", { kind: "shell" }, 400, "validation_failed"],
    ["a cron expression with a bad field", { schedule: "61 * * * *" }, 400, "invalid_schedule"],
    ["a six-field expression", { schedule: "* * * * * *" }, 400, "invalid_schedule"],
    ["an unknown timezone", { timezone: "Mars/Olympus" }, 400, "invalid_schedule"],
    ["an expression that never runs", { schedule: "0 0 30 2 *" }, 400, "invalid_schedule"],
    ["too many retries", { retries: 11 }, 400, "validation_failed"],
    ["an unknown project", { project_id: "zzzzzzzzzz" }, 422, "unprocessable"],
  ];
  for (const [what, overrides, status, code] of invalid) {
    it(`refuses ${what} with ${status} ${code}`, async () => {
      const res = await call("POST", "/admin/api/jobs", httpJob("/ok", overrides));
      expect([res.status, res.body.error.code]).toEqual([status, code]);
    });
  }

  const invalidHttp: [string, Record<string, unknown>][] = [
    ["an ftp URL", { url: "ftp://127.0.0.1/" }],
    ["a URL with credentials", { url: "http://user:pw@127.0.0.1/" }],
    ["a body on a GET", { method: "GET", body: "x" }],
    ["a Host header", { headers: { Host: "example.com" } }],
    ["a header value with a line break", { headers: { "X-A": "a\r\nX-B: b" } }],
    ["a timeout above 60 s", { timeout_ms: 60_001 }],
    ["an unknown method", { method: "TRACE" }],
  ];
  for (const [what, http] of invalidHttp) {
    it(`refuses ${what} with 400 validation_failed`, async () => {
      const res = await call("POST", "/admin/api/jobs", httpJob("/ok", {}, http));
      expect([res.status, res.body.error.code]).toEqual([400, "validation_failed"]);
    });
  }

  for (const url of ["http://10.0.0.1/", "http://localhost:8080/", "http://169.254.169.254/latest/", "http://[::1]/", "http://2130706433/", "http://0x7f.1/"]) {
    it(`refuses the unsafe target ${url} with 400 ssrf_blocked`, async () => {
      // 127.0.0.1 is allowlisted here by address, so the decimal and hex spellings of it pass; the rest may not.
      const res = await call("POST", "/admin/api/jobs", httpJob("", {}, { url }));
      if (url === "http://2130706433/" || url === "http://0x7f.1/") expect(res.status).toBe(201);
      else expect([res.status, res.body.error.code]).toEqual([400, "ssrf_blocked"]);
    });
  }

  it("checks the notification webhook too", async () => {
    const res = await call("POST", "/admin/api/jobs", httpJob("/ok", { notify: { on: "failure", webhook_url: "http://192.168.1.10/hook" } }));
    expect([res.status, res.body.error.code]).toEqual([400, "ssrf_blocked"]);
    const ok = await createJob("/ok", { notify: { on: "always", webhook_url: WEBHOOK } });
    expect(ok.notify).toEqual({ on: "always", webhook_url: "********" });
  });

  it("answers 409 for a second job of the same name, 415 for a body that is not JSON", async () => {
    const job = await createJob("/ok");
    const again = await call("POST", "/admin/api/jobs", httpJob("/ok", { name: job.name }));
    expect([again.status, again.body.error.code]).toEqual([409, "conflict"]);
    const res = await server.fetch("/admin/api/jobs", { method: "POST", headers: { ...auth, "content-type": "text/plain" }, body: "{}" });
    expect(res.status).toBe(415);
  });

  it("scopes a job to a project", async () => {
    const project = await createTestProject(server, auth, "jobs-scope");
    const job = await createJob("/ok", { project_id: project.id });
    expect(job.project_id).toBe(project.id);
    const list = await call("GET", `/admin/api/jobs?project_id=${project.id}`);
    expect(list.body.items.map((j: any) => j.id)).toEqual([job.id]);
  });
});

describe("GET|PATCH|DELETE /admin/api/jobs/:id", () => {
  it("lists jobs with their next run and last status", async () => {
    const job = await createJob("/ok");
    await runAndWait(job.id);
    const list = await call("GET", "/admin/api/jobs?limit=1000");
    const listed = list.body.items.find((j: any) => j.id === job.id);
    expect(listed.last_run).toMatchObject({ status: "succeeded" });
    expect(Date.parse(listed.next_run_at)).toBeGreaterThan(Date.now());
    expect((await call("GET", "/admin/api/jobs?limit=1")).body.items).toHaveLength(1);
  });

  it("answers 404 for an unknown or malformed id", async () => {
    for (const id of ["00000000-0000-0000-0000-000000000000", "nope"]) {
      for (const [method, path] of [["GET", ""], ["PATCH", ""], ["DELETE", ""], ["POST", "/run"], ["GET", "/runs"]] as const) {
        const res = await call(method, `/admin/api/jobs/${id}${path}`, method === "PATCH" ? { enabled: false } : undefined);
        expect([method, path, res.status]).toEqual([method, path, 404]);
      }
    }
  });

  it("patches fields, merges headers (null removes one) and keeps secrets it was not given", async () => {
    const job = await createJob("/ok", {}, { headers: { Authorization: SECRET_TOKEN, "X-Keep": "1", "X-Drop": "2" } });
    const patched = await call("PATCH", `/admin/api/jobs/${job.id}`, { schedule: "0 * * * *", retries: 2, http: { method: "PUT", headers: { "x-drop": null, "X-New": "3" }, body: "hi" } });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ schedule: "0 * * * *", retries: 2, http: { method: "PUT", body: "hi", headers: { authorization: "********", "x-keep": "1", "x-new": "3" } } });
    expect(patched.body.http.headers).not.toHaveProperty("x-drop");
    await runAndWait(job.id);
    const got = target.received.at(-1)!;
    expect(got).toMatchObject({ method: "PUT", body: "hi", headers: { authorization: SECRET_TOKEN, "x-keep": "1", "x-new": "3" } });
    expect(got.headers).not.toHaveProperty("x-drop");
  });

  it("refuses a patch to an unsafe target or a bad schedule and leaves the job as it was", async () => {
    const job = await createJob("/ok");
    const blocked = await call("PATCH", `/admin/api/jobs/${job.id}`, { http: { url: "http://172.16.0.1/" } });
    expect([blocked.status, blocked.body.error.code]).toEqual([400, "ssrf_blocked"]);
    const bad = await call("PATCH", `/admin/api/jobs/${job.id}`, { timezone: "Nowhere/Else" });
    expect([bad.status, bad.body.error.code]).toEqual([400, "invalid_schedule"]);
    const empty = await call("PATCH", `/admin/api/jobs/${job.id}`, {});
    expect(empty.status).toBe(400);
    expect((await call("GET", `/admin/api/jobs/${job.id}`)).body).toMatchObject({ http: { url: target.url + "/ok" }, timezone: "UTC" });
  });

  it("disables a job (no next run) and deletes it with its runs", async () => {
    const job = await createJob("/ok");
    await runAndWait(job.id);
    const disabled = await call("PATCH", `/admin/api/jobs/${job.id}`, { enabled: false });
    expect(disabled.body).toMatchObject({ enabled: false, next_run_at: null });
    expect((await call("DELETE", `/admin/api/jobs/${job.id}`)).status).toBe(204);
    expect((await call("GET", `/admin/api/jobs/${job.id}`)).status).toBe(404);
    expect(await server.ctx.sql`select 1 from job_runs where job_id = ${job.id}`).toHaveLength(0);
  });
});

describe("POST /admin/api/jobs/:id/run", () => {
  it("runs the job now (202 with the run id) and records status, duration and the response", async () => {
    const job = await createJob("/ok", {}, { headers: { "Content-Type": "application/json", Authorization: SECRET_TOKEN }, body: '{"ping":1}' });
    const run = await runAndWait(job.id);
    expect(run).toMatchObject({ job_id: job.id, trigger: "manual", status: "succeeded", attempt: 1, response_status: 200, response_body: "pong", error: null });
    expect(run.duration_ms).toBeGreaterThanOrEqual(0);
    const got = target.received.at(-1)!;
    expect(got).toMatchObject({ path: "/ok", method: "POST", body: '{"ping":1}', headers: { "content-type": "application/json", authorization: SECRET_TOKEN, host: `127.0.0.1:${target.port}` } });
  });

  it("retries a failing target with exponential backoff and succeeds on the third attempt", async () => {
    const job = await createJob("/fail/2/backoff", { retries: 3, backoff_ms: 100 });
    const run = await runAndWait(job.id);
    expect(run).toMatchObject({ status: "succeeded", attempt: 3, response_status: 200, response_body: "finally" });
    const at = target.hits("/fail/2/backoff").map((r) => r.at);
    expect(at).toHaveLength(3);
    // Equal jitter: the n-th wait is between half and all of backoff × 2^(n-1).
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(50 - 5);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(100 - 5);
  });

  it("fails after the last retry with the target's status and error recorded", async () => {
    const job = await createJob("/status/503", { retries: 1, backoff_ms: 10 });
    const run = await runAndWait(job.id);
    expect(run).toMatchObject({ status: "failed", attempt: 2, response_status: 503, response_body: "status 503", error: "the target answered 503" });
  });

  it("times out a target that hangs, on every attempt", async () => {
    const job = await createJob("/hang", { retries: 1, backoff_ms: 10 }, { timeout_ms: 300 });
    const started = Date.now();
    const run = await runAndWait(job.id);
    expect(run).toMatchObject({ status: "timed_out", attempt: 2, response_status: null, error: "no complete response within 300 ms" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
  });

  it("keeps only the first 4 KB of the response body", async () => {
    const job = await createJob("/big", {}, { method: "GET" });
    const run = await runAndWait(job.id);
    expect(run.response_body).toBe("x".repeat(4096));
  });

  it("follows no redirect to a target that fails the check", async () => {
    const before = target.hits("/ok").length;
    const job = await createJob(`/redirect?to=${encodeURIComponent(`http://localhost:${target.port}/ok`)}`, { retries: 2 }, { method: "GET" });
    const run = await runAndWait(job.id);
    expect(run).toMatchObject({ status: "failed", attempt: 1 });
    expect(run.error).toStartWith("ssrf_blocked: localhost is a loopback name");
    expect(target.hits("/ok").length).toBe(before);
  });

  it("checks the target again at run time", async () => {
    const job = await createJob("/ok");
    // As if DNS had changed since the job was saved: the stored target now points inside.
    await server.ctx.sql`update jobs set payload = jsonb_set(payload, '{url}', '"http://10.0.0.1/"') where id = ${job.id}`;
    const run = await runAndWait(job.id);
    expect(run).toMatchObject({ status: "failed", error: "ssrf_blocked: 10.0.0.1 is private (10.0.0.0/8)" });
  });

  it("answers 409 while a run is in progress and concurrency is forbid", async () => {
    const job = await createJob("/hang", {}, { timeout_ms: 1000 });
    expect((await call("POST", `/admin/api/jobs/${job.id}/run`)).status).toBe(202);
    const second = await call("POST", `/admin/api/jobs/${job.id}/run`);
    expect([second.status, second.body.error.code]).toEqual([409, "run_in_progress"]);
    await waitFor("the hanging run to time out", async () => (await call("GET", `/admin/api/jobs/${job.id}`)).body.last_run.status === "timed_out");
    const allow = await createJob("/ok", { concurrency: "allow" });
    const runs = await Promise.all([1, 2].map(() => call("POST", `/admin/api/jobs/${allow.id}/run`)));
    expect(runs.map((r) => r.status)).toEqual([202, 202]);
  });
});

describe("GET /admin/api/jobs/:id/runs", () => {
  it("pages through the history, newest first", async () => {
    const job = await createJob("/ok", { concurrency: "allow" });
    for (let i = 0; i < 3; i++) await runAndWait(job.id);
    const all = (await call("GET", `/admin/api/jobs/${job.id}/runs`)).body.items;
    expect(all).toHaveLength(3);
    expect(all.map((r: any) => r.scheduled_for)).toEqual([...all.map((r: any) => r.scheduled_for)].sort().reverse());
    const page = await call("GET", `/admin/api/jobs/${job.id}/runs?limit=1&offset=1`);
    expect(page.body).toMatchObject({ limit: 1, offset: 1 });
    expect(page.body.items.map((r: any) => r.id)).toEqual([all[1].id]);
    expect((await call("GET", `/admin/api/jobs/${job.id}/runs?limit=0`)).status).toBe(400);
  });
});

describe("GET /admin/api/jobs/preview", () => {
  it("lists the next five runs in the timezone", async () => {
    const res = await call("GET", `/admin/api/jobs/preview?schedule=${encodeURIComponent("30 9 * * 1-5")}&timezone=Asia/Tokyo`);
    expect(res.status).toBe(200);
    expect(res.body.next_runs).toHaveLength(5);
    for (const at of res.body.next_runs) expect(new Date(at).getUTCHours() * 60 + new Date(at).getUTCMinutes()).toBe(30);
  });

  it("explains what is wrong with an expression", async () => {
    const res = await call("GET", `/admin/api/jobs/preview?schedule=${encodeURIComponent("*/0 * * * *")}`);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_schedule");
    expect(res.body.error.message).toMatch(/^The schedule is not valid: .+/);
    expect((await call("GET", "/admin/api/jobs/preview")).status).toBe(400);
  });

  it("needs an admin", async () => {
    expect((await server.fetch("/admin/api/jobs/preview?schedule=@daily")).status).toBe(401);
  });
});

describe("secrets", () => {
  it("never appear in any response of this file", () => {
    const all = responses.join("\n");
    for (const secret of [SECRET_TOKEN, SECRET_SIGNATURE, WEBHOOK, "hook-token-1a2b3c4d5e6f"]) expect(all).not.toContain(secret);
  });
});

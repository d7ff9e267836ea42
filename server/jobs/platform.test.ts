import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { adminHeaders, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret, waitFor } from "../test/harness";
import { startHttpTarget } from "../test/httpTarget";
import { runJobsCommand } from "./cli";

let server: TestServer;
let auth: Record<string, string>;
const target = startHttpTarget();

beforeAll(async () => {
  server = await startTestServer({ ATLASHUB_DELETED_RETENTION: "1s", ATLASHUB_JOB_ALLOW_HOSTS: "127.0.0.1", ATLASHUB_SCHEDULER: "false" });
  auth = await adminHeaders(server);
});
afterAll(async () => {
  await server.stop();
  target.stop();
});

async function call(method: string, path: string, body?: unknown) {
  const res = await server.fetch(path, body === undefined ? { method, headers: auth } : jsonRequest(method, body, auth));
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function platformJob(task: string) {
  const list = await call("GET", "/admin/api/jobs?limit=1000");
  return list.body.items.find((j: any) => j.name === `platform/${task}`);
}

async function runAndWait(jobId: string) {
  const started = await call("POST", `/admin/api/jobs/${jobId}/run`);
  expect(started.status).toBe(202);
  return waitFor("the run to finish", async () => {
    const run = (await call("GET", `/admin/api/jobs/${jobId}/runs/${started.body.run_id}`)).body;
    return run.status !== "running" && run;
  });
}

describe("platform jobs", () => {
  it("are registered at start-up, visible with their task and description", async () => {
    const purge = await platformJob("purge_deleted_projects");
    expect(purge).toMatchObject({ kind: "platform", task: "purge_deleted_projects", schedule: "* * * * *", enabled: true, project_id: null });
    expect(purge.description).toMatch(/ATLASHUB_DELETED_RETENTION/);
    for (const task of ["clean_expired_sessions", "prune_job_runs"]) expect((await platformJob(task))?.kind).toBe("platform");
  });

  it("purge soft-deleted projects past retention (the reconciler no longer does it on its own)", async () => {
    const project = await createTestProject(server, auth, "retention-job");
    expect((await call("DELETE", `/admin/api/projects/${project.id}`)).status).toBe(200);
    await server.ctx.sql`update projects set deleted_at = now() - interval '2 seconds' where id = ${project.id}`;
    const run = await runAndWait((await platformJob("purge_deleted_projects")).id);
    expect(run).toMatchObject({ status: "succeeded", response_body: '{"purged":1}' });
    expect((await call("GET", `/admin/api/projects/${project.id}`)).body.status).toBe("purged");
  });

  it("clean expired admin sessions", async () => {
    const [admin] = await server.ctx.sql`select id from admin_users limit 1`;
    await server.ctx.sql`insert into admin_sessions (admin_id, token_hash, expires_at) values (${admin!.id}, 'expired-session-hash', now() - interval '1 hour')`;
    const run = await runAndWait((await platformJob("clean_expired_sessions")).id);
    expect(run).toMatchObject({ status: "succeeded", response_body: '{"deleted":1}' });
    expect(await server.ctx.sql`select 1 from admin_sessions where token_hash = 'expired-session-hash'`).toHaveLength(0);
  });

  it("delete API keys dead for more than 30 days, rotated ones after the key that replaced them", async () => {
    const project = await createTestProject(server, auth, "dead-keys");
    const make = async (name: string) => {
      const { id, key } = (await call("POST", `/admin/api/projects/${project.id}/keys`, { name, kind: "secret" })).body;
      registerSecret(key);
      return id as string;
    };
    const [revokedLongAgo, revokedLately, live] = [await make("old"), await make("recent"), await make("live")];
    const rotatedFrom = await make("rotated");
    const rotatedTo = (await call("POST", `/admin/api/projects/${project.id}/keys/${rotatedFrom}/rotate`, { grace_hours: 0 })).body;
    registerSecret(rotatedTo.key);
    await server.ctx.sql`update api_keys set revoked_at = now() - interval '31 days' where id in ${server.ctx.sql([revokedLongAgo, rotatedTo.id])}`;
    await server.ctx.sql`update api_keys set revoked_at = now() - interval '1 day' where id = ${revokedLately}`;
    await server.ctx.sql`update api_keys set expires_at = now() - interval '40 days' where id = ${rotatedFrom}`;
    const left = async () => (await server.ctx.sql<{ id: string }[]>`select id from api_keys where project_id = ${project.id}`).map((r) => r.id).sort();

    const first = await runAndWait((await platformJob("clean_dead_api_keys")).id);
    expect(first).toMatchObject({ status: "succeeded", response_body: '{"deleted":2}' }); // the old one and the rotated-from one
    expect(await left()).toEqual([revokedLately, live, rotatedTo.id].sort());
    const second = await runAndWait((await platformJob("clean_dead_api_keys")).id);
    expect(second).toMatchObject({ response_body: '{"deleted":1}' }); // nothing points at the replacement now
    expect(await left()).toEqual([revokedLately, live].sort());
  });

  it("prune stale rate-limit counters and settle abandoned uploads", async () => {
    await server.ctx.sql`insert into rate_limits (key, window_start, hits) values ('login:stale', now() - interval '2 days', 3), ('login:fresh', now(), 1)`;
    expect(await runAndWait((await platformJob("prune_rate_limits")).id)).toMatchObject({ status: "succeeded", response_body: '{"deleted":1}' });
    expect((await server.ctx.sql`select key from rate_limits where key like 'login:%' order by key`).map((r) => r.key)).toEqual(["login:fresh"]);
    expect(await runAndWait((await platformJob("settle_abandoned_uploads")).id)).toMatchObject({ status: "succeeded", response_body: '{"settled":0}' });
  });

  it("can be rescheduled and disabled, not renamed, re-targeted or deleted", async () => {
    const job = await platformJob("prune_job_runs");
    const patched = await call("PATCH", `/admin/api/jobs/${job.id}`, { schedule: "0 4 * * 0", timezone: "Europe/Paris", enabled: false });
    expect(patched.body).toMatchObject({ schedule: "0 4 * * 0", timezone: "Europe/Paris", enabled: false, next_run_at: null });
    for (const body of [{ name: "mine" }, { http: { url: target.url } }]) {
      const res = await call("PATCH", `/admin/api/jobs/${job.id}`, body);
      expect([res.status, res.body.error.code]).toEqual([422, "unprocessable"]);
    }
    expect((await call("DELETE", `/admin/api/jobs/${job.id}`)).status).toBe(422);
    const taken = await call("POST", "/admin/api/jobs", { name: "platform/mine", schedule: "@daily", kind: "http", http: { method: "GET", url: target.url + "/ok" } });
    expect([taken.status, taken.body.error.code]).toEqual([400, "validation_failed"]);
  });
});

describe("notifications", () => {
  async function jobWithNotify(path: string, on: "failure" | "always", hook: string) {
    const res = await call("POST", "/admin/api/jobs", {
      name: `notify-${hook}`,
      schedule: "@daily",
      kind: "http",
      http: { method: "GET", url: target.url + path },
      notify: { on, webhook_url: `${target.url}/hooks/${hook}` },
    });
    expect(res.status).toBe(201);
    return res.body;
  }

  it("post the failed run to the webhook as JSON", async () => {
    const job = await jobWithNotify("/status/500", "failure", "on-failure");
    await runAndWait(job.id);
    const [hit] = await waitFor("the notification", () => target.hits("/hooks/on-failure").length > 0 && target.hits("/hooks/on-failure"));
    expect(hit!.method).toBe("POST");
    expect(JSON.parse(hit!.body)).toMatchObject({
      event: "job.run.finished",
      text: `AtlasHub job "${job.name}" failed (attempt 1, HTTP 500): the target answered 500`,
      job: { id: job.id, name: job.name, project_id: null },
      run: { status: "failed", attempt: 1, response_status: 500 },
    });
  });

  it("are sent on success only when asked for (on: always)", async () => {
    const quiet = await jobWithNotify("/ok", "failure", "quiet");
    const loud = await jobWithNotify("/ok", "always", "loud");
    await runAndWait(quiet.id);
    await runAndWait(loud.id);
    await server.ctx.jobs.idle();
    expect(target.hits("/hooks/quiet")).toHaveLength(0);
    expect(JSON.parse(target.hits("/hooks/loud")[0]!.body).run.status).toBe("succeeded");
  });
});

describe("ATLASHUB_JOB_NOTIFY_URL", () => {
  it("is told about every run that does not succeed, of any job", async () => {
    const hook = `${target.url}/hooks/global-token-7f6e5d4c3b2a`;
    registerSecret(hook);
    const own = await startTestServer({ ATLASHUB_JOB_NOTIFY_URL: hook, ATLASHUB_JOB_ALLOW_HOSTS: "127.0.0.1", ATLASHUB_SCHEDULER: "false" });
    try {
      const headers = await adminHeaders(own);
      for (const [name, path] of [["global-ok", "/ok"], ["global-fail", "/status/502"]]) {
        const res = await own.fetch("/admin/api/jobs", jsonRequest("POST", { name, schedule: "@daily", kind: "http", http: { method: "GET", url: target.url + path } }, headers));
        const job = (await res.json()) as { id: string };
        await own.fetch(`/admin/api/jobs/${job.id}/run`, { method: "POST", headers });
      }
      await waitFor("both runs", async () => (await own.ctx.sql`select 1 from job_runs where status <> 'running'`).length === 2);
      await own.ctx.jobs.idle();
      const hits = target.hits("/hooks/global-token-7f6e5d4c3b2a").map((h) => JSON.parse(h.body));
      expect(hits.map((h) => [h.job.name, h.run.status])).toEqual([["global-fail", "failed"]]);
    } finally {
      await own.stop();
    }
  });
});

describe("atlashub jobs", () => {
  it("lists jobs, one line each", async () => {
    const { output, exitCode } = await runJobsCommand(server.ctx, "list", []);
    expect(exitCode).toBe(0);
    const line = output.split("\n").find((l) => l.endsWith("platform/purge_deleted_projects"))!;
    expect(line).toMatch(/^[0-9a-f-]{36} {2}on {3}\* \* \* \* \* \(UTC\) +\d{4}-\d\d-\d\dT\S+ +\S+ +platform\/purge_deleted_projects$/);
  });

  it("runs a job by name and waits: exit 0 when it succeeded, 1 when not", async () => {
    for (const [name, path, code] of [["cli-ok", "/ok", 0], ["cli-fail", "/status/418", 1]] as const) {
      await call("POST", "/admin/api/jobs", { name, schedule: "@daily", kind: "http", http: { method: "GET", url: target.url + path } });
      const { output, exitCode } = await runJobsCommand(server.ctx, "run", [name]);
      expect(exitCode).toBe(code);
      expect(JSON.parse(output)).toMatchObject({ trigger: "manual", status: code === 0 ? "succeeded" : "failed" });
    }
    const [entry] = await server.ctx.sql`select actor_type, actor_label from audit_log where action = 'job.run' and actor_type = 'cli' limit 1`;
    expect(entry).toEqual({ actor_type: "cli", actor_label: "atlashub jobs run" });
  });

  it("says so for an unknown job or subcommand", async () => {
    await expect(runJobsCommand(server.ctx, "run", ["no-such-job"])).rejects.toThrow('no job has the id or name "no-such-job"');
    await expect(runJobsCommand(server.ctx, "run", [])).rejects.toThrow("jobs run needs a job id or name");
    await expect(runJobsCommand(server.ctx, "frobnicate", [])).rejects.toThrow(/unknown jobs subcommand/);
  });
});

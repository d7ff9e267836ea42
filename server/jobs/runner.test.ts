import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { adminHeaders, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { waitFor } from "../test/harness";
import { ManualClock } from "../test/clock";
import { startHttpTarget } from "../test/httpTarget";
import { JobRunner } from "./runner";

const MINUTE = 60_000;
let server: TestServer;
let auth: Record<string, string>;
const target = startHttpTarget();
const runners: JobRunner[] = [];

beforeAll(async () => {
  // The server's own scheduler is off: each test drives runners of its own (on a simulated clock) against its control plane.
  server = await startTestServer({ ATLASHUB_JOB_ALLOW_HOSTS: "127.0.0.1", ATLASHUB_SCHEDULER: "false" });
  auth = await adminHeaders(server);
  // Only the jobs each test creates run here (a simulated day would otherwise run the platform jobs too).
  await server.ctx.sql`update jobs set enabled = false where kind = 'platform'`;
});
afterAll(async () => {
  await Promise.all(runners.map((r) => r.stop()));
  await server.stop();
  target.stop();
});

function runner(instanceId: string, options: { heartbeatMs?: number } = {}) {
  const r = new JobRunner(server.ctx, { instanceId, ...options });
  runners.push(r);
  return r;
}

let seq = 0;
async function createJob(path: string, overrides: Record<string, unknown> = {}) {
  const body = { name: `sched-${++seq}`, schedule: "* * * * *", kind: "http", http: { method: "POST", url: target.url + path }, ...overrides };
  const res = await server.fetch("/admin/api/jobs", jsonRequest("POST", body, auth));
  const job = (await res.json()) as any;
  if (res.status !== 201) throw new Error(JSON.stringify(job));
  return job as { id: string };
}

/** A simulated clock starting at the job's scheduled_since, so the control plane and the clock agree on "since". */
async function clockFor(jobId: string) {
  const [row] = await server.ctx.sql<{ since: Date }[]>`select scheduled_since as since from jobs where id = ${jobId}`;
  return new ManualClock(row!.since.getTime());
}

const runsOf = (jobId: string) =>
  server.ctx.sql<{ scheduled_for: Date; status: string; instance_id: string; trigger: string; error: string | null; attempt: number }[]>`
    select scheduled_for, status, instance_id, trigger, error, attempt from job_runs where job_id = ${jobId} order by scheduled_for`;

const settled = (jobId: string) => waitFor("runs to settle", async () => (await server.ctx.sql`select 1 from job_runs where job_id = ${jobId} and status = 'running'`).length === 0);

describe("the scheduler on the control plane", () => {
  it("runs each occurrence exactly once with two instances on one control plane", async () => {
    const job = await createJob("/ok");
    const clock = await clockFor(job.id);
    const a = runner("instance-a");
    const b = runner("instance-b");
    a.startScheduler({ clock });
    b.startScheduler({ clock });
    const m0 = clock.now() - (clock.now() % MINUTE);
    for (let minute = 1; minute <= 60; minute++) {
      await clock.advanceTo(m0 + minute * MINUTE + 1_000);
      await settled(job.id);
    }
    await Promise.all([a.stop(), b.stop()]);
    const runs = await runsOf(job.id);
    expect(runs).toHaveLength(60);
    expect(new Set(runs.map((r) => r.scheduled_for.getTime())).size).toBe(60);
    expect(runs.every((r) => r.status === "succeeded" && r.trigger === "schedule" && r.scheduled_for.getUTCSeconds() === 0)).toBe(true);
    expect(target.hits("/ok")).toHaveLength(60);
  });

  it("claims each occurrence once when both instances race for it (overlapping runs allowed)", async () => {
    const before = target.hits("/fail/0/race").length;
    const job = await createJob("/fail/0/race", { concurrency: "allow" });
    const clock = await clockFor(job.id);
    const a = runner("race-a");
    const b = runner("race-b");
    // Waking only for occurrences (no 10 s re-reads of the job list) keeps a simulated day quick.
    a.startScheduler({ clock, refreshMs: 60 * MINUTE });
    b.startScheduler({ clock, refreshMs: 60 * MINUTE });
    await clock.advance(24 * 60 * MINUTE);
    await settled(job.id);
    await Promise.all([a.stop(), b.stop()]);
    const runs = await runsOf(job.id);
    expect(runs).toHaveLength(1440);
    expect(new Set(runs.map((r) => r.scheduled_for.getTime())).size).toBe(1440);
    expect(runs.filter((r) => r.status !== "succeeded")).toEqual([]);
    expect(target.hits("/fail/0/race").length - before).toBe(1440);
    // Their INSERTs really raced: each instance won some occurrences and lost the others.
    const won = Object.groupBy(runs, (r) => r.instance_id);
    expect(won["race-a"]?.length).toBeGreaterThan(0);
    expect(won["race-b"]?.length).toBeGreaterThan(0);
  }, 60_000);

  for (const [missed, expected] of [
    ["skip", 0],
    ["run_once", 1],
  ] as const) {
    it(`after 10 minutes with no instance up, policy ${missed} runs ${expected} missed occurrence(s)`, async () => {
      const job = await createJob("/ok", { missed });
      const clock = await clockFor(job.id);
      // The minute the job was created in; its occurrences are the whole minutes after it.
      const m0 = clock.now() - (clock.now() % MINUTE);
      const first = runner(`down-${missed}-1`);
      first.startScheduler({ clock });
      await clock.advanceTo(m0 + 3 * MINUTE + 30_000);
      await settled(job.id);
      await first.stop();
      await clock.advanceTo(m0 + 13 * MINUTE + 30_000);
      const second = runner(`down-${missed}-2`);
      second.startScheduler({ clock });
      await clock.advanceTo(m0 + 13 * MINUTE + 31_000);
      await settled(job.id);
      await second.stop();
      const runs = await runsOf(job.id);
      expect(runs.filter((r) => r.instance_id === first.instanceId)).toHaveLength(3);
      const afterRestart = runs.filter((r) => r.instance_id === second.instanceId);
      expect(afterRestart).toHaveLength(1);
      expect(afterRestart[0]).toMatchObject({ status: missed === "skip" ? "skipped" : "succeeded", scheduled_for: new Date(m0 + 13 * MINUTE) });
    });
  }
});

describe("runs of instances that died", () => {
  async function orphanRun(jobId: string, attempt: number) {
    const [run] = await server.ctx.sql<{ id: string }[]>`
      insert into job_runs (job_id, scheduled_for, trigger, status, instance_id, attempt, started_at, heartbeat_at)
      values (${jobId}, now() - interval '1 hour', 'schedule', 'running', 'dead-instance', ${attempt}, now() - interval '1 hour', now() - interval '1 hour')
      returning id`;
    return run!.id;
  }

  it("are taken over and retried while attempts are left", async () => {
    const job = await createJob("/fail/0/takeover", { retries: 1 });
    const runId = await orphanRun(job.id, 1);
    const live = await orphanRun((await createJob("/ok", { retries: 1 })).id, 1);
    await server.ctx.sql`update job_runs set heartbeat_at = now() where id = ${live}`;
    const reaper = runner("reaper-1");
    await reaper.reapStaleRuns();
    const run = await waitFor("the taken-over run", async () => {
      const [r] = await server.ctx.sql`select status, attempt, instance_id, response_status from job_runs where id = ${runId}`;
      return r!.status !== "running" && r;
    });
    expect(run).toEqual({ status: "succeeded", attempt: 2, instance_id: "reaper-1", response_status: 200 });
    // A run that still beats is left alone.
    expect((await server.ctx.sql`select status, instance_id from job_runs where id = ${live}`)[0]).toEqual({ status: "running", instance_id: "dead-instance" });
  });

  it("are marked failed after their timeout when no attempt is left", async () => {
    const job = await createJob("/ok");
    const runId = await orphanRun(job.id, 1);
    await runner("reaper-2").reapStaleRuns();
    const [run] = await server.ctx.sql`select status, error, finished_at, duration_ms from job_runs where id = ${runId}`;
    expect(run).toMatchObject({ status: "failed", error: "the instance running it stopped responding and no attempt was left" });
    expect(run!.duration_ms).toBeGreaterThanOrEqual(3_600_000);
  });
});

describe("a run taken over while its instance was only stalled", () => {
  it("is given up by that instance, which then records nothing", async () => {
    const job = await createJob("/hang", { http: { method: "GET", url: target.url + "/hang", timeout_ms: 60_000 }, notify: { on: "always", webhook_url: target.url + "/hooks/stalled" } });
    const slow = runner("stalled", { heartbeatMs: 50 });
    const [run] = await server.ctx.sql<{ id: string }[]>`
      insert into job_runs (job_id, scheduled_for, trigger, status, instance_id) values (${job.id}, now(), 'manual', 'running', ${slow.instanceId}) returning id`;
    const hangsBefore = target.hits("/hang").length;
    const finished = slow.launch(run!.id);
    await waitFor("the request to arrive", () => target.hits("/hang").length > hangsBefore);
    await server.ctx.sql`update job_runs set instance_id = 'the-new-owner' where id = ${run!.id}`;
    await finished;
    const [row] = await server.ctx.sql`select status, instance_id, finished_at from job_runs where id = ${run!.id}`;
    expect(row).toEqual({ status: "running", instance_id: "the-new-owner", finished_at: null });
    expect(target.hits("/hooks/stalled")).toHaveLength(0);
  });
});

describe("stopping", () => {
  it("interrupts a run in progress and records it as failed", async () => {
    const job = await createJob("/hang", { http: { method: "GET", url: target.url + "/hang", timeout_ms: 60_000 } });
    const r = runner("stopping");
    const [run] = await server.ctx.sql<{ id: string }[]>`
      insert into job_runs (job_id, scheduled_for, trigger, status, instance_id) values (${job.id}, now(), 'manual', 'running', ${r.instanceId}) returning id`;
    r.launch(run!.id);
    await waitFor("the request to arrive", () => target.hits("/hang").length > 0);
    await r.stop();
    const [row] = await server.ctx.sql`select status, error from job_runs where id = ${run!.id}`;
    expect(row).toEqual({ status: "failed", error: "interrupted: the server stopped during the run" });
  });
});

describe("serve", () => {
  it("starts the scheduler: after downtime, a job owed a run (policy run_once) runs at once", async () => {
    const job = await createJob("/ok", { name: "owed", missed: "run_once", http: { method: "GET", url: target.url + "/ok" } });
    // As if every instance had been down for 5 minutes: then one starts on this control plane.
    await server.ctx.sql`update jobs set enabled = (id = ${job.id}), scheduled_since = now() - interval '5 minutes'`;
    const own = await startTestServer({ ATLASHUB_JOB_ALLOW_HOSTS: "127.0.0.1", ATLASHUB_CONTROL_DB: server.ctx.config.controlDb });
    try {
      const runs = await waitFor("the owed run", async () => {
        const rows = await server.ctx.sql`select status, trigger from job_runs where job_id = ${job.id} and status <> 'running'`;
        return rows.length > 0 && rows;
      });
      expect(runs).toEqual([{ status: "succeeded", trigger: "schedule" }]);
    } finally {
      await own.stop();
    }
  });
});

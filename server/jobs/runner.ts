import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import type { AppContext } from "../context";
import type { Sql } from "../platform/db";
import { log } from "../platform/log";
import { Scheduler, type Clock, type ScheduledJob } from "./scheduler";
import { guardedFetch, parseAllowList, SsrfBlockedError, type GuardOptions, type Resolver } from "./ssrf";
import { readSecrets, type HttpPayload, type JobRow, type JobSecrets } from "./service";
import { PLATFORM_TASKS } from "./platform";
import { notify } from "./notify";

const EXCERPT_BYTES = 4096;
const MAX_REDIRECTS = 5;
const MAX_BACKOFF_MS = 10 * 60_000;

export type RunStatus = "succeeded" | "failed" | "timed_out";

export interface Outcome {
  status: RunStatus;
  responseStatus?: number;
  responseBody?: string;
  error?: string;
  /** No further attempt would help (target refused by the guard, server stopping). */
  final?: boolean;
}

export interface JobRunnerOptions {
  /** Names this process in job_runs.instance_id (default: host, pid and a random suffix). */
  instanceId?: string;
  /** How often a running run proves its instance alive; a run silent for 3 beats (or its timeout, if longer) is taken over or failed. */
  heartbeatMs?: number;
  /** The guard's resolver (tests answer names without DNS). */
  resolve?: Resolver;
}

/**
 * Runs jobs for this process: the scheduler (when started), "run now", heartbeats of runs in
 * progress, and the reaper that fails or takes over the runs of instances that died.
 */
export class JobRunner {
  readonly instanceId: string;
  readonly guard: GuardOptions;
  private readonly heartbeatMs: number;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly abort = new AbortController();
  private scheduler: Scheduler<string> | undefined;
  private reaper: ReturnType<typeof setInterval> | undefined;
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly ctx: AppContext,
    options: JobRunnerOptions = {},
  ) {
    this.instanceId = options.instanceId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
    this.heartbeatMs = options.heartbeatMs ?? 5_000;
    this.guard = { allow: parseAllowList(ctx.config.jobAllowHosts), resolve: options.resolve };
  }

  /** For serve: starts the scheduler unless ATLASHUB_SCHEDULER=false. */
  start() {
    if (this.ctx.config.scheduler) this.startScheduler();
  }

  /** Starts claiming and running scheduled occurrences, and reaping the runs of dead instances. */
  startScheduler(options: { clock?: Clock; refreshMs?: number } = {}) {
    const sql = this.ctx.sql;
    this.scheduler = new Scheduler<string>(
      {
        loadJobs: () => loadSchedules(sql),
        claim: (job, at, skipped) => claimOccurrence(sql, job.id, at, this.instanceId, skipped),
        run: (_job, runId, signal) => this.execute(runId, signal),
        isBusy: (job) => hasRunningRun(sql, job.id),
        onError: (err, job) => log.warn("scheduler step failed", { job: job?.id, reason: (err as Error).message }),
      },
      { clock: options.clock, refreshMs: options.refreshMs },
    );
    this.scheduler.start();
    this.reaper = setInterval(() => void this.reapStaleRuns().catch((err) => log.warn("job reaper failed", { reason: (err as Error).message })), this.heartbeatMs);
  }

  /** Makes the scheduler re-read the jobs now (after a create, update or delete here). */
  wake() {
    this.scheduler?.wake();
  }

  /** Runs an already claimed run in the background on this instance ("run now"); the promise settles when it is recorded. */
  launch(runId: string, firstAttempt = 1): Promise<void> {
    const run = this.execute(runId, this.abort.signal, firstAttempt)
      .catch((err) => log.error("job run crashed", { run: runId, reason: (err as Error).message }))
      .finally(() => this.inFlight.delete(run));
    this.inFlight.add(run);
    return run;
  }

  /** Resolves once the runs this instance launched ("run now", takeovers) have finished. */
  async idle() {
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }

  /** Stops scheduling, interrupts runs in progress (recorded as failed) and waits for them. */
  stop() {
    this.stopping ??= (async () => {
      clearInterval(this.reaper);
      this.abort.abort();
      await this.scheduler?.stop();
      await Promise.allSettled([...this.inFlight]);
    })();
    return this.stopping;
  }

  /**
   * Runs whose instance stopped sending heartbeats: taken over by this instance while attempts are
   * left, else marked failed. Row locks let only one instance take over a run.
   */
  async reapStaleRuns() {
    const sql = this.ctx.sql;
    const stale = sql`r.job_id = j.id and r.status = 'running'
      and r.heartbeat_at < now() - make_interval(secs => greatest(j.timeout_ms, ${3 * this.heartbeatMs}) / 1000.0)`;
    const failed = await sql<{ id: string }[]>`
      update job_runs r set status = 'failed', finished_at = now(), duration_ms = ${durationSql(sql)},
        error = 'the instance running it stopped responding and no attempt was left'
      from jobs j where ${stale} and r.attempt >= j.retries + 1 returning r.id`;
    for (const { id } of failed) log.warn("job run failed: its instance stopped responding", { run: id });
    const taken = await sql<{ id: string; attempt: number }[]>`
      update job_runs r set instance_id = ${this.instanceId}, heartbeat_at = now()
      from jobs j where ${stale} and r.attempt < j.retries + 1 returning r.id, r.attempt`;
    for (const run of taken) {
      log.info("job run taken over from a stopped instance", { run: run.id, next_attempt: run.attempt + 1 });
      this.launch(run.id, run.attempt + 1);
    }
  }

  /** Executes a claimed run: attempts with backoff, heartbeats, and the outcome recorded. */
  private async execute(runId: string, stopping: AbortSignal, firstAttempt = 1) {
    const sql = this.ctx.sql;
    const [job] = await sql<JobRow[]>`select j.* from jobs j join job_runs r on r.job_id = j.id where r.id = ${runId}`;
    if (!job) return;
    // Another instance takes a run over when its heartbeats stop arriving (this process stalled): the
    // heartbeat then finds the run no longer ours, and the request in flight is given up.
    const lost = new AbortController();
    const signal = AbortSignal.any([stopping, lost.signal]);
    const ours = async () =>
      (await sql`update job_runs set heartbeat_at = now() where id = ${runId} and status = 'running' and instance_id = ${this.instanceId} returning 1`).length > 0;
    const beat = setInterval(() => void ours().then((yes) => yes || lost.abort(), () => {}), this.heartbeatMs);
    let outcome: Outcome;
    let attempt = firstAttempt;
    try {
      for (; ; attempt++) {
        const [mine] = await sql`
          update job_runs set attempt = ${attempt}, heartbeat_at = now() where id = ${runId} and status = 'running' and instance_id = ${this.instanceId} returning 1`;
        if (!mine) return;
        outcome = await this.attempt(job, signal);
        if (lost.signal.aborted) return;
        if (outcome.status === "succeeded" || outcome.final || attempt >= job.retries + 1) break;
        await sleep(backoffDelay(job.backoff_ms, attempt), signal);
        if (signal.aborted) {
          outcome = interrupted();
          break;
        }
      }
    } finally {
      clearInterval(beat);
    }
    if (lost.signal.aborted) return;
    await sql`
      update job_runs set status = ${outcome.status}, attempt = ${attempt}, finished_at = now(), duration_ms = ${durationSql(sql)},
        response_status = ${outcome.responseStatus ?? null}, response_body = ${outcome.responseBody ?? null}, error = ${outcome.error ?? null}
      where id = ${runId} and status = 'running' and instance_id = ${this.instanceId}`;
    log.info("job run finished", { job: job.id, run: runId, status: outcome.status, attempt, response_status: outcome.responseStatus });
    if (job.notify && (job.notify.on === "always" || outcome.status !== "succeeded")) {
      const url = readSecrets(this.ctx.masterKey, job).notify_url;
      if (url) await notify(url, { job, runId, attempt, ...outcome }, this.guard, signal);
    }
    const everyFailure = this.ctx.config.jobNotifyUrl;
    if (everyFailure && outcome.status !== "succeeded") await notify(everyFailure, { job, runId, attempt, ...outcome }, this.guard, signal);
  }

  private async attempt(job: JobRow, signal: AbortSignal): Promise<Outcome> {
    if (job.kind === "http") return httpAttempt(job.payload as HttpPayload, readSecrets(this.ctx.masterKey, job), job.timeout_ms, signal, this.guard);
    const task = PLATFORM_TASKS[(job.payload as { task: string }).task];
    if (!task) return { status: "failed", error: "this version of AtlasHub has no such platform task", final: true };
    // Platform tasks are the server's own database work: they run to the end (their heartbeat keeps them
    // alive), as cutting a purge short only leaves it for the reconciler.
    try {
      return { status: "succeeded", responseBody: JSON.stringify(await task.run(this.ctx, signal)) };
    } catch (err) {
      return { status: "failed", error: (err as Error).message.slice(0, 500) };
    }
  }
}

/** One HTTP request through the SSRF guard; success is a 2xx. The first 4 KB of the body are kept. */
export async function httpAttempt(payload: HttpPayload, secrets: JobSecrets, timeoutMs: number, runSignal: AbortSignal, guard: GuardOptions): Promise<Outcome> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = AbortSignal.any([runSignal, timeout]);
  try {
    const { response } = await guardedFetch(
      payload.url,
      {
        method: payload.method,
        headers: { ...payload.headers, ...secrets.headers },
        body: payload.body ?? undefined,
        signal,
        maxRedirects: MAX_REDIRECTS,
        sensitiveHeaders: Object.keys(secrets.headers),
      },
      guard,
    );
    const excerpt = await readExcerpt(response, EXCERPT_BYTES);
    const ok = response.status >= 200 && response.status <= 299;
    return { status: ok ? "succeeded" : "failed", responseStatus: response.status, responseBody: excerpt, error: ok ? undefined : `the target answered ${response.status}` };
  } catch (err) {
    if (err instanceof SsrfBlockedError) return { status: "failed", error: `ssrf_blocked: ${err.reason}`, final: true };
    if (runSignal.aborted) return interrupted();
    if (timeout.aborted) return { status: "timed_out", error: `no complete response within ${timeoutMs} ms` };
    const code = (err as { code?: string }).code;
    return { status: "failed", error: (code ? `${code}: ` : "") + (err as Error).message.slice(0, 500) };
  }
}

function interrupted(): Outcome {
  return { status: "failed", error: "interrupted: the server stopped during the run", final: true };
}

/** Exponential, with equal jitter: half of the delay fixed, half random, so retries of many jobs spread out. */
export function backoffDelay(baseMs: number, attempt: number) {
  const delay = Math.min(baseMs * 2 ** (attempt - 1), MAX_BACKOFF_MS);
  return delay / 2 + Math.random() * (delay / 2);
}

async function readExcerpt(response: Response, max: number) {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < max) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const bytes = Buffer.concat(chunks).subarray(0, max);
  // Postgres text cannot hold NUL.
  return new TextDecoder("utf-8").decode(bytes).replaceAll("\u0000", "\uFFFD");
}

function sleep(ms: number, signal: AbortSignal) {
  return new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

const durationSql = (sql: Sql) => sql`(extract(epoch from now() - started_at) * 1000)::int`;

// ---- control-plane side of the scheduler ------------------------------------------------------

/** Enabled jobs of live projects (and platform jobs), each with the last occurrence already handled. */
export function loadSchedules(sql: Sql) {
  return sql<ScheduledJob[]>`
    select j.id, j.schedule, j.timezone, j.missed, j.concurrency,
      greatest(j.scheduled_since, (select max(r.scheduled_for) from job_runs r where r.job_id = j.id and r.trigger = 'schedule')) as since
    from jobs j left join projects p on p.id = j.project_id
    where j.enabled and (j.project_id is null or p.status not in ('deleting', 'deleted', 'purging', 'purged'))`;
}

/**
 * The claim: one INSERT … ON CONFLICT DO NOTHING on (job_id, scheduled_for). Only the instance whose
 * insert lands gets the run id back; a job disabled or deleted meanwhile is not claimed at all.
 */
export async function claimOccurrence(sql: Sql, jobId: string, scheduledFor: Date, instanceId: string, skipped?: string) {
  const status = skipped ? "skipped" : "running";
  const [run] = await sql<{ id: string }[]>`
    insert into job_runs (job_id, scheduled_for, trigger, status, instance_id, finished_at, duration_ms, error)
    select id, ${scheduledFor}, 'schedule', ${status}, ${instanceId},
      case when ${status} = 'skipped' then now() end, case when ${status} = 'skipped' then 0 end, ${skipped ?? null}
    from jobs where id = ${jobId} and enabled
    on conflict (job_id, scheduled_for) do nothing
    returning id`;
  return run?.id;
}

async function hasRunningRun(sql: Sql, jobId: string) {
  const [row] = await sql`select 1 from job_runs where job_id = ${jobId} and status = 'running' limit 1`;
  return row !== undefined;
}

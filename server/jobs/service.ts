import postgres from "postgres";
import { z } from "zod";
import type { AppContext } from "../context";
import type { Db, Sql } from "../platform/db";
import { decryptSecret, encryptSecret } from "../platform/crypto";
import { errors } from "../http/errors";
import { pageSchema, safeText } from "../http/schemas";
import { nextRuns, parseSchedule, ScheduleError } from "./scheduler";
import { checkTarget, SsrfBlockedError } from "./ssrf";
import { PLATFORM_PREFIX, PLATFORM_TASKS } from "./platform";

// ---- input ----------------------------------------------------------------------------------

// Set by AtlasHub or the HTTP client itself; a job that sends them would break the pinned connection.
const RESERVED_HEADERS = new Set(["host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "proxy-connection"]);
// Header names whose values are credentials: kept encrypted and shown masked, as if given in secret_headers.
const SECRET_HEADER = /authorization|cookie|token|secret|passw|api[-_]?key|signature|credential|session/i;
export const MASK = "********";

const headerName = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$/, "must be a valid HTTP header name")
  .refine((n) => !RESERVED_HEADERS.has(n.toLowerCase()), "is set by AtlasHub and cannot be given");
const headerValue = z
  .string()
  .max(8192)
  .refine((v) => !/[\r\n\u0000]/.test(v), "must not contain line breaks or NUL");
const headerMap = <V extends z.ZodType>(value: V) =>
  z.record(headerName, value).refine((h) => Object.keys(h).length <= 50, "at most 50 headers");

const targetUrl = z
  .string()
  .max(2048)
  .superRefine((v, ctx) => {
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      return void ctx.addIssue({ code: "custom", message: "must be an absolute http:// or https:// URL" });
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") ctx.addIssue({ code: "custom", message: "must be an http:// or https:// URL" });
    if (url.username || url.password) ctx.addIssue({ code: "custom", message: "must not carry credentials; send them in a secret header" });
  });

const method = z.enum(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]);
const timeoutMs = z.number().int().min(100).max(60_000);
const body = z.string().max(65_536);
const notifySchema = z.object({ on: z.enum(["failure", "always"]).default("failure"), webhook_url: targetUrl });
const schedule = z.string().trim().min(1).max(200);
const timezone = z.string().trim().min(1).max(64);
const retries = z.number().int().min(0).max(10);
const backoffMs = z.number().int().min(10).max(3_600_000);
const missed = z.enum(["skip", "run_once"]);
const concurrency = z.enum(["forbid", "allow"]);

const noBodyOnGet = (h: { method?: string; body?: string | null }) => !(h.body && (h.method === "GET" || h.method === "HEAD"));
const noBodyOnGetMessage = { message: "a GET or HEAD request cannot have a body", path: ["body"] };

const jobName = safeText(100).refine((n) => !n.startsWith(PLATFORM_PREFIX), `names starting with ${PLATFORM_PREFIX} are kept for platform jobs`);

export const createJobSchema = z.object({
  name: jobName,
  schedule,
  timezone: timezone.default("UTC"),
  project_id: z.string().optional(),
  enabled: z.boolean().default(true),
  kind: z.literal("http"),
  http: z
    .object({
      method,
      url: targetUrl,
      headers: headerMap(headerValue).optional(),
      secret_headers: headerMap(headerValue).optional(),
      body: body.optional(),
      timeout_ms: timeoutMs.default(10_000),
    })
    .refine(noBodyOnGet, noBodyOnGetMessage),
  retries: retries.default(0),
  backoff_ms: backoffMs.default(1000),
  missed: missed.default("skip"),
  concurrency: concurrency.default("forbid"),
  notify: notifySchema.nullable().optional(),
});

export const updateJobSchema = z
  .object({
    name: jobName.optional(),
    schedule: schedule.optional(),
    timezone: timezone.optional(),
    enabled: z.boolean().optional(),
    http: z
      .object({
        method: method.optional(),
        url: targetUrl.optional(),
        // Merged into the job's headers: a name given with null is removed, names left out are kept.
        headers: headerMap(headerValue.nullable()).optional(),
        secret_headers: headerMap(headerValue.nullable()).optional(),
        body: body.nullable().optional(),
        timeout_ms: timeoutMs.optional(),
      })
      .optional(),
    retries: retries.optional(),
    backoff_ms: backoffMs.optional(),
    missed: missed.optional(),
    concurrency: concurrency.optional(),
    notify: notifySchema.nullable().optional(),
  })
  .refine((v) => Object.values(v).some((x) => x !== undefined), "give at least one field to change");

export const listJobsQuery = pageSchema.extend({ project_id: z.string().optional() });
export const previewQuery = z.object({ schedule: z.string().max(200), timezone: z.string().max(64).default("UTC") });

export type CreateJobInput = z.infer<typeof createJobSchema>;
export type UpdateJobInput = z.infer<typeof updateJobSchema>;

// ---- rows -----------------------------------------------------------------------------------

export interface HttpPayload {
  method: string;
  url: string;
  /** The headers that are not secret; the secret ones are in `secrets`, named here. */
  headers: Record<string, string>;
  secret_headers: string[];
  body: string | null;
}

export interface JobSecrets {
  headers: Record<string, string>;
  notify_url?: string;
}

export interface JobRow {
  id: string;
  project_id: string | null;
  name: string;
  kind: "http" | "platform";
  schedule: string;
  timezone: string;
  enabled: boolean;
  payload: HttpPayload | { task: string };
  secrets: string | null;
  missed: "skip" | "run_once";
  concurrency: "forbid" | "allow";
  timeout_ms: number;
  retries: number;
  backoff_ms: number;
  notify: { on: "failure" | "always" } | null;
  scheduled_since: Date;
  created_at: Date;
  updated_at: Date;
}

const JOB_COLUMNS = ["id", "project_id", "name", "kind", "schedule", "timezone", "enabled", "payload", "secrets", "missed", "concurrency", "timeout_ms", "retries", "backoff_ms", "notify", "scheduled_since", "created_at", "updated_at"];
const RUN_COLUMNS = ["id", "job_id", "scheduled_for", "trigger", "status", "attempt", "instance_id", "started_at", "finished_at", "duration_ms", "response_status", "response_body", "error"];

type LastRun = { id: string; status: string; scheduled_for: Date; finished_at: Date | null } | null;

export function readSecrets(masterKey: Buffer, job: Pick<JobRow, "secrets">): JobSecrets {
  return job.secrets ? (JSON.parse(decryptSecret(masterKey, job.secrets)) as JobSecrets) : { headers: {} };
}

function sealSecrets(masterKey: Buffer, secrets: JobSecrets): string | null {
  return Object.keys(secrets.headers).length || secrets.notify_url ? encryptSecret(masterKey, JSON.stringify(secrets)) : null;
}

/** The public view of a job: secret header values and the notification URL masked, the next run computed. */
export function presentJob(job: JobRow, lastRun: LastRun) {
  const http =
    job.kind === "http"
      ? (() => {
          const p = job.payload as HttpPayload;
          const headers = { ...p.headers, ...Object.fromEntries(p.secret_headers.map((n) => [n, MASK])) };
          return { method: p.method, url: p.url, headers, secret_headers: p.secret_headers, body: p.body, timeout_ms: job.timeout_ms };
        })()
      : undefined;
  return {
    id: job.id,
    name: job.name,
    project_id: job.project_id,
    kind: job.kind,
    schedule: job.schedule,
    timezone: job.timezone,
    enabled: job.enabled,
    ...(http ? { http } : platformFields(job)),
    retries: job.retries,
    backoff_ms: job.backoff_ms,
    missed: job.missed,
    concurrency: job.concurrency,
    notify: job.notify && { on: job.notify.on, webhook_url: MASK },
    next_run_at: job.enabled ? (nextRuns(job.schedule, job.timezone, 1)[0] ?? null) : null,
    last_run: lastRun,
    created_at: job.created_at,
    updated_at: job.updated_at,
  };
}

function platformFields(job: JobRow) {
  const task = (job.payload as { task: string }).task;
  return { task, description: PLATFORM_TASKS[task]?.description ?? null };
}

// ---- checks ---------------------------------------------------------------------------------

export function assertSchedule(expression: string, tz: string) {
  try {
    parseSchedule(expression, tz);
  } catch (err) {
    if (err instanceof ScheduleError) throw errors.invalidSchedule(err.message);
    throw err;
  }
}

/** The next five runs of an expression, or 400 invalid_schedule saying what is wrong with it. */
export function previewSchedule(expression: string, tz: string) {
  assertSchedule(expression, tz);
  return nextRuns(expression, tz, 5);
}

/** Create and update refuse an unsafe target with 400 ssrf_blocked; the runner checks again at run time (DNS may change). */
async function assertSafeTargets(ctx: AppContext, urls: (string | undefined)[]) {
  for (const url of urls) {
    if (url === undefined) continue;
    await checkTarget(url, ctx.jobs.guard).catch((err) => {
      throw err instanceof SsrfBlockedError ? errors.ssrfBlocked(err.reason) : err;
    });
  }
}

async function assertProject(sql: Sql, projectId: string) {
  const [p] = /^[a-z0-9]{10}$/.test(projectId) ? await sql`select 1 from projects where id = ${projectId} and status not in ('deleting', 'deleted', 'purging', 'purged')` : [];
  if (!p) throw errors.unprocessable("project_id names no project (or a deleted one).");
}

function rethrowNameConflict(err: unknown): never {
  if (err instanceof postgres.PostgresError && err.code === "23505") throw errors.conflict("A job with this name already exists here; choose another name.");
  throw err;
}

/** Lower-cases names and sorts each header into the plain or the secret set. */
function applyHeaders(plain: Record<string, string>, secret: Record<string, string>, given: Record<string, string | null> | undefined, forceSecret: boolean) {
  for (const [rawName, value] of Object.entries(given ?? {})) {
    const name = rawName.toLowerCase();
    delete plain[name];
    delete secret[name];
    if (value === null) continue;
    if (forceSecret || SECRET_HEADER.test(name)) secret[name] = value;
    else plain[name] = value;
  }
}

// ---- jobs -----------------------------------------------------------------------------------

const isUuid = (id: string) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id);

async function lastRunOf(sql: Db, jobId: string): Promise<LastRun> {
  const [run] = await sql<NonNullable<LastRun>[]>`
    select id, status, scheduled_for, finished_at from job_runs where job_id = ${jobId} order by scheduled_for desc limit 1`;
  return run ?? null;
}

export async function getJobRow(sql: Db, id: string, lock = false): Promise<JobRow> {
  const [job] = isUuid(id) ? await sql<JobRow[]>`select ${sql(JOB_COLUMNS)} from jobs where id = ${id} ${lock ? sql`for update` : sql``}` : [];
  if (!job) throw errors.notFound("job");
  return job;
}

export async function getJob(ctx: AppContext, id: string) {
  const job = await getJobRow(ctx.sql, id);
  return presentJob(job, await lastRunOf(ctx.sql, id));
}

export async function createJob(ctx: AppContext, input: CreateJobInput, record: (db: Db, job: JobRow) => Promise<unknown>) {
  assertSchedule(input.schedule, input.timezone);
  if (input.project_id !== undefined) await assertProject(ctx.sql, input.project_id);
  await assertSafeTargets(ctx, [input.http.url, input.notify?.webhook_url]);
  const plain: Record<string, string> = {};
  const secret: Record<string, string> = {};
  applyHeaders(plain, secret, input.http.headers, false);
  applyHeaders(plain, secret, input.http.secret_headers, true);
  const payload: HttpPayload = { method: input.http.method, url: input.http.url, headers: plain, secret_headers: Object.keys(secret).sort(), body: input.http.body ?? null };
  const secrets = sealSecrets(ctx.masterKey, { headers: secret, notify_url: input.notify?.webhook_url });
  const job = await ctx.sql
    .begin(async (tx) => {
      const [row] = await tx<JobRow[]>`
        insert into jobs (project_id, name, kind, schedule, timezone, enabled, payload, secrets, missed, concurrency, timeout_ms, retries, backoff_ms, notify)
        values (${input.project_id ?? null}, ${input.name}, 'http', ${input.schedule}, ${input.timezone}, ${input.enabled},
                ${tx.json(payload as unknown as postgres.JSONValue)}, ${secrets}, ${input.missed}, ${input.concurrency}, ${input.http.timeout_ms},
                ${input.retries}, ${input.backoff_ms}, ${input.notify ? tx.json({ on: input.notify.on }) : null})
        returning ${tx(JOB_COLUMNS)}`;
      await record(tx, row!);
      return row!;
    })
    .catch(rethrowNameConflict);
  ctx.jobs.wake();
  return presentJob(job, null);
}

export async function updateJob(ctx: AppContext, id: string, input: UpdateJobInput, record: (db: Db, job: JobRow) => Promise<unknown>) {
  const job = await ctx.sql
    .begin(async (tx) => {
      const current = await getJobRow(tx, id, true);
      const nextSchedule = input.schedule ?? current.schedule;
      const nextTimezone = input.timezone ?? current.timezone;
      assertSchedule(nextSchedule, nextTimezone);
      if (current.kind === "platform" && (input.http || input.name)) throw errors.unprocessable("A platform job's task and name are fixed; change its schedule, enabled, retries, missed, concurrency or notify.");
      const secrets = readSecrets(ctx.masterKey, current);
      let payload = current.payload;
      if (current.kind === "http") {
        const p = current.payload as HttpPayload;
        const plain = { ...p.headers };
        applyHeaders(plain, secrets.headers, input.http?.headers, false);
        applyHeaders(plain, secrets.headers, input.http?.secret_headers, true);
        const next: HttpPayload = {
          method: input.http?.method ?? p.method,
          url: input.http?.url ?? p.url,
          headers: plain,
          secret_headers: Object.keys(secrets.headers).sort(),
          body: input.http?.body === undefined ? p.body : input.http.body,
        };
        if (!noBodyOnGet(next)) throw errors.unprocessable("A GET or HEAD request cannot have a body.");
        payload = next;
      }
      if (input.notify !== undefined) secrets.notify_url = input.notify?.webhook_url;
      await assertSafeTargets(ctx, [input.http?.url, input.notify?.webhook_url]);
      // A new schedule (or re-enabling) starts from now: no run is owed for the time before.
      const restart = nextSchedule !== current.schedule || nextTimezone !== current.timezone || (input.enabled === true && !current.enabled);
      const given = <K extends keyof UpdateJobInput>(key: K, column: string) => (input[key] === undefined ? tx(column) : input[key]!);
      const [row] = await tx<JobRow[]>`
        update jobs set
          name = ${given("name", "name")}, schedule = ${nextSchedule}, timezone = ${nextTimezone}, enabled = ${given("enabled", "enabled")},
          payload = ${tx.json(payload as unknown as postgres.JSONValue)}, secrets = ${sealSecrets(ctx.masterKey, secrets)},
          timeout_ms = ${input.http?.timeout_ms ?? tx("timeout_ms")}, retries = ${given("retries", "retries")}, backoff_ms = ${given("backoff_ms", "backoff_ms")},
          missed = ${given("missed", "missed")}, concurrency = ${given("concurrency", "concurrency")},
          notify = ${input.notify === undefined ? tx("notify") : input.notify === null ? null : tx.json({ on: input.notify.on })},
          scheduled_since = ${restart ? tx`now()` : tx("scheduled_since")}, updated_at = now()
        where id = ${id} returning ${tx(JOB_COLUMNS)}`;
      await record(tx, row!);
      return row!;
    })
    .catch(rethrowNameConflict);
  ctx.jobs.wake();
  return presentJob(job, await lastRunOf(ctx.sql, id));
}

export async function deleteJob(ctx: AppContext, id: string, record: (db: Db, job: JobRow) => Promise<unknown>) {
  await ctx.sql.begin(async (tx) => {
    const job = await getJobRow(tx, id, true);
    if (job.kind === "platform") throw errors.unprocessable("Platform jobs cannot be deleted (they come back at the next start); disable it instead.");
    await tx`delete from jobs where id = ${id}`;
    await record(tx, job);
  });
  ctx.jobs.wake();
}

export async function listJobs(ctx: AppContext, q: z.infer<typeof listJobsQuery>) {
  const sql = ctx.sql;
  type Row = JobRow & { last_run_id: string | null; last_run_status: string; last_run_scheduled_for: Date; last_run_finished_at: Date | null };
  const rows = await sql<Row[]>`
    select ${sql(JOB_COLUMNS.map((c) => `j.${c}`))}, r.id as last_run_id, r.status as last_run_status,
      r.scheduled_for as last_run_scheduled_for, r.finished_at as last_run_finished_at
    from jobs j
    left join lateral (select id, status, scheduled_for, finished_at from job_runs
                       where job_id = j.id order by scheduled_for desc limit 1) r on true
    where ${q.project_id === undefined ? sql`true` : sql`j.project_id = ${q.project_id}`}
    order by j.created_at desc, j.id limit ${q.limit} offset ${q.offset}`;
  return rows.map((r) =>
    presentJob(r, r.last_run_id ? { id: r.last_run_id, status: r.last_run_status, scheduled_for: r.last_run_scheduled_for, finished_at: r.last_run_finished_at } : null),
  );
}

// ---- runs -----------------------------------------------------------------------------------

export async function listRuns(ctx: AppContext, jobId: string, page: z.infer<typeof pageSchema>) {
  await getJobRow(ctx.sql, jobId);
  return ctx.sql`
    select ${ctx.sql(RUN_COLUMNS)} from job_runs where job_id = ${jobId}
    order by scheduled_for desc limit ${page.limit} offset ${page.offset}`;
}

export async function getRun(ctx: AppContext, jobId: string, runId: string) {
  const [run] = isUuid(jobId) && isUuid(runId) ? await ctx.sql`select ${ctx.sql(RUN_COLUMNS)} from job_runs where id = ${runId} and job_id = ${jobId}` : [];
  if (!run) throw errors.notFound("run");
  return run;
}

/**
 * Starts a run on this instance now, whatever the schedule; 409 while one is running and overlap is
 * forbidden. `finished` settles once the run's outcome is recorded.
 */
export async function runJobNow(ctx: AppContext, id: string, record: (db: Db, job: JobRow) => Promise<unknown>) {
  const runId = await ctx.sql.begin(async (tx) => {
    // The row lock makes the busy check and the insert one step for concurrent "run now" calls.
    const job = await getJobRow(tx, id, true);
    if (job.concurrency === "forbid") {
      const [busy] = await tx`select 1 from job_runs where job_id = ${id} and status = 'running' limit 1`;
      if (busy) throw errors.runInProgress();
    }
    const [run] = await tx<{ id: string }[]>`
      insert into job_runs (job_id, scheduled_for, trigger, status, instance_id)
      values (${id}, clock_timestamp(), 'manual', 'running', ${ctx.jobs.instanceId}) returning id`;
    await record(tx, job);
    return run!.id;
  });
  return { runId, finished: ctx.jobs.launch(runId) };
}

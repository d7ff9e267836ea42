// Scheduler core: cron parsing and next-run computation (croner, timezone-aware), one timer, and the
// missed-run and concurrency policies. No imports from the app: the app injects how jobs are loaded,
// how an occurrence is claimed (exactly once across instances) and how a claimed run is executed.
import { Cron } from "croner";

export interface Clock {
  now(): number;
  setTimeout(fn: () => unknown, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export type MissedPolicy = "skip" | "run_once";
export type Concurrency = "forbid" | "allow";

export interface ScheduledJob {
  id: string;
  schedule: string;
  timezone: string;
  missed: MissedPolicy;
  concurrency: Concurrency;
  /**
   * No occurrence at or before this is owed: the last one any instance claimed, or when the schedule
   * last changed. Without it, the job is scheduled from the moment this scheduler first sees it.
   */
  since?: Date;
}

export interface SchedulerHooks<C> {
  /** The enabled jobs, read at every wake-up so changes made by other instances are picked up. */
  loadJobs(): Promise<ScheduledJob[]>;
  /**
   * Claims one occurrence for this instance; only the first caller across all instances gets a claim.
   * With `skipped`, the occurrence is recorded as skipped for that reason and not run.
   */
  claim(job: ScheduledJob, scheduledFor: Date, skipped?: string): Promise<C | undefined>;
  /** Runs a claimed occurrence; the signal aborts when the scheduler stops. */
  run(job: ScheduledJob, claim: C, signal: AbortSignal): Promise<unknown>;
  /** Whether a run of this job is in progress on any instance (for `forbid`); this instance's own runs are known already. */
  isBusy?(job: ScheduledJob): Promise<boolean>;
  onError?(err: unknown, job?: ScheduledJob): void;
}

export interface SchedulerOptions {
  clock?: Clock;
  /** Longest sleep between reads of the job list. */
  refreshMs?: number;
  /** An occurrence found later than this after its time counts as missed (the process was down or stalled). */
  lateToleranceMs?: number;
}

export class ScheduleError extends Error {}

/** Parses a five-field cron expression (or a nickname such as @hourly) in an IANA timezone; throws ScheduleError. */
export function parseSchedule(schedule: string, timezone: string): Cron {
  try {
    new Intl.DateTimeFormat("en", { timeZone: timezone });
  } catch {
    throw new ScheduleError(`unknown timezone ${JSON.stringify(timezone)}; use an IANA name such as Europe/Berlin or UTC`);
  }
  let cron: Cron;
  try {
    cron = new Cron(schedule, { timezone, mode: "5-part" });
  } catch (err) {
    throw new ScheduleError((err as Error).message.replace(/^CronPattern: /, ""));
  }
  if (!cron.nextRun()) throw new ScheduleError(`${JSON.stringify(schedule)} never runs`);
  return cron;
}

/** The next `count` occurrences strictly after `from`. */
export function nextRuns(schedule: string, timezone: string, count: number, from = new Date()): Date[] {
  return parseSchedule(schedule, timezone).nextRuns(count, from);
}

interface JobState {
  key: string;
  cron: Cron;
  /** The last occurrence handled (run, skipped, or owed by nobody). */
  cursor: number;
  /** The first occurrence after the cursor, or undefined when there is none. */
  next: number | undefined;
}

export class Scheduler<C> {
  private readonly clock: Clock;
  private readonly refreshMs: number;
  private readonly lateToleranceMs: number;
  private readonly states = new Map<string, JobState>();
  private readonly inFlight = new Map<string, Set<Promise<unknown>>>();
  private readonly abort = new AbortController();
  private timer: unknown;
  private ticking: Promise<void> | undefined;
  /** A wake-up came while a tick was running: tick again right after it. */
  private again = false;
  private stopped = true;

  constructor(
    private readonly hooks: SchedulerHooks<C>,
    options: SchedulerOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.refreshMs = options.refreshMs ?? 10_000;
    this.lateToleranceMs = options.lateToleranceMs ?? 15_000;
  }

  start() {
    this.stopped = false;
    this.arm(0);
  }

  /** Re-reads the jobs now (after a local create or update) instead of at the next wake-up. */
  wake() {
    if (!this.stopped) this.arm(0);
  }

  /** Stops the timer, aborts the runs in progress and waits for them to finish. */
  async stop() {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
    this.abort.abort();
    await this.ticking;
    await Promise.allSettled([...this.inFlight.values()].flatMap((runs) => [...runs]));
  }

  /** How many runs of a job this instance has in progress. */
  runningCount(jobId: string) {
    return this.inFlight.get(jobId)?.size ?? 0;
  }

  private arm(delayMs: number) {
    this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => this.wakeUp(), Math.max(0, delayMs));
  }

  // Returns the tick's promise so that a simulated clock can wait for it before moving on.
  private wakeUp() {
    if (this.ticking) {
      this.again = true;
      return this.ticking;
    }
    this.ticking = this.tick()
      .catch((err) => this.hooks.onError?.(err))
      .finally(() => {
        this.ticking = undefined;
        if (!this.stopped) this.arm(this.again ? 0 : this.delayToNext());
        this.again = false;
      });
    return this.ticking;
  }

  private delayToNext() {
    const now = this.clock.now();
    let delay = this.refreshMs;
    for (const state of this.states.values()) if (state.next !== undefined) delay = Math.min(delay, state.next - now);
    return delay;
  }

  private async tick() {
    const jobs = await this.hooks.loadJobs();
    if (this.stopped) return;
    const seen = new Set<string>();
    for (const job of jobs) {
      seen.add(job.id);
      try {
        await this.handle(job);
      } catch (err) {
        this.hooks.onError?.(err, job);
      }
      if (this.stopped) return;
    }
    for (const id of this.states.keys()) if (!seen.has(id)) this.states.delete(id);
  }

  private stateOf(job: ScheduledJob): JobState {
    const key = `${job.schedule}\u0000${job.timezone}`;
    const since = job.since?.getTime() ?? this.clock.now();
    let state = this.states.get(job.id);
    if (!state || state.key !== key) {
      const cron = parseSchedule(job.schedule, job.timezone);
      state = { key, cron, cursor: since, next: undefined };
      this.setCursor(state, since);
      this.states.set(job.id, state);
    } else if (since > state.cursor) {
      this.setCursor(state, since);
    }
    return state;
  }

  private setCursor(state: JobState, cursor: number) {
    state.cursor = cursor;
    state.next = state.cron.nextRun(new Date(cursor))?.getTime();
  }

  private async handle(job: ScheduledJob) {
    const state = this.stateOf(job);
    const now = this.clock.now();
    if (state.next === undefined || state.next > now) return;
    // The latest occurrence due; any before it were missed (no instance was up, or this one stalled).
    const latest = state.cron.previousRuns(1, new Date(now + 1))[0]?.getTime() ?? state.next;
    const missedEarlier = state.next < latest;
    const late = now - latest > this.lateToleranceMs;
    this.setCursor(state, latest);

    let skipped: string | undefined;
    if (late && job.missed === "skip") skipped = missedEarlier ? "missed: occurrences passed while no instance was running (policy skip)" : "missed: no instance was running at the time (policy skip)";
    else if (job.concurrency === "forbid" && (this.runningCount(job.id) > 0 || (await this.hooks.isBusy?.(job)))) skipped = "the previous run was still in progress (concurrency forbid)";

    const claim = await this.hooks.claim(job, new Date(latest), skipped);
    if (claim === undefined || skipped) return;
    this.launch(job, claim);
  }

  private launch(job: ScheduledJob, claim: C) {
    const runs = this.inFlight.get(job.id) ?? new Set();
    this.inFlight.set(job.id, runs);
    const run: Promise<unknown> = Promise.resolve()
      .then(() => this.hooks.run(job, claim, this.abort.signal))
      .catch((err) => this.hooks.onError?.(err, job))
      .finally(() => {
        runs.delete(run);
        if (runs.size === 0) this.inFlight.delete(job.id);
      });
    runs.add(run);
  }
}

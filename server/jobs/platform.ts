// Platform jobs: the server's own housekeeping, run by the same scheduler as HTTP jobs so that they
// show in the job list and history and can be disabled or rescheduled. Another domain adds its task
// here; registerPlatformJobs creates the missing ones at start-up with their default schedule.
import type { AppContext } from "../context";
import type { Sql } from "../platform/db";
import { purgeExpiredProjects } from "../projects/reconciler";
import { dropExpiredRestorePoints } from "../backups/restore";
import { pruneBackups, runScheduledBackups } from "../backups/schedule";
import { settleLeftIntents } from "../storage/intents";

export const PLATFORM_PREFIX = "platform/";
const RUN_HISTORY_DAYS = 30;
const DEAD_KEY_DAYS = 30;

export interface PlatformTask {
  description: string;
  schedule: string;
  /** Returns counts for the run's history (kept as its response body). */
  run(ctx: AppContext, signal: AbortSignal): Promise<Record<string, number>>;
}

export const PLATFORM_TASKS: Record<string, PlatformTask> = {
  purge_deleted_projects: {
    description: "Purge soft-deleted projects past ATLASHUB_DELETED_RETENTION (database and roles dropped for good).",
    schedule: "* * * * *",
    run: async (ctx) => ({ purged: await purgeExpiredProjects(ctx) }),
  },
  clean_expired_sessions: {
    description: "Delete expired admin sessions.",
    schedule: "17 * * * *",
    run: async (ctx) => ({ deleted: (await ctx.sql`delete from admin_sessions where expires_at < now()`).count }),
  },
  scheduled_backups: {
    description: "Start the backups of projects whose backup schedule is due (each occurrence once, one missed while down made up once).",
    schedule: "* * * * *",
    run: async (ctx) => ({ started: await runScheduledBackups(ctx) }),
  },
  prune_backups: {
    description: "Delete scheduled backups that a project's retention (newest of each of the last N days and M weeks) no longer keeps.",
    schedule: "37 * * * *",
    run: async (ctx) => ({ deleted: await pruneBackups(ctx) }),
  },
  drop_expired_restore_points: {
    description: "Drop the databases replaced by restores once ATLASHUB_RESTORE_KEEP has passed (they can no longer be rolled back to).",
    schedule: "*/10 * * * *",
    run: async (ctx) => ({ dropped: await dropExpiredRestorePoints(ctx) }),
  },
  clean_dead_api_keys: {
    description: `Delete API keys that stopped working (revoked, or expired at the end of a rotation's grace period or of their life) more than ${DEAD_KEY_DAYS} days ago; the audit log keeps their history.`,
    schedule: "23 4 * * *",
    run: async (ctx) => ({
      // A key that a still-listed rotation points at (replaced_by) goes on a later run, after that one.
      deleted: (
        await ctx.sql`
          delete from api_keys k
          where coalesce(k.revoked_at, k.expires_at) < now() - make_interval(days => ${DEAD_KEY_DAYS})
            and not exists (select 1 from api_keys r where r.replaced_by = k.id)`
      ).count,
    }),
  },
  settle_abandoned_uploads: {
    description: "Finish or undo storage writes that a stopped process left half-done (uploads renamed but not recorded, deletes not finished), and remove their temp files.",
    schedule: "*/5 * * * *",
    run: async (ctx) => ({ settled: await settleLeftIntents(ctx) }),
  },
  prune_rate_limits: {
    description: "Delete login rate-limit counters whose window ended more than a day ago.",
    schedule: "47 * * * *",
    run: async (ctx) => ({ deleted: (await ctx.sql`delete from rate_limits where window_start < now() - interval '1 day'`).count }),
  },
  prune_job_runs: {
    description: `Delete job runs finished more than ${RUN_HISTORY_DAYS} days ago.`,
    schedule: "41 3 * * *",
    run: async (ctx) => ({
      deleted: (await ctx.sql`delete from job_runs where status <> 'running' and started_at < now() - make_interval(days => ${RUN_HISTORY_DAYS})`).count,
    }),
  },
};

/** Creates the platform jobs that do not exist yet; an admin's changes to existing ones are kept. */
export async function registerPlatformJobs(sql: Sql) {
  for (const [task, t] of Object.entries(PLATFORM_TASKS)) {
    await sql`
      insert into jobs (name, kind, schedule, payload, timeout_ms)
      values (${PLATFORM_PREFIX + task}, 'platform', ${t.schedule}, ${sql.json({ task })}, 60000)
      on conflict do nothing`;
  }
}

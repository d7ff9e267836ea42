// Scheduled backups and their retention, run by two platform jobs (server/jobs/platform.ts):
// platform/scheduled_backups every minute starts the backup of each enabled schedule whose latest
// occurrence is not yet claimed (an occurrence missed while AtlasHub was down is made up once), and
// platform/prune_backups deletes the scheduled backups retention no longer keeps. Manual backups are
// never pruned. A scheduled backup or verification that fails is told to ATLASHUB_JOB_NOTIFY_URL.
import { z } from "zod";
import type { AppContext } from "../context";
import type { Db } from "../platform/db";
import { ApiError } from "../http/errors";
import { log } from "../platform/log";
import { recordAudit } from "../platform/audit";
import { assertSchedule } from "../jobs/service";
import { nextRuns, parseSchedule } from "../jobs/scheduler";
import { getProject } from "../projects/service";
import { backupsToKeep } from "./retention";
import { deleteBackup, startBackup } from "./service";
import { notifyBackupFailure } from "./notify";

export const scheduleSchema = z.object({
  enabled: z.boolean().optional(),
  schedule: z.string().trim().min(1).max(200).optional(),
  timezone: z.string().trim().min(1).max(64).optional(),
  keep_daily: z.number().int().min(0).max(366).optional(),
  keep_weekly: z.number().int().min(0).max(520).optional(),
});

interface ScheduleRow {
  project_id: string;
  enabled: boolean;
  schedule: string;
  timezone: string;
  keep_daily: number;
  keep_weekly: number;
  last_occurrence: Date | null;
  scheduled_since: Date;
}

const DEFAULTS = { enabled: false, schedule: "0 3 * * *", timezone: "UTC", keep_daily: 7, keep_weekly: 4 };
const SCHEDULE_COLUMNS = ["project_id", "enabled", "schedule", "timezone", "keep_daily", "keep_weekly", "last_occurrence", "scheduled_since"];

function presentSchedule(projectId: string, row: ScheduleRow | undefined) {
  const s = row ?? { project_id: projectId, ...DEFAULTS, last_occurrence: null, scheduled_since: new Date() };
  return {
    enabled: s.enabled,
    schedule: s.schedule,
    timezone: s.timezone,
    keep_daily: s.keep_daily,
    keep_weekly: s.keep_weekly,
    last_occurrence: s.last_occurrence,
    next_run: s.enabled ? (nextRuns(s.schedule, s.timezone, 1)[0] ?? null) : null,
  };
}

export async function getSchedule(ctx: AppContext, projectId: string) {
  await getProject(ctx, projectId);
  const [row] = await ctx.sql<ScheduleRow[]>`select ${ctx.sql(SCHEDULE_COLUMNS)} from backup_schedules where project_id = ${projectId}`;
  return presentSchedule(projectId, row);
}

/** Changes what is given; enabling or changing the expression owes no occurrence before now. */
export async function updateSchedule(ctx: AppContext, projectId: string, input: z.infer<typeof scheduleSchema>, record: (db: Db) => Promise<unknown>) {
  await getProject(ctx, projectId);
  return ctx.sql.begin(async (tx) => {
    const [current] = await tx<ScheduleRow[]>`select ${tx(SCHEDULE_COLUMNS)} from backup_schedules where project_id = ${projectId} for update`;
    const next = { ...DEFAULTS, ...(current ?? {}), ...definedOnly(input) };
    assertSchedule(next.schedule, next.timezone);
    const restart = !current || next.schedule !== current.schedule || next.timezone !== current.timezone || (next.enabled && !current.enabled);
    const [row] = await tx<ScheduleRow[]>`
      insert into backup_schedules (project_id, enabled, schedule, timezone, keep_daily, keep_weekly)
      values (${projectId}, ${next.enabled}, ${next.schedule}, ${next.timezone}, ${next.keep_daily}, ${next.keep_weekly})
      on conflict (project_id) do update set enabled = excluded.enabled, schedule = excluded.schedule, timezone = excluded.timezone,
        keep_daily = excluded.keep_daily, keep_weekly = excluded.keep_weekly, updated_at = now(),
        scheduled_since = case when ${restart} then now() else backup_schedules.scheduled_since end
      returning ${tx(SCHEDULE_COLUMNS)}`;
    await record(tx);
    return presentSchedule(projectId, row);
  });
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Starts the backups that are due at `now`: for each enabled schedule of a ready project, its latest
 * occurrence at or before `now`, when later than the last one claimed (and than the schedule's start).
 * The claim is one conditional UPDATE, so of several instances exactly one starts each backup.
 */
export async function runScheduledBackups(ctx: AppContext, now = new Date()) {
  const schedules = await ctx.sql<ScheduleRow[]>`
    select s.* from backup_schedules s join projects p on p.id = s.project_id
    where s.enabled and p.status = 'ready' order by s.project_id`;
  let started = 0;
  for (const s of schedules) {
    const occurrence = latestOccurrence(s, now);
    if (!occurrence) continue;
    const [claimed] = await ctx.sql`
      update backup_schedules set last_occurrence = ${occurrence}
      where project_id = ${s.project_id} and enabled and (last_occurrence is null or last_occurrence < ${occurrence}) returning project_id`;
    if (!claimed) continue;
    try {
      const backup = await startBackup(ctx, s.project_id, { trigger: "schedule", createdBy: "scheduler", scheduledFor: occurrence }, (db, b) =>
        recordAudit(db, { actor: { type: "system", label: "scheduler" }, action: "backup.create", target: { type: "project", id: s.project_id }, details: { backup: b.id, scheduled_for: occurrence.toISOString() } }),
      );
      log.info("scheduled backup started", { project: s.project_id, backup: backup.id, scheduled_for: occurrence.toISOString() });
      started++;
    } catch (err) {
      // A backup still running (or the tools missing) skips this occurrence; the next one tries again.
      const reason = err instanceof ApiError ? err.message : (err as Error).message;
      log.warn("scheduled backup not started", { project: s.project_id, reason });
      await notifyBackupFailure(ctx, s.project_id, undefined, `the scheduled backup did not start: ${reason}`);
    }
  }
  return started;
}

function latestOccurrence(s: ScheduleRow, now: Date): Date | undefined {
  const [latest] = parseSchedule(s.schedule, s.timezone).previousRuns(1, now);
  if (!latest || latest.getTime() > now.getTime()) return undefined;
  const after = Math.max(s.last_occurrence?.getTime() ?? 0, s.scheduled_since.getTime());
  return latest.getTime() > after ? latest : undefined;
}

/** Deletes the scheduled backups of each schedule that retention no longer keeps; returns how many. */
export async function pruneBackups(ctx: AppContext) {
  const schedules = await ctx.sql<ScheduleRow[]>`select ${ctx.sql(SCHEDULE_COLUMNS)} from backup_schedules where enabled order by project_id`;
  let deleted = 0;
  for (const s of schedules) {
    const backups = await ctx.sql<{ id: string; status: string; at: Date }[]>`
      select id, status, coalesce(scheduled_for, created_at) as at from backups
      where project_id = ${s.project_id} and trigger = 'schedule' and status in ('completed', 'verified', 'failed')`;
    const good = backups.filter((b) => b.status !== "failed");
    const keep = backupsToKeep(good, { keepDaily: s.keep_daily, keepWeekly: s.keep_weekly }, s.timezone);
    // A failed one is kept while it is newer than every good one (it says the latest attempt failed).
    const newestGood = Math.max(0, ...good.map((b) => b.at.getTime()));
    for (const b of backups) {
      if (keep.has(b.id) || (b.status === "failed" && b.at.getTime() > newestGood)) continue;
      try {
        await deleteBackup(ctx, s.project_id, b.id, (db) =>
          recordAudit(db, { actor: { type: "system", label: "retention" }, action: "backup.delete", target: { type: "project", id: s.project_id }, details: { backup: b.id, reason: "retention" } }),
        );
        deleted++;
      } catch (err) {
        // Busy (being verified or restored from): the next run deletes it.
        if (!(err instanceof ApiError && err.status === 409)) throw err;
      }
    }
  }
  return deleted;
}

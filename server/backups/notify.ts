import type { AppContext } from "../context";
import { notify } from "../jobs/notify";
import { log } from "../platform/log";

const JOB_NAME = "platform/scheduled_backups";

/**
 * Tells ATLASHUB_JOB_NOTIFY_URL that a backup (or its verification) failed, as a failed run: the same
 * Discord or JSON message as every failed job run. A scheduled backup's is a run of the platform job
 * that started it; a manual or uploaded one's has no job, only the name backups/manual or
 * backups/upload. Never throws (a notification that fails is logged).
 */
export async function notifyBackupFailure(ctx: AppContext, projectId: string, backupId: string | undefined, error: string, trigger: "schedule" | "manual" | "upload" = "schedule") {
  const webhook = ctx.config.jobNotifyUrl;
  if (!webhook) return;
  try {
    const [job] = trigger === "schedule" ? await ctx.sql<{ id: string }[]>`select id from jobs where name = ${JOB_NAME}` : [];
    await notify(
      webhook,
      { job: { id: job?.id ?? "", name: trigger === "schedule" ? JOB_NAME : `backups/${trigger}`, project_id: projectId }, runId: backupId ?? "", attempt: 1, status: "failed", error },
      ctx.jobs.guard,
      AbortSignal.timeout(15_000),
    );
  } catch (err) {
    log.warn("backup failure not notified", { project: projectId, backup: backupId, reason: (err as Error).message });
  }
}

const KIND = { schedule: "scheduled backup", manual: "manual backup", upload: "uploaded backup" } as const;

/** notifyBackupFailure for a backup that has a row: says which kind of backup of which project failed, or did not pass verification. */
export async function notifyFailedBackup(ctx: AppContext, backupId: string, failure: { backup: string } | { verification: string }) {
  if (!ctx.config.jobNotifyUrl) return;
  try {
    const [row] = await ctx.sql<{ project_id: string; trigger: keyof typeof KIND; name: string }[]>`
      select b.project_id, b.trigger, p.name from backups b join projects p on p.id = b.project_id where b.id = ${backupId}`;
    if (!row) return;
    const what = `the ${KIND[row.trigger]} of ${row.name}`;
    const error = "backup" in failure ? `${what} failed: ${failure.backup}` : `${what} did not pass verification: ${failure.verification}`;
    await notifyBackupFailure(ctx, row.project_id, backupId, error, row.trigger);
  } catch (err) {
    log.warn("backup failure not notified", { backup: backupId, reason: (err as Error).message });
  }
}

import type { AppContext } from "../context";
import { notify } from "../jobs/notify";

const JOB_NAME = "platform/scheduled_backups";

/**
 * Tells ATLASHUB_JOB_NOTIFY_URL that a scheduled backup (or its verification) failed, as a failed run
 * of the platform job that started it: the same Discord or JSON message as every failed job run.
 */
export async function notifyBackupFailure(ctx: AppContext, projectId: string, backupId: string | undefined, error: string) {
  const webhook = ctx.config.jobNotifyUrl;
  if (!webhook) return;
  const [job] = await ctx.sql<{ id: string }[]>`select id from jobs where name = ${JOB_NAME}`;
  await notify(
    webhook,
    { job: { id: job?.id ?? "", name: JOB_NAME, project_id: projectId }, runId: backupId ?? "", attempt: 1, status: "failed", error },
    ctx.jobs.guard,
    AbortSignal.timeout(15_000),
  );
}

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
    const error = "backup" in failure ? `${what} failed: ${toldReason(failure.backup)}` : `${what} did not pass verification: ${toldReason(failure.verification)}`;
    await notifyBackupFailure(ctx, row.project_id, backupId, error, row.trigger);
  } catch (err) {
    log.warn("backup failure not notified", { backup: backupId, reason: (err as Error).message });
  }
}

// A line the tool wrote about itself (not a line of the SQL it quotes), and Postgres' own severities.
const TOOL_LINE = /^(?:pg_restore|pg_dump|psql): (?!detail:)|^(?:ERROR|FATAL|HINT|WARNING): /;
// Lines that quote the tenant's data or SQL: a failing row or key, a COPY line, the failing statement.
const QUOTING = /^(?:[\w-]+: )?(?:DETAIL|CONTEXT|detail):|^Command was:/;
// Where a reason hands over to the last lines a tool wrote to stderr (failure.ts's tailOf, joined by " | ").
const TOOL_OUTPUT = /^(.*?(?:pg_restore(?: --list)? failed|pg_dump exited with code \d+): )(.*)$/;

/**
 * A failure reason as told to the webhook (Discord or any other URL, outside AtlasHub): the backup's
 * row keeps it whole, for the admin; the notification leaves out what Postgres and pg_restore quote
 * of the tenant's database — a failing row or key's values, a COPY line, the statement that failed,
 * lines of a statement cut short by the tail — keeping the tool's and Postgres' own messages.
 */
export function toldReason(reason: string): string {
  const told: string[] = [];
  let left = false;
  reason.split(" | ").forEach((segment, i) => {
    let text = segment;
    if (i === 0) {
      const handover = text.match(TOOL_OUTPUT);
      if (handover && !TOOL_LINE.test(handover[2]!)) {
        text = handover[1]!.trimEnd();
        left = true;
      }
    } else if (!TOOL_LINE.test(text) || QUOTING.test(text)) {
      left = true;
      return;
    }
    const command = text.indexOf("Command was:");
    if (command >= 0) {
      text = text.slice(0, command).trimEnd();
      left = true;
    }
    text = text
      .replace(/Failing row contains \(.*\)/, () => ((left = true), "Failing row contains (…)"))
      .replace(/Key \((.*?)\)=\(.*\)( already exists| is not present| is still referenced)/, (_, key, rest) => ((left = true), `Key (${key})=(…)${rest}`));
    if (text) told.push(text);
  });
  const text = told.join(" | ");
  if (!left) return text;
  return `${text}${text.endsWith(":") ? " " : " | "}… (the rest is in the backup's failure_reason or verify_error)`;
}

// Finishes what a process that died left of backups: a backup still `running` is failed and its
// partial objects deleted, a delete cut short is finished, a verification cut short is recorded as
// such and its scratch database dropped. "Died" means the backup's advisory lock is free: a live
// process (this one or another instance) holds it for as long as it works on the backup.
import type { AppContext } from "../context";
import { log } from "../platform/log";
import { recordAudit } from "../platform/audit";
import { dropDatabase } from "./pgRestore";
import { failBackup, finishDeleting, ifOrphaned } from "./service";
import { scratchDatabaseName } from "./store";

const INTERVAL_MS = 60_000;

export async function reconcileBackups(ctx: AppContext) {
  const rows = await ctx.sql<{ id: string; project_id: string; status: string; verifying: boolean }[]>`
    select id, project_id, status, (status = 'completed' and verify_started_at is not null and verify_error is null) as verifying
    from backups
    where status in ('running', 'deleting') or (status = 'completed' and verify_started_at is not null and verify_error is null)
    order by created_at`;
  for (const row of rows) {
    if (ctx.backups.isRunning(row.id)) continue;
    const handled = await ifOrphaned(ctx, row.id, async () => {
      if (row.status === "running") await failBackup(ctx, row.project_id, row.id, "The AtlasHub process running the backup stopped before it finished.");
      else if (row.status === "deleting") await finishDeleting(ctx, row.project_id, row.id);
      else await abandonVerification(ctx, row.id);
    });
    if (!handled) continue;
    log.info("reconciled backup", { project: row.project_id, backup: row.id, from: row.verifying ? "verifying" : row.status });
    await recordAudit(ctx.sql, {
      actor: { type: "system", label: "reconciler" },
      action: "backup.reconcile",
      target: { type: "project", id: row.project_id },
      details: { backup: row.id, from: row.verifying ? "verifying" : row.status },
    });
  }
}

async function abandonVerification(ctx: AppContext, backupId: string) {
  await dropDatabase(ctx.clusterSql, scratchDatabaseName(backupId));
  await ctx.sql`
    update backups set verify_error = 'The AtlasHub process verifying the backup stopped before it finished.', updated_at = now()
    where id = ${backupId} and status = 'completed' and verify_error is null`;
}

/** Runs the backup reconciler now and then every minute; returns a function that stops it. */
export function startBackupReconciler(ctx: AppContext) {
  let running: Promise<void> | undefined;
  const run = () => {
    running ??= reconcileBackups(ctx)
      .catch((err) => log.warn("backup reconciler failed", { reason: (err as Error).message }))
      .finally(() => (running = undefined));
    return running;
  };
  void run();
  const timer = setInterval(run, INTERVAL_MS);
  return async () => {
    clearInterval(timer);
    await running;
  };
}

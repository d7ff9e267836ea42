// Finishes what a process that died left of backups: a backup still `running` is failed and its
// partial objects deleted, a delete cut short is finished, a verification cut short is recorded as
// such and its scratch database dropped. "Died" means the backup's advisory lock is free: a live
// process (this one or another instance) holds it for as long as it works on the backup.
import type { AppContext } from "../context";
import { log } from "../platform/log";
import { recordAudit } from "../platform/audit";
import { dropDatabase } from "./pgRestore";
import { failBackup, finishDeleting } from "./service";
import { ifOrphaned } from "./locks";
import { dropSpare, failRestore, swapBack, swapIn, type RestoreRow } from "./restore";
import { restoreDatabases } from "./restoreDatabases";
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
    const handled = await ifOrphaned(ctx, "backup", row.id, async () => {
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

/**
 * Restores of dead processes: one still restoring is failed (its new database dropped; the live one
 * was never touched; live files it had begun to change put back from their copy), one swapping or
 * rolling back is carried forward, a rolled-back one's restored database and files' copy dropped.
 */
export async function reconcileRestores(ctx: AppContext) {
  const rows = await ctx.sql<RestoreRow[]>`
    select * from restores where status in ('restoring', 'swapping', 'rolling_back') or (status = 'rolled_back' and old_dropped_at is null)
    order by created_at`;
  for (const restore of rows) {
    if (ctx.backups.isRunning(restore.id)) continue;
    const handled = await ifOrphaned(ctx, "restore", restore.id, async () => {
      if (restore.status === "restoring") {
        const reason = "The AtlasHub process restoring stopped before it finished" + (restore.mode === "replace" ? "; the live database was not touched." : ".");
        await failRestore(ctx, restore, reason);
      } else if (restore.status === "swapping") await swapIn(ctx, restore);
      else if (restore.status === "rolling_back") await swapBack(ctx, restore).catch((err) => log.warn("rollback not finished", { restore: restore.id, reason: (err as Error).message }));
      else await dropSpare(ctx, restore, restoreDatabases(restore.id).undone);
    });
    if (!handled) continue;
    const [now] = await ctx.sql<{ status: string }[]>`select status from restores where id = ${restore.id}`;
    log.info("reconciled restore", { project: restore.project_id, restore: restore.id, from: restore.status, to: now?.status });
    await recordAudit(ctx.sql, {
      actor: { type: "system", label: "reconciler" },
      action: "restore.reconcile",
      target: { type: "project", id: restore.project_id },
      details: { restore: restore.id, from: restore.status, to: now?.status },
    });
  }
}

async function abandonVerification(ctx: AppContext, backupId: string) {
  await dropDatabase(ctx.clusterSql, scratchDatabaseName(backupId));
  await ctx.sql`
    update backups set verify_error = 'The AtlasHub process verifying the backup stopped before it finished.', updated_at = now()
    where id = ${backupId} and status = 'completed' and verify_error is null`;
}

/** Runs the backup and restore reconcilers now and then every minute; returns a function that stops it. */
export function startBackupReconciler(ctx: AppContext) {
  let running: Promise<void> | undefined;
  const run = () => {
    const warn = (what: string) => (err: unknown) => log.warn(`${what} reconciler failed`, { reason: (err as Error).message });
    running ??= reconcileBackups(ctx)
      .catch(warn("backup"))
      .then(() => reconcileRestores(ctx))
      .catch(warn("restore"))
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

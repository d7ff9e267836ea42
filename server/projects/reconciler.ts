import type { AppContext } from "../context";
import { recordAudit } from "../platform/audit";
import { log } from "../platform/log";
import { advance, hardenProject, HARDENING_LEVEL, UNFINISHED } from "./provision";
import { reconcileMemberships } from "./memberships";
import { dropLeftoverStandIns } from "./standIn";

const INTERVAL_MS = 60_000;

/**
 * Purges soft-deleted projects past ATLASHUB_DELETED_RETENTION: each is marked purging (audited),
 * then purged; a purge cut short is finished by the reconciler. Run by the platform job
 * platform/purge_deleted_projects (server/jobs/platform.ts), so it shows in the job list and history.
 */
export async function purgeExpiredProjects(ctx: AppContext) {
  const expired = await ctx.sql<{ id: string }[]>`
    update projects set status = 'purging', operation = 'purge', updated_at = now()
    where status = 'deleted' and deleted_at < now() - make_interval(secs => ${ctx.config.deletedRetention})
    returning id`;
  let purged = 0;
  for (const { id } of expired) {
    await recordAudit(ctx.sql, { actor: { type: "system", label: "retention" }, action: "project.purge", target: { type: "project", id }, details: { reason: "retention" } });
    if ((await advance(ctx, id, "try")) === "purged") purged++;
  }
  return purged;
}

/**
 * Finishes every operation a stopped process left half-done (creation, delete, restore, purge), puts
 * back role memberships that changed outside AtlasHub and drops stand-ins a stopped process left.
 * Projects another instance is working on are skipped (their advisory lock is taken). Reports what
 * it did in the log and the audit log.
 */
export async function reconcileProjects(ctx: AppContext) {
  const unfinished = await ctx.sql<{ id: string; status: string }[]>`select id, status from projects where status in ${ctx.sql(UNFINISHED)} order by updated_at`;
  for (const { id, status } of unfinished) {
    const final = await advance(ctx, id, "try");
    if (final === undefined) continue;
    log.info("reconciled project", { project: id, from: status, to: final });
    await recordAudit(ctx.sql, { actor: { type: "system", label: "reconciler" }, action: "project.reconcile", target: { type: "project", id }, details: { from: status, to: final } });
  }
  await reconcileMemberships(ctx);
  await dropLeftoverStandIns(ctx);
  const unhardened = await ctx.sql<{ id: string }[]>`select id from projects where status = 'ready' and hardening < ${HARDENING_LEVEL} order by created_at`;
  for (const { id } of unhardened) {
    if (await hardenProject(ctx, id)) log.info("hardened project", { project: id, level: HARDENING_LEVEL });
  }
}

/** Runs the reconciler now and then every minute; returns a function that stops it. */
export function startReconciler(ctx: AppContext) {
  let running: Promise<void> | undefined;
  const run = () => {
    running ??= reconcileProjects(ctx)
      .catch((err) => log.warn("project reconciler failed", { reason: (err as Error).message }))
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

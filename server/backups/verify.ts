// Verification: a backup proves it restores. Its dump is restored into a scratch database
// (ah_verify_<backup id>, by a stand-in for the project's owner role), every table's row count and checksum and
// every sequence are compared with the manifest (taken in the dump's own snapshot), and the scratch
// database is dropped. The backup becomes `verified`, or keeps `completed` with `verify_error`.
import type { AppContext } from "../context";
import type { Db } from "../platform/db";
import { errors } from "../http/errors";
import { pgToolsFor } from "./pgTools";
import { log } from "../platform/log";
import { crashPoint } from "../projects/crash";
import type { PgTools } from "./pgTools";
import { createRestoreDatabase, dropDatabase, keepingOwnerRole, ownerRole, restoreBackupDump } from "./pgRestore";
import { compareSnapshots, snapshotDatabase } from "./snapshot";
import { withStandIn } from "../projects/standIn";
import { failureReason } from "./failure";
import { notifyFailedBackup } from "./notify";
import { scratchDatabaseName } from "./store";
import { assertUsable, getBackup, openDumpStream, tryHoldBackupLock, type Manifest } from "./service";

const SHOWN_PROBLEMS = 5;

/** Runs while the caller holds the backup's lock, so the reconciler leaves the scratch database alone. */
export async function verifyBackup(ctx: AppContext, projectId: string, backupId: string, manifest: Manifest, tools: PgTools, signal: AbortSignal) {
  await ctx.sql`
    update backups set status = 'completed', verify_started_at = now(), verified_at = null, verify_error = null, updated_at = now()
    where id = ${backupId} and status in ('completed', 'verified')`;
  const scratch = scratchDatabaseName(backupId);
  let problem: string | undefined;
  try {
    problem = await restoreAndCompare(ctx, projectId, backupId, manifest, tools, scratch, signal);
  } catch (err) {
    problem = signal.aborted ? "AtlasHub stopped while verifying the backup." : failureReason(err);
  } finally {
    await dropDatabase(ctx.clusterSql, scratch).catch((err) => log.warn("scratch database not dropped", { database: scratch, reason: (err as Error).message }));
  }
  if (problem) {
    log.warn("backup verification failed", { project: projectId, backup: backupId, reason: problem });
    await ctx.sql`update backups set verify_error = ${problem}, updated_at = now() where id = ${backupId}`;
    // Whatever started the backup or this verification (schedule, admin, upload), nobody may be watching.
    await notifyFailedBackup(ctx, backupId, { verification: problem });
    return false;
  }
  await ctx.sql`update backups set status = 'verified', verified_at = now(), updated_at = now() where id = ${backupId} and status = 'completed'`;
  log.info("backup verified", { project: projectId, backup: backupId, tables: manifest.database.tables.length });
  return true;
}

/** Undefined when the restored database matches the manifest, else what differs. */
async function restoreAndCompare(ctx: AppContext, projectId: string, backupId: string, manifest: Manifest, tools: PgTools, scratch: string, signal: AbortSignal) {
  const owner = ownerRole(projectId);
  // One a verification cut short left (before the reconciler came by) holds what its script made:
  // the superuser creates the extensions in an empty database only.
  await dropDatabase(ctx.clusterSql, scratch);
  await createRestoreDatabase(ctx, ctx.clusterSql, scratch, owner, manifest.database.extensions);
  crashPoint("verify:after-create");
  const engine = ctx.engine.superuser();
  const restored = await withStandIn(ctx, projectId, [scratch], async (standIn) => {
    await keepingOwnerRole(ctx, projectId, () =>
      restoreBackupDump(
        tools,
        engine,
        (streamSignal) => openDumpStream(ctx, projectId, backupId, manifest, streamSignal),
        { database: scratch, standIn, privileges: "none" },
        manifest,
        signal,
        ctx.config.restoreStatementTimeout * 1000,
      ),
    );
    return (await snapshotDatabase(ctx, standIn, scratch, async () => {}, signal)).snapshot;
  });
  if (manifest.database.snapshot === "none") {
    // An uploaded dump: no source to compare with; what it restores to becomes its snapshot.
    const adopted = { ...manifest.database, snapshot: "restore" as const, tables: restored.tables, sequences: restored.sequences };
    await ctx.sql`update backups set manifest = jsonb_set(manifest, '{database}', ${ctx.sql.json(adopted as never)}) where id = ${backupId}`;
    return undefined;
  }
  const problems = compareSnapshots(manifest.database, restored);
  if (problems.length === 0) return undefined;
  const more = problems.length > SHOWN_PROBLEMS ? ` (and ${problems.length - SHOWN_PROBLEMS} more)` : "";
  return `the restored database differs from the backup's snapshot: ${problems.slice(0, SHOWN_PROBLEMS).join("; ")}${more}`;
}

/** POST …/verify: verifies a completed backup again, in the background (409 while anything else works on it). */
export async function startVerification(ctx: AppContext, projectId: string, backupId: string, record?: (db: Db) => Promise<unknown>) {
  const backup = await getBackup(ctx, projectId, backupId);
  assertUsable(backup);
  const tools = await pgToolsFor(ctx);
  const lock = await tryHoldBackupLock(ctx, backupId);
  if (!lock) throw errors.backupBusy();
  try {
    await record?.(ctx.sql);
  } catch (err) {
    await lock.release();
    throw err;
  }
  ctx.backups.run(backupId, async (signal) => {
    try {
      await verifyBackup(ctx, projectId, backupId, backup.manifest!, tools, signal);
    } finally {
      await lock.release();
    }
  });
}

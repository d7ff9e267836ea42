// Restoring a backup, as a persisted state machine that never leaves a project without a database.
//
// replace:      restoring → swapping → finished (→ rolling_back → rolled_back), or failed.
//   restoring: the dump goes into a new database ah_restore_<id>, configured like the project's own,
//              by pg_restore as the project's owner role. The live database is not touched: any
//              failure (or a crash: the reconciler) drops the new one and ends `failed`. Then the
//              project's files are made the backup's, from a copy of them kept aside first
//              (restoreFiles.ts); a failure from there on puts that copy back before `failed`.
//   swapping:  the live database is closed to connections, its sessions and this process's pool
//              ended, then ONE control-plane transaction renames it to ah_prev_<id>, renames the new
//              one to p_<project> and records `finished`: Postgres commits both renames or neither.
//              A crash before that commit leaves `swapping`, which the reconciler carries forward.
//   finished:  ah_prev_<id> (and the files' copy) is kept until keep_until (ATLASHUB_RESTORE_KEEP) for
//              a rollback, which puts the files back and swaps the database back the same way
//              (rolling_back → rolled_back); then a platform job drops them.
// new_project:  a project is provisioned through the usual state machine (its credentials answered
//              once), then the dump is restored into its database (privileges and policies with the
//              roles renamed to the new project's) and the backup's files stored in its buckets:
//              restoring → finished | failed (the new project stays; purge it to try again).
import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { AppContext } from "../context";
import type { Db, Sql } from "../platform/db";
import { ApiError, errors } from "../http/errors";
import { log } from "../platform/log";
import { pageSchema, safeText } from "../http/schemas";
import { configureProjectDatabase, databaseName, isTransient, projectExtensions } from "../projects/provision";
import type { ExtensionEntry } from "./snapshot";
import { crashPoint } from "../projects/crash";
import { createProject, getProject, presentProject, projectName, type ProjectRow } from "../projects/service";
import { createBucket, updateBucket, DEFAULT_BUCKETS } from "../storage/service";
import { pgToolsFor, type PgTools } from "./pgTools";
import { createRestoreDatabase, dropDatabase, keepingOwnerRole, missingExtensions, ownerRole, refusedExtensions, restoreBackupDump, type RestoreTarget } from "./pgRestore";
import { withStandIn } from "../projects/standIn";
import { assertUsable, getBackup, openDumpStream, type BackupRow, type FileEntry, type Manifest } from "./service";
import { BackupFailure, failureReason } from "./failure";
import { holdLocks, ifOrphaned, type HeldLocks } from "./locks";
import { restoreDatabases } from "./restoreDatabases";
import { backupObject } from "./store";
import { applyBackupFiles, dropSavedFiles, fileEntries, putSavedFilesBack, restoresFiles, saveLiveFiles, storeBackupFile } from "./restoreFiles";

export const restoreSchema = z.discriminatedUnion("mode", [
  z.object({ mode: z.literal("replace"), confirm: z.string() }),
  z.object({ mode: z.literal("new_project"), confirm: z.string(), name: projectName, description: safeText(500).optional() }),
]);

export type RestoreStatus = "restoring" | "swapping" | "finished" | "failed" | "rolling_back" | "rolled_back";

export interface RestoreRow {
  id: string;
  project_id: string;
  source_project_id: string;
  backup_id: string;
  mode: "replace" | "new_project";
  status: RestoreStatus;
  new_database: string | null;
  old_database: string | null;
  files_restored: number;
  failure_reason: string | null;
  created_by: string | null;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
  keep_until: Date | null;
  old_dropped_at: Date | null;
  rolled_back_at: Date | null;
  /** replace: how far it got with the live files (restoreFiles.ts). */
  files_state: "saved" | "applying" | "applied" | null;
}

const RESTORE_COLUMNS = [
  "id", "project_id", "source_project_id", "backup_id", "mode", "status", "new_database", "old_database", "files_restored",
  "failure_reason", "created_by", "created_at", "updated_at", "finished_at", "keep_until", "old_dropped_at", "rolled_back_at", "files_state",
];
const RESTORE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SWAP_ATTEMPTS = 5;

export const listRestoresQuery = pageSchema;

export function presentRestore(r: RestoreRow) {
  return {
    id: r.id,
    project_id: r.project_id,
    source_project_id: r.source_project_id,
    backup_id: r.backup_id,
    mode: r.mode,
    status: r.status,
    files_restored: r.files_restored,
    failure_reason: r.failure_reason,
    created_by: r.created_by,
    created_at: r.created_at,
    updated_at: r.updated_at,
    finished_at: r.finished_at,
    // Until when POST …/restore/rollback can swap the replaced database back (replace only).
    rollback_until: r.mode === "replace" && r.status === "finished" && !r.old_dropped_at ? r.keep_until : null,
    rolled_back_at: r.rolled_back_at,
  };
}

export async function getRestore(ctx: AppContext, projectId: string, restoreId: string) {
  await getProject(ctx, projectId);
  if (!RESTORE_ID.test(restoreId)) throw errors.notFound("restore");
  const [row] = await ctx.sql<RestoreRow[]>`select ${ctx.sql(RESTORE_COLUMNS)} from restores where id = ${restoreId} and project_id = ${projectId}`;
  if (!row) throw errors.notFound("restore");
  return row;
}

export async function listRestores(ctx: AppContext, projectId: string, q: z.infer<typeof listRestoresQuery>) {
  await getProject(ctx, projectId);
  return ctx.sql<RestoreRow[]>`
    select ${ctx.sql(RESTORE_COLUMNS)} from restores where project_id = ${projectId}
    order by created_at desc, id limit ${q.limit} offset ${q.offset}`;
}

type RecordRestore = (db: Db, details: { restore: string; mode: string; project?: string }) => Promise<unknown>;

/**
 * POST …/backups/:backup/restore. `confirm` must be the name of the backup's project. The work runs
 * in the background holding the restore's lock (and the backup's, so it cannot be deleted meanwhile).
 */
export async function startRestore(
  ctx: AppContext,
  projectId: string,
  backupId: string,
  input: z.infer<typeof restoreSchema>,
  createdBy: string | null,
  record: { restore: RecordRestore; createProject: (db: Db, p: ProjectRow) => Promise<unknown> },
) {
  const backup = await getBackup(ctx, projectId, backupId);
  assertUsable(backup);
  const project = await getProject(ctx, projectId);
  if (input.confirm !== project.name) throw errors.unprocessable("confirm must be the name of the backup's project.");
  const tools = await pgToolsFor(ctx);
  const missing = await missingExtensions(ctx.clusterSql, backup.manifest!.database.extensions);
  if (missing.length) throw errors.unprocessable(`The backup needs the extension(s) ${missing.join(", ")}, which this Postgres does not have; install them first.`);
  const refused = await refusedExtensions(ctx.clusterSql, backup.manifest!.database.extensions);
  if (refused.length) throw errors.unprocessable(`The backup names extension(s) AtlasHub does not create for a project: ${refused.join(", ")}.`);
  const id = randomUUID();
  const locks = await holdLocks(ctx, [
    { kind: "restore", id, wait: true },
    { kind: "backup", id: backupId },
  ]);
  if (!locks) throw errors.backupBusy();
  try {
    if (input.mode === "replace") {
      if (project.status !== "ready") throw errors.conflict(`The project is ${project.status}; only a ready project's database can be replaced.`);
      const names = restoreDatabases(id);
      const row = await insertRestore(ctx, { id, project_id: projectId, source_project_id: projectId, backup_id: backupId, mode: "replace", new_database: names.incoming, old_database: names.previous, created_by: createdBy }, record.restore);
      ctx.backups.run(id, (signal) => runReplace(ctx, row, backup, tools, locks, signal));
      return { restore: row };
    }
    const created = await createProject(ctx, { name: input.name, description: input.description }, record.createProject);
    // Before anyone has the new credentials (see createRestoreDatabase).
    await createRestoreDatabase(ctx, ctx.clusterSql, databaseName(created.project.id), created.credentials.owner.role, backup.manifest!.database.extensions);
    const row = await insertRestore(ctx, { id, project_id: created.project.id, source_project_id: projectId, backup_id: backupId, mode: "new_project", created_by: createdBy }, record.restore);
    ctx.backups.run(id, (signal) => runNewProject(ctx, row, backup, tools, locks, signal));
    return { restore: row, project: { ...presentProject(ctx, created.project), credentials: created.credentials } };
  } catch (err) {
    await locks.release();
    throw err;
  }
}

async function insertRestore(ctx: AppContext, values: Partial<RestoreRow> & { id: string; project_id: string }, record: RecordRestore) {
  return ctx.sql
    .begin(async (tx) => {
      const [row] = await tx<RestoreRow[]>`insert into restores ${tx({ ...values, status: "restoring" })} returning ${tx(RESTORE_COLUMNS)}`;
      await record(tx, { restore: row!.id, mode: row!.mode, ...(row!.mode === "new_project" ? { project: row!.project_id } : {}) });
      return row!;
    })
    .catch((err) => {
      if ((err as { code?: string }).code === "23505") throw errors.restoreInProgress();
      throw err;
    });
}

// ---- replace ---------------------------------------------------------------------------------------

async function runReplace(ctx: AppContext, restore: RestoreRow, backup: BackupRow, tools: PgTools, locks: HeldLocks, signal: AbortSignal) {
  try {
    try {
      await fillIncoming(ctx, restore, backup.manifest!, tools, signal);
      if (restoresFiles(backup.manifest!)) {
        await saveLiveFiles(ctx, restore, signal);
        crashPoint("restore:files-saved");
        await applyBackupFiles(ctx, restore, backup.manifest!, signal);
        crashPoint("restore:files-applied");
      }
    } catch (err) {
      await failRestore(ctx, restore, signal.aborted ? "AtlasHub stopped while restoring; the live database and files are as they were." : failureReason(err));
      return;
    }
    crashPoint("restore:after-fill");
    await ctx.sql`update restores set status = 'swapping', updated_at = now() where id = ${restore.id} and status = 'restoring'`;
    crashPoint("restore:before-swap");
    await swapIn(ctx, restore);
  } finally {
    await locks.release();
  }
}

/** The new database, configured like the project's own, with the dump restored into it as the owner role. */
async function fillIncoming(ctx: AppContext, restore: RestoreRow, manifest: Manifest, tools: PgTools, signal: AbortSignal) {
  const incoming = restore.new_database!;
  const cluster = ctx.clusterSql;
  await createRestoreDatabase(ctx, cluster, incoming, ownerRole(restore.project_id), withProjectExtensions(ctx, manifest.database.extensions));
  await configureProjectDatabase(ctx, cluster, incoming, restore.project_id, { extensions: false });
  // Database users connect to the project's database by name: the new one must let them in too.
  for (const { role_name } of await cluster<{ role_name: string }[]>`select role_name from project_users where project_id = ${restore.project_id}`) {
    await cluster`grant connect on database ${cluster(incoming)} to ${cluster(role_name)}`;
  }
  crashPoint("restore:during-fill");
  const privileges = privilegesFor(manifest, restore);
  await restoreAsStandIn(ctx, restore, manifest, tools, incoming, privileges, signal);
  // Without the dump's own grants, the project's standard ones on what was restored.
  if (privileges !== "keep") await configureProjectDatabase(ctx, cluster, incoming, restore.project_id, { extensions: false });
}

/** A backup's extensions and those every project database has, each once. */
function withProjectExtensions(ctx: AppContext, extensions: ExtensionEntry[]) {
  return [...extensions, ...projectExtensions(ctx).filter((p) => !extensions.some((e) => e.name === p.name))];
}

/** The backup's dump restored into `database` by a stand-in for the project's owner (server/projects/standIn.ts). */
function restoreAsStandIn(ctx: AppContext, restore: RestoreRow, manifest: Manifest, tools: PgTools, database: string, privileges: RestoreTarget["privileges"], signal: AbortSignal) {
  return withStandIn(ctx, restore.project_id, [database], (standIn) =>
    keepingOwnerRole(ctx, restore.project_id, () =>
      restoreBackupDump(
        tools,
        ctx.engine.superuser(),
        (streamSignal) => openDumpStream(ctx, restore.source_project_id, restore.backup_id, manifest, streamSignal),
        { database, standIn, privileges },
        manifest,
        signal,
        ctx.config.restoreStatementTimeout * 1000,
      ),
    ),
  );
}

/**
 * The dump's grants and policies: kept as they are when they name this project's roles (its own
 * backup, replaced); renamed from the source project's roles into a new project; for an uploaded
 * dump, renamed from the project its database name says it came from, else left out.
 */
function privilegesFor(manifest: Manifest, restore: RestoreRow): RestoreTarget["privileges"] {
  const from = manifest.origin === "upload" ? /^p_([a-z0-9]{10})$/.exec(manifest.database.name)?.[1] : restore.source_project_id;
  if (!from) return "none";
  if (from === restore.project_id) return "keep";
  return { fromProject: from, toProject: restore.project_id };
}

/**
 * Drops what a restore made (the new database) and records why it failed; the live database stays,
 * and the live files are put back from their copy if they were changed. Throwing (the store
 * unreachable), it leaves the restore as it was, for the reconciler to try again.
 */
export async function failRestore(ctx: AppContext, restore: RestoreRow, reason: string) {
  log.warn("restore failed", { project: restore.project_id, restore: restore.id, reason });
  if (restore.mode === "replace") {
    await putSavedFilesBack(ctx, restore);
    await dropDatabase(ctx.clusterSql, restore.new_database!);
    await dropSavedFiles(ctx, restore);
  }
  await ctx.sql`
    update restores set status = 'failed', failure_reason = ${reason}, updated_at = now()
    where id = ${restore.id} and status in ('restoring', 'swapping')`;
}

/** Closes the live database to everyone (new sessions refused, open ones and this process's pool ended). */
async function closeLive(ctx: AppContext, projectId: string) {
  const live = databaseName(projectId);
  await ctx.clusterSql`alter database ${ctx.clusterSql(live)} allow_connections false`;
  await ctx.pools.close(projectId);
  await terminateSessions(ctx.clusterSql, live);
}

function terminateSessions(cluster: Sql, database: string) {
  return cluster`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${database} and pid <> pg_backend_pid()`;
}

/**
 * Renames inside one transaction of the control plane (with the row's new status), retried while a
 * session that was just ended still holds the database. `from` is what is live now.
 */
async function swapDatabases(ctx: AppContext, restore: RestoreRow, step: { expect: RestoreStatus; liveTo: string; toLive: string; done: (tx: Db) => Promise<unknown> }) {
  const cluster = ctx.clusterSql;
  const live = databaseName(restore.project_id);
  for (let attempt = 1; ; attempt++) {
    try {
      return await cluster.begin(async (tx) => {
        const [project] = await tx<{ status: string }[]>`select status from projects where id = ${restore.project_id} for share`;
        if (project?.status !== "ready") throw new BackupFailure(`the project is ${project?.status ?? "gone"}; nothing was swapped`);
        const [current] = await tx<{ status: RestoreStatus }[]>`select status from restores where id = ${restore.id} for update`;
        if (current?.status !== step.expect) return false;
        await tx`alter database ${tx(live)} rename to ${tx(step.liveTo)}`;
        await tx`alter database ${tx(step.toLive)} rename to ${tx(live)}`;
        await tx`alter database ${tx(live)} allow_connections true`;
        await step.done(tx);
        return true;
      });
    } catch (err) {
      // 55006: a session ended a moment ago has not left yet.
      if ((err as { code?: string }).code !== "55006" || attempt >= SWAP_ATTEMPTS) throw err;
      await terminateSessions(cluster, live);
      await Bun.sleep(100 * attempt);
    }
  }
}

/** swapping → finished. Failing for good, it opens the live database again and drops the new one. */
export async function swapIn(ctx: AppContext, restore: RestoreRow) {
  try {
    await closeLive(ctx, restore.project_id);
    crashPoint("restore:live-closed");
    await swapDatabases(ctx, restore, {
      expect: "swapping",
      liveTo: restore.old_database!,
      toLive: restore.new_database!,
      done: (tx) => tx`
        update restores set status = 'finished', finished_at = now(), updated_at = now(),
          keep_until = now() + make_interval(secs => ${ctx.config.restoreKeep})
        where id = ${restore.id}`,
    });
    crashPoint("restore:after-swap");
    log.info("restore swapped in", { project: restore.project_id, restore: restore.id });
  } catch (err) {
    // A transient error (the cluster busy, the connection lost) leaves `swapping` for the reconciler.
    if (isTransient(err)) throw err;
    await reopenLive(ctx, restore.project_id);
    await failRestore(ctx, restore, failureReason(err));
  }
}

/** Opens the live database again after a swap that did not happen — unless the project was soft-deleted meanwhile, which keeps it closed. */
async function reopenLive(ctx: AppContext, projectId: string) {
  await ctx.clusterSql.begin(async (tx) => {
    const [project] = await tx<{ status: string }[]>`select status from projects where id = ${projectId} for share`;
    if (project?.status === "ready") await tx`alter database ${tx(databaseName(projectId))} allow_connections true`;
  });
}

/**
 * POST /admin/api/projects/:id/restore/rollback: the latest replace restore whose replaced database
 * is still kept is undone — that database swapped back in, the restored one dropped.
 */
export async function rollbackRestore(ctx: AppContext, projectId: string, record: (db: Db, restoreId: string) => Promise<unknown>) {
  const project = await getProject(ctx, projectId);
  // The swap needs a ready project; checked before the files are put back, which would otherwise be
  // the old ones while the restored database stays live.
  if (project.status !== "ready") throw errors.conflict(`The project is ${project.status}; only a ready project's restore can be rolled back.`);
  const [candidate] = await ctx.sql<RestoreRow[]>`
    select ${ctx.sql(RESTORE_COLUMNS)} from restores
    where project_id = ${projectId} and mode = 'replace' and status = 'finished' and old_dropped_at is null and keep_until > now()
    order by finished_at desc limit 1`;
  if (!candidate) throw errors.noRollbackPoint();
  const locks = await holdLocks(ctx, [{ kind: "restore", id: candidate.id }]);
  if (!locks) throw errors.restoreInProgress();
  try {
    await ctx.sql
      .begin(async (tx) => {
        const [row] = await tx`update restores set status = 'rolling_back', updated_at = now() where id = ${candidate.id} and status = 'finished' returning id`;
        if (!row) throw errors.noRollbackPoint();
        await record(tx, candidate.id);
      })
      .catch((err) => {
        if ((err as { code?: string }).code === "23505") throw errors.restoreInProgress();
        throw err;
      });
    await swapBack(ctx, candidate);
  } finally {
    await locks.release();
  }
  return getRestore(ctx, projectId, candidate.id);
}

/**
 * rolling_back → rolled_back: the files put back from their copy, the replaced database swapped back
 * in, then the restored one dropped. Failing to put the files back, it stays rolling_back for the
 * reconciler to finish; failing the swap for good, the restore stays finished.
 */
export async function swapBack(ctx: AppContext, restore: RestoreRow) {
  const names = restoreDatabases(restore.id);
  try {
    await putSavedFilesBack(ctx, restore);
  } catch (err) {
    throw new ApiError(500, "rollback_failed", `Putting the project's files back failed; the rollback will be tried again: ${failureReason(err)}`, { restore_id: restore.id });
  }
  crashPoint("rollback:files-back");
  try {
    await closeLive(ctx, restore.project_id);
    crashPoint("rollback:live-closed");
    await swapDatabases(ctx, restore, {
      expect: "rolling_back",
      liveTo: names.undone,
      toLive: restore.old_database!,
      done: (tx) => tx`update restores set status = 'rolled_back', rolled_back_at = now(), updated_at = now() where id = ${restore.id}`,
    });
  } catch (err) {
    if (isTransient(err)) throw err;
    await reopenLive(ctx, restore.project_id);
    await ctx.sql`update restores set status = 'finished', updated_at = now() where id = ${restore.id} and status = 'rolling_back'`;
    throw new ApiError(500, "rollback_failed", `The rollback failed and the restored database stays live: ${failureReason(err)}`, { restore_id: restore.id });
  }
  crashPoint("restore:after-rollback");
  await dropSpare(ctx, restore, names.undone);
  log.info("restore rolled back", { project: restore.project_id, restore: restore.id });
}

/** Drops the database that is no longer live (replaced, or rolled back) and the files' copy, and records it. */
export async function dropSpare(ctx: AppContext, restore: Pick<RestoreRow, "id" | "project_id">, database: string) {
  await dropDatabase(ctx.clusterSql, database);
  await dropSavedFiles(ctx, restore);
  await ctx.sql`update restores set old_dropped_at = now(), updated_at = now() where id = ${restore.id} and old_dropped_at is null`;
}

/** The platform job: replaced databases kept past ATLASHUB_RESTORE_KEEP are dropped (no rollback after that). */
export async function dropExpiredRestorePoints(ctx: AppContext) {
  const expired = await ctx.sql<{ id: string; project_id: string; old_database: string }[]>`
    select id, project_id, old_database from restores
    where status = 'finished' and mode = 'replace' and old_dropped_at is null and keep_until <= now()`;
  let dropped = 0;
  for (const restore of expired) {
    if (await ifOrphaned(ctx, "restore", restore.id, () => dropSpare(ctx, restore, restore.old_database))) dropped++;
  }
  return dropped;
}

// ---- new project -----------------------------------------------------------------------------------

async function runNewProject(ctx: AppContext, restore: RestoreRow, backup: BackupRow, tools: PgTools, locks: HeldLocks, signal: AbortSignal) {
  try {
    const manifest = backup.manifest!;
    const target = databaseName(restore.project_id);
    await restoreAsStandIn(ctx, restore, manifest, tools, target, privilegesFor(manifest, restore), signal);
    // The project's standard grants on what was restored into public (the dump's own were renamed above).
    await configureProjectDatabase(ctx, ctx.clusterSql, target, restore.project_id, { extensions: false });
    await restoreFiles(ctx, restore, manifest, signal);
    await ctx.sql`update restores set status = 'finished', finished_at = now(), updated_at = now() where id = ${restore.id} and status = 'restoring'`;
    log.info("restored into a new project", { project: restore.project_id, restore: restore.id, from: restore.source_project_id });
  } catch (err) {
    const reason = signal.aborted ? "AtlasHub stopped while restoring into the new project." : failureReason(err);
    await failRestore(ctx, restore, `${reason} (the new project ${restore.project_id} stays as far as it got; purge it to start again)`);
  } finally {
    await locks.release();
  }
}

/** The backup's buckets (with their public flag) and every file, stored in the new project as uploads through AtlasHub are. */
async function restoreFiles(ctx: AppContext, restore: RestoreRow, manifest: Manifest, signal: AbortSignal) {
  const projectId = restore.project_id;
  const noAudit = async () => {};
  for (const bucket of manifest.files.buckets) {
    if ((DEFAULT_BUCKETS as readonly string[]).includes(bucket.name)) {
      if (bucket.public) await updateBucket(ctx, projectId, bucket.name, { public: true }, noAudit);
    } else {
      await createBucket(ctx, projectId, { name: bucket.name, public: bucket.public }, noAudit).catch((err) => {
        if (!(err instanceof ApiError && err.status === 409)) throw err;
      });
    }
  }
  if (manifest.files.count === 0) return;
  let restored = 0;
  for await (const entry of fileEntries(ctx, backupObject.fileList(restore.source_project_id, restore.backup_id))) {
    signal.throwIfAborted();
    await storeBackupFile(ctx, projectId, entry, backupObject.file(restore.source_project_id, restore.backup_id, entry.n));
    restored++;
    await ctx.sql`update restores set files_restored = ${restored}, updated_at = now() where id = ${restore.id}`;
  }
}

// Project backups: pg_dump -Fc of the project's database (in the snapshot its table checksums are
// taken in) streamed in parts into the backup store, then a copy of every storage object of the
// project, a file list and a manifest. Rows: running → completed (→ verified by verify.ts) | failed;
// deleting → gone. Nothing is held whole in memory or on local disk: bytes flow from pg_dump or the
// project's store straight into the backup store, pulled at the pace it takes them.
import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { AppContext } from "../context";
import type { Db } from "../platform/db";
import { errors } from "../http/errors";
import { log } from "../platform/log";
import { pageSchema } from "../http/schemas";
import { getProject } from "../projects/service";
import { databaseName } from "../projects/provision";
import { crashPoint } from "../projects/crash";
import { pgDumpRefusal, pgEnv, pgToolsFor, type PgTools } from "./pgTools";
import { asStream, cutIntoParts, joinParts, meter } from "./parts";
import { backupBucket, backupObject, scratchDatabaseName } from "./store";
import type { ObjectLocation } from "../engines/storage/store";
import { dropDatabase } from "./pgRestore";
import { snapshotDatabase, type DatabaseSnapshot } from "./snapshot";
import { withStandIn } from "../projects/standIn";
import { verifyBackup } from "./verify";
import { BackupFailure, failureReason, tailOf } from "./failure";
import { holdLocks, type HeldLocks } from "./locks";
import { notifyFailedBackup } from "./notify";

export type BackupStatus = "running" | "completed" | "verified" | "failed" | "deleting";

export interface BackupRow {
  id: string;
  project_id: string;
  status: BackupStatus;
  trigger: "manual" | "schedule";
  dump_bytes: string;
  dump_parts: number;
  files_count: number;
  files_bytes: string;
  manifest: Manifest | null;
  failure_reason: string | null;
  verify_started_at: Date | null;
  verified_at: Date | null;
  verify_error: string | null;
  created_by: string | null;
  created_at: Date;
  updated_at: Date;
  completed_at: Date | null;
  scheduled_for: Date | null;
}

const BACKUP_COLUMNS = [
  "id", "project_id", "status", "trigger", "dump_bytes", "dump_parts", "files_count", "files_bytes", "manifest", "failure_reason",
  "verify_started_at", "verified_at", "verify_error", "created_by", "created_at", "updated_at", "completed_at", "scheduled_for",
];

export interface FileEntry {
  n: number;
  bucket: string;
  key: string;
  size: number;
  sha256: string;
  content_type: string;
}

export interface Manifest {
  format: "atlashub-backup/1";
  /** "upload": an admin's pg_dump file; its table snapshot is taken by its first verification. */
  origin?: "pg_dump" | "upload";
  backup_id: string;
  project: { id: string; name: string };
  created_at: string;
  atlashub_version: string;
  postgres: { server_version: string; pg_dump_version: string };
  /** "plain": an uploaded SQL script, run by plainRestore.ts instead of pg_restore. */
  dump: { format: "custom" | "plain"; bytes: number; sha256: string; part_bytes: number; parts: { bytes: number; sha256: string }[] };
  /** `snapshot`: "dump" when taken in the dump's snapshot, "restore" when taken from an uploaded dump's first restore, "none" before that. */
  database: DatabaseSnapshot & { name: string; snapshot?: "dump" | "restore" | "none" };
  files: { count: number; bytes: number; list: { key: string; bytes: number; sha256: string }; buckets: { name: string; public: boolean }[] };
}

export const listBackupsQuery = pageSchema;
const BACKUP_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PROGRESS_EVERY_MS = 1000;
const FILE_PAGE = 500;

export function presentBackup(b: BackupRow, options: { manifest: boolean } = { manifest: true }) {
  const dump = Number(b.dump_bytes);
  const files = Number(b.files_bytes);
  return {
    id: b.id,
    project_id: b.project_id,
    status: b.status,
    trigger: b.trigger,
    scheduled_for: b.scheduled_for,
    bytes: { dump, files, total: dump + files },
    dump_parts: b.dump_parts,
    files_count: b.files_count,
    failure_reason: b.failure_reason,
    verify_started_at: b.verify_started_at,
    verified_at: b.verified_at,
    verify_error: b.verify_error,
    created_by: b.created_by,
    created_at: b.created_at,
    updated_at: b.updated_at,
    completed_at: b.completed_at,
    ...(options.manifest ? { manifest: b.manifest } : {}),
  };
}

export async function getBackup(ctx: AppContext, projectId: string, backupId: string): Promise<BackupRow> {
  await getProject(ctx, projectId);
  if (!BACKUP_ID.test(backupId)) throw errors.notFound("backup");
  const [row] = await ctx.sql<BackupRow[]>`
    select ${ctx.sql(BACKUP_COLUMNS)} from backups where id = ${backupId} and project_id = ${projectId} and status <> 'deleting'`;
  if (!row) throw errors.notFound("backup");
  return row;
}

/** Newest first. */
export async function listBackups(ctx: AppContext, projectId: string, q: z.infer<typeof listBackupsQuery>) {
  await getProject(ctx, projectId);
  return ctx.sql<BackupRow[]>`
    select ${ctx.sql(BACKUP_COLUMNS)} from backups where project_id = ${projectId} and status <> 'deleting'
    order by created_at desc, id limit ${q.limit} offset ${q.offset}`;
}

/**
 * Records a backup as running and starts it in the background; the row says how it goes. The
 * process holds the backup's advisory lock from before the row exists until the work is over, so a
 * row left running without its lock held belongs to a process that died (see reconciler.ts).
 */
export async function startBackup(
  ctx: AppContext,
  projectId: string,
  options: { trigger: "manual" | "schedule"; createdBy: string | null; scheduledFor?: Date },
  record?: (db: Db, backup: BackupRow) => Promise<unknown>,
): Promise<BackupRow> {
  const project = await getProject(ctx, projectId);
  if (project.status !== "ready") throw errors.conflict(`The project is ${project.status}; only ready projects are backed up.`);
  const tools = await pgToolsFor(ctx);
  const refusal = pgDumpRefusal(tools.version);
  if (refusal) throw errors.pgDumpUnsafe(refusal);
  const id = randomUUID();
  const lock = await holdBackupLock(ctx, id);
  let row: BackupRow;
  try {
    row = await ctx.sql.begin(async (tx) => {
      const [inserted] = await tx<BackupRow[]>`
        insert into backups (id, project_id, status, trigger, created_by, scheduled_for)
        values (${id}, ${projectId}, 'running', ${options.trigger}, ${options.createdBy}, ${options.scheduledFor ?? null})
        returning ${tx(BACKUP_COLUMNS)}`;
      await record?.(tx, inserted!);
      return inserted!;
    });
  } catch (err) {
    await lock.release();
    if ((err as { code?: string }).code === "23505") throw errors.backupInProgress();
    throw err;
  }
  ctx.backups.run(id, (signal) => runBackup(ctx, { id, projectId, projectName: project.name }, tools, lock, signal));
  return row;
}

export type BackupLock = HeldLocks;

/** The backup's lock, waited for (a new backup's id is unknown to anyone else). */
export async function holdBackupLock(ctx: AppContext, backupId: string): Promise<BackupLock> {
  return (await holdLocks(ctx, [{ kind: "backup", id: backupId, wait: true }]))!;
}

/** The backup's lock if nobody holds it now, else undefined. */
export function tryHoldBackupLock(ctx: AppContext, backupId: string): Promise<BackupLock | undefined> {
  return holdLocks(ctx, [{ kind: "backup", id: backupId }]);
}

interface BackupTarget {
  id: string;
  projectId: string;
  projectName: string;
}

async function runBackup(ctx: AppContext, target: BackupTarget, tools: PgTools, lock: BackupLock, signal: AbortSignal) {
  const progress = progressWriter(ctx, target.id);
  try {
    let manifest: Manifest;
    try {
      manifest = await writeBackup(ctx, target, tools, progress, signal);
    } catch (err) {
      const reason = signal.aborted ? "AtlasHub stopped while the backup was running." : failureReason(err);
      await progress.stop();
      await failBackup(ctx, target.projectId, target.id, reason);
      return;
    }
    await progress.stop();
    crashPoint("backup:before-complete");
    const [done] = await ctx.sql`
      update backups set status = 'completed', manifest = ${ctx.sql.json(manifest as never)}, completed_at = now(), updated_at = now(),
        dump_bytes = ${manifest.dump.bytes}, dump_parts = ${manifest.dump.parts.length}, files_count = ${manifest.files.count}, files_bytes = ${manifest.files.bytes}
      where id = ${target.id} and status = 'running' returning id`;
    if (!done) {
      // Another process judged this one dead (its lock connection dropped) and failed the backup meanwhile.
      await deleteBackupObjects(ctx, target.projectId, target.id);
      return;
    }
    log.info("backup completed", { project: target.projectId, backup: target.id, bytes: manifest.dump.bytes + manifest.files.bytes });
    if (ctx.config.backupVerify && !signal.aborted) await verifyBackup(ctx, target.projectId, target.id, manifest, tools, signal);
  } finally {
    await lock.release();
  }
}

/**
 * Removes what a backup wrote, then marks it failed (in that order: a crash in between leaves it
 * running, for the reconciler), and tells ATLASHUB_JOB_NOTIFY_URL — whatever started the backup
 * (schedule, admin, upload), in the background so that an upload's 422 does not wait for a webhook.
 */
export async function failBackup(ctx: AppContext, projectId: string, backupId: string, reason: string) {
  log.warn("backup failed", { project: projectId, backup: backupId, reason });
  await deleteBackupObjects(ctx, projectId, backupId);
  const [failed] = await ctx.sql`update backups set status = 'failed', failure_reason = ${reason}, updated_at = now() where id = ${backupId} and status = 'running' returning id`;
  if (failed) void notifyFailedBackup(ctx, backupId, { backup: reason });
}

export function deleteBackupObjects(ctx: AppContext, projectId: string, backupId: string) {
  return ctx.backups.store.deletePrefix(projectId, backupBucket(backupId));
}

async function writeBackup(ctx: AppContext, target: BackupTarget, tools: PgTools, progress: ProgressWriter, signal: AbortSignal): Promise<Manifest> {
  const createdAt = new Date().toISOString();
  const database = databaseName(target.projectId);
  const dumped = await dumpAndDescribe(ctx, target, tools, progress, signal);
  const files = await copyFiles(ctx, target.projectId, { list: backupObject.fileList(target.projectId, target.id), file: (n) => backupObject.file(target.projectId, target.id, n) }, progress, signal);
  const manifest: Manifest = {
    format: "atlashub-backup/1",
    origin: "pg_dump",
    backup_id: target.id,
    project: { id: target.projectId, name: target.projectName },
    created_at: createdAt,
    atlashub_version: ctx.version,
    postgres: { server_version: tools.serverVersion, pg_dump_version: tools.version },
    dump: dumped.dump,
    database: { name: database, snapshot: "dump", ...dumped.snapshot },
    files,
  };
  const body = new Blob([JSON.stringify(manifest, null, 2)]).stream() as ReadableStream<Uint8Array>;
  const staged = await ctx.backups.store.put(backupObject.manifest(target.projectId, target.id), body, { maxBytes: Number.MAX_SAFE_INTEGER, contentType: "application/json" });
  await staged.commit();
  return manifest;
}

/**
 * The dump and what it holds, in one snapshot (snapshotDatabase): pg_dump runs as the superuser (it
 * must read every table, whatever its owner and RLS; pg_dump ≥ 15.8 refuses views and foreign tables
 * itself), the tables are read by a stand-in for the owner role.
 */
async function dumpAndDescribe(ctx: AppContext, target: BackupTarget, tools: PgTools, progress: ProgressWriter, signal: AbortSignal) {
  const database = databaseName(target.projectId);
  return withStandIn(ctx, target.projectId, [database], async (standIn) => {
    const { result: dump, snapshot } = await snapshotDatabase(
      ctx,
      standIn,
      database,
      async (id) => {
        const dump = await dumpToStore(ctx, target, tools, id, progress, signal);
        crashPoint("backup:after-dump");
        return dump;
      },
      signal,
    );
    return { dump, snapshot };
  });
}

/** pg_dump -Fc of the project's database in the exported snapshot, into the store part by part. */
async function dumpToStore(ctx: AppContext, target: BackupTarget, tools: PgTools, snapshot: string, progress: ProgressWriter, signal: AbortSignal): Promise<Manifest["dump"]> {
  signal.throwIfAborted();
  const child = Bun.spawn([tools.pgDump, "--format=custom", "--no-password", `--snapshot=${snapshot}`], {
    env: pgEnv(ctx.engine.superuser(), databaseName(target.projectId)),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const kill = () => child.kill("SIGTERM");
  signal.addEventListener("abort", kill, { once: true });
  const stderr = tailOf(child.stderr);
  let stored: Manifest["dump"];
  try {
    stored = await storeDumpParts(ctx, target.projectId, target.id, child.stdout, progress);
  } catch (err) {
    kill();
    throw err;
  } finally {
    signal.removeEventListener("abort", kill);
  }
  const code = await child.exited;
  const errorText = await stderr;
  signal.throwIfAborted();
  if (code !== 0) throw new BackupFailure(`pg_dump exited with code ${code}${errorText ? `: ${errorText}` : ""}`);
  return stored;
}

/** A dump stream into the store as parts of ATLASHUB_BACKUP_PART_BYTES, hashed as it passes. */
export async function storeDumpParts(ctx: AppContext, projectId: string, backupId: string, source: ReadableStream<Uint8Array>, progress: ProgressWriter): Promise<Manifest["dump"]> {
  const partBytes = ctx.config.backupPartBytes;
  const metered = meter(source, (bytes) => progress.set({ dump_bytes: bytes }));
  const cutter = cutIntoParts(metered.stream, partBytes);
  const parts: { bytes: number; sha256: string }[] = [];
  try {
    for (let n = 0; ; n++) {
      const part = await cutter.next();
      if (!part) break;
      const staged = await ctx.backups.store.put(backupObject.dumpPart(projectId, backupId, n), part, { maxBytes: partBytes, contentType: "application/octet-stream" });
      await staged.commit();
      parts.push({ bytes: staged.size, sha256: staged.sha256 });
      progress.set({ dump_parts: parts.length });
      crashPoint("backup:during-dump");
    }
  } catch (err) {
    await cutter.cancel(err).catch(() => {});
    throw err;
  }
  const { bytes, sha256 } = metered.result();
  return { format: "custom", bytes, sha256, part_bytes: partBytes, parts };
}

/**
 * Copies every storage object of the project into the backup store (a backup's, or a restore's copy
 * of the files it replaces), in (bucket, key) order, with a list of them (files.ndjson) written
 * alongside as it goes. An object deleted since it was listed is skipped; one replaced meanwhile is
 * copied as it is now, and the list has the sha256 of what was copied.
 */
export async function copyFiles(
  ctx: AppContext,
  projectId: string,
  into: { list: ObjectLocation; file: (n: number) => ObjectLocation },
  progress: Pick<ProgressWriter, "set">,
  signal: AbortSignal,
): Promise<Manifest["files"]> {
  const store = ctx.backups.store;
  const buckets = await ctx.sql<{ name: string; public: boolean }[]>`select name, public from storage_buckets where project_id = ${projectId} order by name`;
  const list = new TransformStream<Uint8Array, Uint8Array>();
  const writer = list.writable.getWriter();
  const listLocation = into.list;
  const listPut = store.put(listLocation, list.readable, { maxBytes: Number.MAX_SAFE_INTEGER, contentType: "application/x-ndjson" });
  listPut.catch(() => {}); // awaited below; this only keeps an early failure from going unhandled meanwhile
  const encoder = new TextEncoder();
  let count = 0;
  let bytes = 0;
  try {
    for await (const object of projectObjects(ctx, projectId)) {
      signal.throwIfAborted();
      const found = await ctx.storage.get({ project: projectId, bucket: object.bucket, key: object.key });
      if (!found) continue;
      const staged = await store
        .put(into.file(count), asStream(found.body), { maxBytes: Number.MAX_SAFE_INTEGER, contentType: object.content_type })
        .catch((err) => {
          // Lets go of the open file or connection (stores whose bodies hold one have discard()).
          (found as { discard?: () => void }).discard?.();
          throw err;
        });
      await staged.commit();
      const entry: FileEntry = { n: count, bucket: object.bucket, key: object.key, size: staged.size, sha256: staged.sha256, content_type: object.content_type };
      await writer.ready;
      await writer.write(encoder.encode(JSON.stringify(entry) + "\n"));
      count++;
      bytes += staged.size;
      progress.set({ files_count: count, files_bytes: bytes });
    }
    await writer.close();
  } catch (err) {
    await writer.abort(err).catch(() => {});
    await listPut.catch(() => {});
    throw err;
  }
  const listed = await listPut;
  await listed.commit();
  return { count, bytes, list: { key: listLocation.key, bytes: listed.size, sha256: listed.sha256 }, buckets };
}

/** The project's objects in (bucket, key) order, a page at a time. */
export async function* projectObjects(ctx: AppContext, projectId: string) {
  let after: { bucket: string; key: string } | undefined;
  for (;;) {
    const sql = ctx.sql;
    const page = await sql<{ bucket: string; key: string; content_type: string }[]>`
      select bucket, key, content_type from storage_objects
      where project_id = ${projectId} ${after ? sql`and (bucket, key) > (${after.bucket}, ${after.key})` : sql``}
      order by bucket, key limit ${FILE_PAGE}`;
    yield* page;
    if (page.length < FILE_PAGE) return;
    after = page.at(-1)!;
  }
}

/** 409 unless the backup is complete (completed or verified): a running or failed one has nothing to offer. */
export function assertUsable(backup: BackupRow) {
  if (backup.status !== "completed" && backup.status !== "verified") throw errors.backupNotReady(backup.status);
}

/** The dump of a completed backup as one stream (its parts joined), for downloads and restores. */
export function openDump(ctx: AppContext, backup: BackupRow, signal?: AbortSignal): { stream: ReadableStream<Uint8Array>; bytes: number } {
  assertUsable(backup);
  return { stream: openDumpStream(ctx, backup.project_id, backup.id, backup.manifest!, signal), bytes: backup.manifest!.dump.bytes };
}

export function openDumpStream(ctx: AppContext, projectId: string, backupId: string, manifest: Manifest, signal?: AbortSignal) {
  return joinParts(
    manifest.dump.parts.length,
    async (n) => {
      const found = await ctx.backups.store.get(backupObject.dumpPart(projectId, backupId, n));
      if (!found) throw new BackupFailure(`part ${n} of the dump is missing from the backup store`);
      return asStream(found.body);
    },
    signal,
  );
}

/**
 * Deletes a backup: marked deleting (and audited) in one transaction, then its objects, then its row,
 * holding its lock (409 while a verification or restore uses it). A crash in between leaves it
 * deleting, which the reconciler finishes.
 */
export async function deleteBackup(ctx: AppContext, projectId: string, backupId: string, record?: (db: Db) => Promise<unknown>) {
  const backup = await getBackup(ctx, projectId, backupId);
  if (backup.status === "running") throw errors.backupRunning();
  const lock = await tryHoldBackupLock(ctx, backupId);
  if (!lock) throw errors.backupBusy();
  try {
    await ctx.sql.begin(async (tx) => {
      const [row] = await tx<{ status: BackupStatus }[]>`select status from backups where id = ${backupId} for update`;
      if (!row || row.status === "deleting") throw errors.notFound("backup");
      await tx`update backups set status = 'deleting', updated_at = now() where id = ${backupId}`;
      await record?.(tx);
    });
    crashPoint("backup:deleting");
    await finishDeleting(ctx, projectId, backupId);
  } finally {
    await lock.release();
  }
}

export async function finishDeleting(ctx: AppContext, projectId: string, backupId: string) {
  await dropDatabase(ctx.clusterSql, scratchDatabaseName(backupId));
  await deleteBackupObjects(ctx, projectId, backupId);
  await ctx.sql`delete from backups where id = ${backupId} and status = 'deleting'`;
}

interface ProgressState {
  dump_bytes: number;
  dump_parts: number;
  files_count: number;
  files_bytes: number;
}

export type ProgressWriter = ReturnType<typeof progressWriter>;

/** Writes the running totals to the row at most once a second (the API shows them while it runs). */
export function progressWriter(ctx: AppContext, backupId: string) {
  const state: ProgressState = { dump_bytes: 0, dump_parts: 0, files_count: 0, files_bytes: 0 };
  let dirty = false;
  let writing: Promise<unknown> = Promise.resolve();
  const flush = () => {
    if (!dirty) return writing;
    dirty = false;
    const s = { ...state };
    writing = writing
      .then(
        () => ctx.sql`
          update backups set dump_bytes = ${s.dump_bytes}, dump_parts = ${s.dump_parts}, files_count = ${s.files_count}, files_bytes = ${s.files_bytes}, updated_at = now()
          where id = ${backupId} and status = 'running'`,
      )
      .catch((err) => log.warn("backup progress not recorded", { backup: backupId, reason: (err as Error).message }));
    return writing;
  };
  const timer = setInterval(flush, PROGRESS_EVERY_MS);
  return {
    set(partial: Partial<ProgressState>) {
      Object.assign(state, partial);
      dirty = true;
    },
    async stop() {
      clearInterval(timer);
      await flush();
    },
  };
}

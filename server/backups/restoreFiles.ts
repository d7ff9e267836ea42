// The files half of a replace restore. Object metadata lives in the control plane (storage_objects)
// and bytes in the project's store under <project>/<bucket>/<key>, read and written by the storage
// service under per-key locks; nothing addresses an object other than by that location. So rather
// than a second storage namespace swapped in (every storage path would have to learn it), the
// restore changes the live objects through the storage service itself, from a copy it can always go
// back to:
//   1. save    every live object is copied into the backup store (restore "bucket" r<id>, with a
//              list); files_state = saved once the copy is complete. Nothing live changed yet.
//   2. apply   files_state = applying, then the live objects are made the backup's: each of its
//              files whose sha256 (or type) differs is stored, each live object it does not hold is
//              deleted, its buckets made (with their public flag); files_state = applied.
//   3. the database swap (restore.ts). A failure or crash before it commits puts the saved copy
//              back the same way (when files_state is applying or applied) and fails the restore.
//   rollback   puts the saved copy back the same way, then swaps the database back.
// Each step is idempotent (a file already as wanted is skipped), so the reconciler finishes or undoes
// whatever a kill -9 cut short from files_state alone. While a step runs, apps may see some objects
// already changed and others not yet; an app's write meanwhile may or may not survive it. The copy is
// dropped with the replaced database (ATLASHUB_RESTORE_KEEP, a rollback, or the project's purge).
// A dump uploaded without files (origin "upload") leaves the project's files alone.
import type { AppContext } from "../context";
import type { ObjectLocation } from "../engines/storage/store";
import { ApiError } from "../http/errors";
import { crashPoint } from "../projects/crash";
import { createBucket, deleteObject, storeObject, updateBucket } from "../storage/service";
import { asStream } from "./parts";
import { backupObject, restoreBucket, restoreObject } from "./store";
import { copyFiles, projectObjects, type FileEntry, type Manifest } from "./service";
import { BackupFailure } from "./failure";
import type { RestoreRow } from "./restore";

interface FileSet {
  buckets: { name: string; public: boolean }[];
  list: ObjectLocation;
  file: (n: number) => ObjectLocation;
}

const noProgress = { set() {} };

/** Whether a replace restore of this backup changes the project's files (an uploaded dump holds none). */
export const restoresFiles = (manifest: Manifest) => manifest.origin !== "upload";

/** 1: the live files copied aside (what a crash left of an earlier attempt is thrown away first). */
export async function saveLiveFiles(ctx: AppContext, restore: RestoreRow, signal: AbortSignal) {
  await ctx.backups.store.deletePrefix(restore.project_id, restoreBucket(restore.id));
  const saved = await copyFiles(
    ctx,
    restore.project_id,
    { list: restoreObject.fileList(restore.project_id, restore.id), file: (n) => restoreObject.file(restore.project_id, restore.id, n) },
    noProgress,
    signal,
  );
  await ctx.sql`
    update restores set files_state = 'saved', saved_buckets = ${ctx.sql.json(saved.buckets)}, updated_at = now()
    where id = ${restore.id} and files_state is null`;
}

/** 2: the live files made the backup's. */
export async function applyBackupFiles(ctx: AppContext, restore: RestoreRow, manifest: Manifest, signal: AbortSignal) {
  await ctx.sql`update restores set files_state = 'applying', updated_at = now() where id = ${restore.id} and files_state = 'saved'`;
  const from = { project: restore.source_project_id, backup: restore.backup_id };
  const changed = await matchFiles(ctx, restore.project_id, {
    buckets: manifest.files.buckets,
    list: backupObject.fileList(from.project, from.backup),
    file: (n) => backupObject.file(from.project, from.backup, n),
  }, signal);
  await ctx.sql`update restores set files_state = 'applied', files_restored = ${changed}, updated_at = now() where id = ${restore.id} and files_state = 'applying'`;
}

/** The saved copy put back (an undo, or a rollback); nothing to do when the live files were never changed. */
export async function putSavedFilesBack(ctx: AppContext, restore: Pick<RestoreRow, "id" | "project_id">) {
  const [row] = await ctx.sql<{ files_state: string | null; saved_buckets: FileSet["buckets"] | null }[]>`
    select files_state, saved_buckets from restores where id = ${restore.id}`;
  if (row?.files_state !== "applying" && row?.files_state !== "applied") return;
  // A project being purged or purged has no files to put back (its purge drops the copy too); a
  // soft-deleted one does: putting them back then fails, and is tried again once it is restored.
  const [project] = await ctx.sql<{ status: string }[]>`select status from projects where id = ${restore.project_id}`;
  if (!project || project.status === "purging" || project.status === "purged") return;
  await matchFiles(ctx, restore.project_id, {
    buckets: row.saved_buckets ?? [],
    list: restoreObject.fileList(restore.project_id, restore.id),
    file: (n) => restoreObject.file(restore.project_id, restore.id, n),
  }, AbortSignal.timeout(24 * 3600_000));
}

/** The saved copy dropped (with the replaced database, or when the restore failed). */
export async function dropSavedFiles(ctx: AppContext, restore: Pick<RestoreRow, "id" | "project_id">) {
  await ctx.backups.store.deletePrefix(restore.project_id, restoreBucket(restore.id));
}

/**
 * Makes the project's live objects exactly `set`'s files (by sha256 and content type), its buckets
 * there with their public flag. Returns how many objects it stored or deleted.
 */
async function matchFiles(ctx: AppContext, projectId: string, set: FileSet, signal: AbortSignal) {
  const noAudit = async () => {};
  const live = new Map((await ctx.sql<{ name: string; public: boolean }[]>`select name, public from storage_buckets where project_id = ${projectId}`).map((b) => [b.name, b.public]));
  for (const bucket of set.buckets) {
    if (!live.has(bucket.name)) {
      await createBucket(ctx, projectId, { name: bucket.name, public: bucket.public }, noAudit).catch((err) => {
        if (!(err instanceof ApiError && err.status === 409)) throw err;
      });
    } else if (live.get(bucket.name) !== bucket.public) await updateBucket(ctx, projectId, bucket.name, { public: bucket.public }, noAudit);
  }
  const wanted = new Set<string>();
  let changed = 0;
  for await (const entry of fileEntries(ctx, set.list)) {
    signal.throwIfAborted();
    wanted.add(`${entry.bucket}/${entry.key}`);
    const [current] = await ctx.sql<{ sha256: string | null; content_type: string }[]>`
      select sha256, content_type from storage_objects where project_id = ${projectId} and bucket = ${entry.bucket} and key = ${entry.key}`;
    if (current?.sha256 === entry.sha256 && current.content_type === entry.content_type) continue;
    await storeBackupFile(ctx, projectId, entry, set.file(entry.n));
    changed++;
    crashPoint("restore:during-files");
  }
  for await (const object of projectObjects(ctx, projectId)) {
    signal.throwIfAborted();
    if (wanted.has(`${object.bucket}/${object.key}`)) continue;
    await deleteObject(ctx, { project: projectId, bucket: object.bucket, key: object.key }).catch((err) => {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    });
    changed++;
  }
  return changed;
}

/** Stores one file of a backup (`stored`: its place in the backup store) in the project, as an upload through AtlasHub is; it must have the sha256 the backup lists. */
export async function storeBackupFile(ctx: AppContext, projectId: string, entry: FileEntry, stored: ObjectLocation) {
  const found = await ctx.backups.store.get(stored);
  if (!found) throw new BackupFailure(`file ${entry.bucket}/${entry.key} is missing from the backup store`);
  const object = await storeObject(ctx, { project: projectId, bucket: entry.bucket, key: entry.key }, asStream(found.body), {
    maxBytes: Number.MAX_SAFE_INTEGER,
    contentType: entry.content_type,
    uploadedBy: null,
  });
  if (object.sha256 !== entry.sha256) throw new BackupFailure(`file ${entry.bucket}/${entry.key} does not have the sha256 the backup lists`);
}

/** The lines of a files.ndjson in the backup store, read as a stream. */
export async function* fileEntries(ctx: AppContext, list: ObjectLocation): AsyncGenerator<FileEntry> {
  const found = await ctx.backups.store.get(list);
  if (!found) throw new BackupFailure("the file list is missing from the backup store");
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of asStream(found.body)) {
    pending += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line) yield JSON.parse(line) as FileEntry;
    }
  }
  if (pending.trim()) yield JSON.parse(pending) as FileEntry;
}

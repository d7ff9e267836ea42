// An existing pg_dump -Fc file uploaded as a backup of a project, to restore it through the same path
// as AtlasHub's own backups (replace, or into a new project). It is streamed into the backup store in
// parts; pg_restore must be able to read it (its table of contents) and the extensions it creates are
// noted, or the upload is refused and nothing kept. There is no source database to compare a restore
// with: the first verification records what the restored tables hold as the backup's snapshot.
// Plain .sql files are not taken: only psql runs them, and psql runs shell commands (\!) a file holds.
import { randomUUID } from "node:crypto";
import type { AppContext } from "../context";
import type { Db } from "../platform/db";
import { ApiError, errors } from "../http/errors";
import { log } from "../platform/log";
import { getProject } from "../projects/service";
import { pgToolsFor } from "./pgTools";
import { dumpExtensions, listDump } from "./pgRestore";
import { failBackup, holdBackupLock, openDumpStream, progressWriter, storeDumpParts, type Manifest } from "./service";
import { BackupFailure, failureReason } from "./failure";
import { verifyBackup } from "./verify";

const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/**
 * Stores the uploaded file as a completed backup of the project (then verified in the background when
 * ATLASHUB_BACKUP_VERIFY), holding the backup's lock throughout like any backup.
 */
export async function uploadBackup(ctx: AppContext, projectId: string, body: ReadableStream<Uint8Array>, createdBy: string | null, record: (db: Db, backupId: string) => Promise<unknown>) {
  const project = await getProject(ctx, projectId);
  if (project.status === "purged") throw errors.notFound("project");
  const tools = await pgToolsFor(ctx);
  const id = randomUUID();
  const lock = await holdBackupLock(ctx, id);
  let manifest: Manifest;
  try {
    await ctx.sql.begin(async (tx) => {
      await tx`insert into backups (id, project_id, status, trigger, created_by) values (${id}, ${projectId}, 'running', 'upload', ${createdBy})`;
      await record(tx, id);
    });
    try {
      manifest = await storeUpload(ctx, projectId, project.name, id, body, tools);
    } catch (err) {
      const reason = failureReason(err);
      await failBackup(ctx, projectId, id, `the upload was refused: ${reason}`);
      if (err instanceof ApiError) throw err;
      throw new ApiError(422, "upload_unreadable", `The file is not a pg_dump custom-format archive that this server's pg_restore (${tools.version}) can read: ${reason}`);
    }
    await ctx.sql`
      update backups set status = 'completed', manifest = ${ctx.sql.json(manifest as never)}, completed_at = now(), updated_at = now(),
        dump_bytes = ${manifest.dump.bytes}, dump_parts = ${manifest.dump.parts.length}
      where id = ${id} and status = 'running'`;
  } catch (err) {
    await lock.release();
    if ((err as { code?: string }).code === "23505") throw errors.backupInProgress();
    throw err;
  }
  log.info("backup uploaded", { project: projectId, backup: id, bytes: manifest.dump.bytes });
  if (!ctx.config.backupVerify) await lock.release();
  else {
    ctx.backups.run(id, async (signal) => {
      try {
        await verifyBackup(ctx, projectId, id, manifest, tools, signal);
      } finally {
        await lock.release();
      }
    });
  }
  return id;
}

async function storeUpload(ctx: AppContext, projectId: string, projectName: string, id: string, body: ReadableStream<Uint8Array>, tools: Awaited<ReturnType<typeof pgToolsFor>>): Promise<Manifest> {
  const progress = progressWriter(ctx, id);
  let dump: Manifest["dump"];
  try {
    dump = await storeDumpParts(ctx, projectId, id, body, progress);
  } finally {
    await progress.stop();
  }
  if (dump.bytes === 0) throw new BackupFailure("the file is empty");
  const partial: Manifest = {
    format: "atlashub-backup/1",
    origin: "upload",
    backup_id: id,
    project: { id: projectId, name: projectName },
    created_at: new Date().toISOString(),
    atlashub_version: ctx.version,
    postgres: { server_version: tools.serverVersion, pg_dump_version: "" },
    dump,
    database: { name: "", snapshot: "none", tables: [], sequences: [], extensions: [] },
    files: { count: 0, bytes: 0, list: { key: "files.ndjson", bytes: 0, sha256: EMPTY_SHA256 }, buckets: [] },
  };
  const open = (signal: AbortSignal) => openDumpStream(ctx, projectId, id, partial, signal);
  const signal = AbortSignal.timeout(10 * 60_000);
  const toc = await listDump(tools, open, signal);
  partial.postgres.pg_dump_version = /^;\s+Dumped by pg_dump version: (.+)$/m.exec(toc)?.[1]?.trim() ?? "unknown";
  partial.database.name = /^;\s+dbname: (.+)$/m.exec(toc)?.[1]?.trim() ?? "";
  partial.database.extensions = await dumpExtensions(tools, open, toc, signal);
  return partial;
}

// An existing pg_dump file uploaded as a backup of a project, to restore it through the same path
// as AtlasHub's own backups (replace, or into a new project). It is streamed into the backup store in
// parts, then read back: a custom-format archive (-Fc) must be readable by pg_restore (its table of
// contents); a plain SQL script is read through as plainRestore.ts would run it (psql is never run on
// it: meta-commands such as \! refuse the file). The extensions either creates are noted and must be
// available here, or the upload is refused (422) and nothing kept. There is no source database to
// compare a restore with: the first verification records what the restored tables hold as the
// backup's snapshot.
import { randomUUID } from "node:crypto";
import type { AppContext } from "../context";
import type { Db } from "../platform/db";
import { ApiError, errors } from "../http/errors";
import { log } from "../platform/log";
import { getProject } from "../projects/service";
import { pgToolsFor } from "./pgTools";
import { dumpExtensions, listDump, missingExtensions, refusedExtensions } from "./pgRestore";
import { scanPlainScript } from "./plainRestore";
import { ScriptRefused } from "./plainScript";
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
  if (await isArchive(open(signal))) {
    const toc = await listDump(tools, open, signal);
    partial.postgres.pg_dump_version = /^;\s+Dumped by pg_dump version: (.+)$/m.exec(toc)?.[1]?.trim() ?? "unknown";
    partial.database.name = /^;\s+dbname: (.+)$/m.exec(toc)?.[1]?.trim() ?? "";
    partial.database.extensions = await dumpExtensions(tools, open, toc, signal);
  } else {
    partial.dump.format = "plain";
    let script;
    try {
      script = await scanPlainScript(open(signal));
    } catch (err) {
      if (err instanceof ScriptRefused) throw new ApiError(422, "upload_refused", `The SQL script is not restored here: ${err.message}`);
      throw err;
    }
    if (script.statements === 0) throw new ApiError(422, "upload_refused", "The SQL script holds no statement.");
    partial.postgres.pg_dump_version = script.pgDumpVersion ?? "unknown";
    // A plain dump does not name its database; the project its owner role belonged to stands for it (see privilegesFor).
    partial.database.name = script.sourceProject ? `p_${script.sourceProject}` : "";
    partial.database.extensions = script.extensions;
  }
  const missing = await missingExtensions(ctx.clusterSql, partial.database.extensions);
  if (missing.length) throw new ApiError(422, "upload_refused", `The dump needs the extension(s) ${missing.join(", ")}, which this Postgres does not have; install them first.`);
  const refused = await refusedExtensions(ctx.clusterSql, partial.database.extensions);
  if (refused.length) throw new ApiError(422, "upload_refused", `The dump creates extension(s) AtlasHub does not create for a project: ${refused.join(", ")}.`);
  return partial;
}

/** A pg_dump archive (custom format starts with PGDMP; tar and other binary files hold NUL bytes) rather than an SQL script. */
async function isArchive(stream: ReadableStream<Uint8Array>) {
  const reader = stream.getReader();
  const head: number[] = [];
  try {
    while (head.length < 512) {
      const { done, value } = await reader.read();
      if (done) break;
      head.push(...value.subarray(0, 512 - head.length));
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return String.fromCharCode(...head.slice(0, 5)) === "PGDMP" || head.includes(0);
}

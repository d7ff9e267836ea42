// `atlashub backup …`: back up, list, download and restore from the server's own shell. The backup
// runs in this process (beside a running serve or not) and its progress goes to standard error;
// standard output is the result (JSON), as for the other commands.
import { createWriteStream } from "node:fs";
import { Writable } from "node:stream";
import type { AppContext } from "../context";
import { recordAudit } from "../platform/audit";
import type { Db } from "../platform/db";
import type { ProjectRow } from "../projects/service";
import * as backups from "./service";
import * as restores from "./restore";

export const backupUsage = `Usage: atlashub backup <subcommand> PROJECT [args] [flags]

  create PROJECT                          back up the project now; progress on standard error, the backup (JSON) on standard output
  list PROJECT                            the project's backups, newest first
  download PROJECT BACKUP FILE            write the backup's dump (pg_dump -Fc, or an uploaded .sql) to FILE
  restore PROJECT BACKUP --mode replace --confirm PROJECT_NAME
  restore PROJECT BACKUP --mode new_project --confirm PROJECT_NAME --name NEW_NAME
                                          restore and wait; a new project's credentials are printed once

PROJECT is the project's id. Settings flags (--data-dir …) as for serve.`;

export const backupFlags = ["--mode", "--confirm", "--name"] as const;

const PROGRESS_EVERY_MS = 500;

export async function runBackupCommand(ctx: AppContext, sub: string, args: string[], flags: Partial<Record<(typeof backupFlags)[number], string>>): Promise<{ output: string; exitCode: number }> {
  const [project = "", backup = "", file = ""] = args;
  const actor = { type: "cli" as const, label: `atlashub backup ${sub}` };
  const record = (action: string, details: Record<string, unknown>) => (db: Db) => recordAudit(db, { actor, action, target: { type: "project", id: project }, details });

  switch (sub) {
    case "create": {
      const started = await backups.startBackup(ctx, project, { trigger: "manual", createdBy: actor.label }, (db, b) => record("backup.create", { backup: b.id })(db));
      const row = await followBackup(ctx, project, started.id);
      return { output: JSON.stringify(backups.presentBackup(row), null, 2), exitCode: row.status === "failed" || row.verify_error ? 1 : 0 };
    }
    case "list": {
      const rows = await backups.listBackups(ctx, project, { limit: 1000, offset: 0 });
      const lines = rows.map((b) => {
        const p = backups.presentBackup(b, { manifest: false });
        return [p.id, p.status.padEnd(9), p.trigger.padEnd(8), p.created_at.toISOString(), `${formatBytes(p.bytes.total)}`.padStart(10), p.failure_reason ?? p.verify_error ?? ""].join("  ");
      });
      return { output: lines.join("\n"), exitCode: 0 };
    }
    case "download": {
      if (!file) throw new Error(`download needs PROJECT BACKUP FILE\n\n${backupUsage}`);
      const row = await backups.getBackup(ctx, project, backup);
      const { stream, bytes } = backups.openDump(ctx, row);
      await stream.pipeTo(Writable.toWeb(createWriteStream(file, { mode: 0o600 })));
      await record("backup.download", { backup })(ctx.sql);
      return { output: `wrote ${bytes} bytes to ${file} (sha256 ${row.manifest!.dump.sha256})`, exitCode: 0 };
    }
    case "restore": {
      const input = restores.restoreSchema.parse({ mode: flags["--mode"], confirm: flags["--confirm"], name: flags["--name"] });
      const started = await restores.startRestore(ctx, project, backup, input, actor.label, {
        restore: (db, details) => record("backup.restore", { backup, ...details })(db),
        createProject: (db: Db, p: ProjectRow) => recordAudit(db, { actor, action: "project.create", target: { type: "project", id: p.id }, details: { name: p.name, restored_from: backup } }),
      });
      await ctx.backups.settled(started.restore.id);
      const row = await restores.getRestore(ctx, started.restore.project_id, started.restore.id);
      const output = { ...restores.presentRestore(row), ...(started.project ? { project: started.project } : {}) };
      return { output: JSON.stringify(output, null, 2), exitCode: row.status === "failed" ? 1 : 0 };
    }
    default:
      throw new Error(`unknown backup subcommand '${sub}'\n\n${backupUsage}`);
  }
}

/** Waits for the backup (and its verification) to end, drawing its progress on standard error. */
async function followBackup(ctx: AppContext, projectId: string, backupId: string) {
  const [files] = await ctx.sql<{ count: number; bytes: string }[]>`
    select count(*)::int as count, coalesce(sum(size), 0)::text as bytes from storage_objects where project_id = ${projectId}`;
  const draw = (row: backups.BackupRow) => process.stderr.write(progressLine(row, files!.count, Number(files!.bytes)) + (process.stderr.isTTY ? "\r" : "\n"));
  const tick = () => backups.getBackup(ctx, projectId, backupId).then(draw, () => {});
  const timer = setInterval(tick, process.stderr.isTTY ? PROGRESS_EVERY_MS : 5_000);
  try {
    await ctx.backups.settled(backupId);
  } finally {
    clearInterval(timer);
  }
  const row = await backups.getBackup(ctx, projectId, backupId);
  draw(row);
  if (process.stderr.isTTY) process.stderr.write("\n");
  return row;
}

/** `[##########----------]  48%  dump 12.3 MB  files 3/7 (1.1 MB of 2.3 MB)  running`: the bar counts files, whose total is known. */
export function progressLine(row: backups.BackupRow, totalFiles: number, totalFileBytes: number) {
  const done = row.status === "running" ? (totalFileBytes > 0 ? Number(row.files_bytes) / totalFileBytes : row.files_count >= totalFiles && row.dump_parts > 0 ? 1 : 0) : 1;
  const width = 20;
  const filled = Math.round(Math.min(1, done) * width);
  const state = row.status === "completed" && row.verify_started_at && !row.verify_error ? "verifying" : row.status;
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${String(Math.round(done * 100)).padStart(3)}%  dump ${formatBytes(Number(row.dump_bytes))}  files ${row.files_count}/${totalFiles} (${formatBytes(Number(row.files_bytes))} of ${formatBytes(totalFileBytes)})  ${state}`;
}

function formatBytes(n: number) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

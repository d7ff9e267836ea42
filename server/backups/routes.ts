import { Hono, type Context, type MiddlewareHandler } from "hono";
import type { AppContext, AppEnv } from "../context";
import { audit } from "../http/auth";
import { parseBody } from "../http/errors";
import * as backups from "./service";
import { checkDownloadSignature, downloadUrlSchema, signDownloadUrl } from "./download";
import { startVerification } from "./verify";
import * as restores from "./restore";
import * as schedules from "./schedule";
import { exportTable } from "./tables";
import { importQuery, importTable, type ImportOptions } from "./tableImport";
import { getProject } from "../projects/service";
import { uploadBackup } from "./upload";
import { errors } from "../http/errors";
import type { Actor } from "../platform/audit";
import * as imports from "./imports";
import { checkUploadSignature, claimUploadUrl, createUploadUrl, importUrlOptions, importUrlSchema, uploadUrlSchema, type UploadPurpose } from "./uploadUrls";

/** /admin/api/projects/:id/backups: create, list, show, delete, download. */
export function backupRoutes(ctx: AppContext) {
  const app = new Hono<AppEnv>();
  const record = (c: Context<AppEnv>, action: string, details: Record<string, unknown>) => (db: Parameters<typeof audit>[0]) =>
    audit(db, c, { action, target: { type: "project", id: c.req.param("id")! }, details });

  app.post("/:id/backups", async (c) => {
    const id = c.req.param("id");
    const actor = c.get("actor");
    const backup = await backups.startBackup(ctx, id, { trigger: "manual", createdBy: actor?.label ?? null }, (db, b) => record(c, "backup.create", { backup: b.id })(db));
    return c.json({ id: backup.id, status: backup.status }, 202);
  });

  app.get("/:id/backups", async (c) => {
    const q = backups.listBackupsQuery.parse(c.req.query());
    const rows = await backups.listBackups(ctx, c.req.param("id"), q);
    return c.json({ items: rows.map((b) => backups.presentBackup(b, { manifest: false })), limit: q.limit, offset: q.offset });
  });

  app.get("/:id/backups/schedule", async (c) => c.json(await schedules.getSchedule(ctx, c.req.param("id"))));

  app.put("/:id/backups/schedule", async (c) => {
    const input = await parseBody(c, schedules.scheduleSchema);
    return c.json(await schedules.updateSchedule(ctx, c.req.param("id"), input, record(c, "backup.schedule.update", input)));
  });

  app.put("/:id/backups/upload", async (c) => {
    const body = streamedBody(c, ctx.config.importMaxBytes);
    return receiveBackupUpload(ctx, c, body, c.get("actor")?.label ?? null);
  });

  app.post("/:id/backups/upload-url", async (c) => {
    const id = c.req.param("id");
    const input = await parseBody(c, uploadUrlSchema);
    if ((await getProject(ctx, id)).status === "purged") throw errors.notFound("project");
    return c.json(await signUpload(ctx, c, { purpose: "backup_upload", projectId: id, expiresIn: input.expires_in, maxBytes: input.max_bytes }), 201);
  });

  app.get("/:id/backups/:backup", async (c) => {
    const { id, backup } = c.req.param();
    return c.json(backups.presentBackup(await backups.getBackup(ctx, id, backup)));
  });

  app.delete("/:id/backups/:backup", async (c) => {
    const { id, backup } = c.req.param();
    await backups.deleteBackup(ctx, id, backup, record(c, "backup.delete", { backup }));
    return c.body(null, 204);
  });

  app.post("/:id/backups/:backup/verify", async (c) => {
    const { id, backup } = c.req.param();
    await startVerification(ctx, id, backup, record(c, "backup.verify", { backup }));
    return c.json({ id: backup, status: "completed", verifying: true }, 202);
  });

  app.post("/:id/backups/:backup/restore", async (c) => {
    const { id, backup } = c.req.param();
    const input = await parseBody(c, restores.restoreSchema);
    const started = await restores.startRestore(ctx, id, backup, input, c.get("actor")?.label ?? null, {
      restore: (db, details) => record(c, "backup.restore", { backup, ...details })(db),
      createProject: (db, p) => audit(db, c, { action: "project.create", target: { type: "project", id: p.id }, details: { name: p.name, restored_from: backup } }),
    });
    // The new project's passwords are shown this once, as at its creation.
    return c.json({ ...restores.presentRestore(started.restore), ...(started.project ? { project: started.project } : {}) }, 202);
  });

  app.get("/:id/restores", async (c) => {
    const q = restores.listRestoresQuery.parse(c.req.query());
    const rows = await restores.listRestores(ctx, c.req.param("id"), q);
    return c.json({ items: rows.map(restores.presentRestore), limit: q.limit, offset: q.offset });
  });

  app.get("/:id/restores/:restore", async (c) => {
    const { id, restore } = c.req.param();
    return c.json(restores.presentRestore(await restores.getRestore(ctx, id, restore)));
  });

  app.post("/:id/restore/rollback", async (c) => {
    const id = c.req.param("id");
    const restore = await restores.rollbackRestore(ctx, id, (db, restoreId) => record(c, "restore.rollback", { restore: restoreId })(db));
    return c.json(restores.presentRestore(restore));
  });

  app.get("/:id/tables/:table/export", async (c) => {
    const { id, table } = c.req.param();
    const query = new URL(c.req.url).searchParams;
    const exported = await exportTable(ctx, id, table, query);
    await record(c, "project.table.export", { table, format: query.get("format") ?? "csv" })(ctx.sql).catch(async (err) => {
      await exported.stream.cancel();
      throw err;
    });
    return new Response(exported.stream, {
      headers: {
        "content-type": exported.contentType,
        "content-disposition": `attachment; filename="${exported.filename.replace(/[^A-Za-z0-9._-]/g, "_")}"`,
        "cache-control": "private, no-store",
      },
    });
  });

  app.post("/:id/tables/:table/import", async (c) => {
    const options = importQuery.parse(c.req.query());
    return receiveImport(ctx, c, options, streamedBody(c, ctx.config.importMaxBytes));
  });

  app.get("/:id/imports", async (c) => {
    const q = imports.listImportsQuery.parse(c.req.query());
    const rows = await imports.listImports(ctx, c.req.param("id"), q);
    return c.json({ items: rows.map(imports.presentImport), limit: q.limit, offset: q.offset });
  });

  app.get("/:id/imports/:import", async (c) => {
    const { id, import: importId } = c.req.param();
    return c.json(imports.presentImport(await imports.getImport(ctx, id, importId)));
  });

  app.post("/:id/tables/:table/import-url", async (c) => {
    const { id, table } = c.req.param();
    const input = await parseBody(c, importUrlSchema);
    const options = importUrlOptions(input);
    await getProject(ctx, id);
    return c.json(await signUpload(ctx, c, { purpose: "table_import", projectId: id, table, options, expiresIn: input.expires_in, maxBytes: input.max_bytes }), 201);
  });

  app.post("/:id/backups/:backup/download-url", async (c) => {
    const { id, backup } = c.req.param();
    const input = await parseBody(c, downloadUrlSchema);
    const row = await backups.getBackup(ctx, id, backup);
    backups.assertUsable(row);
    await record(c, "backup.download_url", { backup, expires_in: input.expires_in })(ctx.sql);
    return c.json(signDownloadUrl(ctx.masterKey, baseUrl(ctx, c), id, backup, input.expires_in));
  });

  app.get("/:id/backups/:backup/download", async (c) => {
    const { id, backup } = c.req.param();
    const row = await backups.getBackup(ctx, id, backup);
    const response = dumpResponse(ctx, row);
    await record(c, "backup.download", { backup })(ctx.sql);
    return response;
  });

  return app;
}

/**
 * GET …/backups/:backup/download?exp=…&sig=…: a signed URL is its own credential, so this runs before
 * requireAdmin (which it would fail). Requests without a signature go on to requireAdmin and the
 * authenticated route.
 */
export const signedBackupDownload = (ctx: AppContext): MiddlewareHandler<AppEnv> =>
  async function signedBackupDownload(c, next) {
    if (c.req.query("sig") === undefined) return next();
    const { id, backup } = c.req.param() as { id: string; backup: string };
    // The signature first: without one, nobody learns whether a project or backup exists.
    checkDownloadSignature(ctx.masterKey, id, backup, c.req.query());
    return dumpResponse(ctx, await backups.getBackup(ctx, id, backup));
  };

/**
 * PUT …/backups/upload and PUT …/tables/:table/import with ?exp=…&max=…&nonce=…&sig=…: a signed upload
 * URL is its own credential, checked (before anything is looked up) ahead of requireAdmin; requests
 * without a signature go on to requireAdmin and the authenticated routes.
 */
export const signedUpload = (ctx: AppContext, purpose: UploadPurpose): MiddlewareHandler<AppEnv> =>
  async function signedUpload(c, next) {
    if (c.req.query("sig") === undefined) return next();
    const { id, table } = c.req.param() as { id: string; table?: string };
    const granted = checkUploadSignature(ctx.masterKey, purpose, id, table, c.req.query());
    // A body declared too large is refused before the URL is spent.
    const body = streamedBody(c, Math.min(granted.maxBytes, ctx.config.importMaxBytes));
    const actorOf = (createdBy: string | null) => ({ type: "anonymous", label: createdBy ? `signed URL of ${createdBy}` : "signed URL" }) satisfies Actor;
    const { createdBy } = await claimUploadUrl(ctx, granted.nonce, id, purpose, (db, createdBy) =>
      audit(db, c, {
        action: purpose === "backup_upload" ? "backup.upload_url.used" : "project.table.import_url.used",
        target: { type: "project", id },
        details: { signed_url: granted.nonce, ...(table !== undefined ? { table } : {}) },
        actor: actorOf(createdBy),
      }),
    );
    const via = { nonce: granted.nonce, createdBy, actor: actorOf(createdBy) };
    return purpose === "backup_upload" ? receiveBackupUpload(ctx, c, body, createdBy, via) : receiveImport(ctx, c, granted.options!, body, via);
  };

interface SignedUse {
  nonce: string;
  actor: Actor;
  /** Who asked for the URL. */
  createdBy: string | null;
}

async function receiveBackupUpload(ctx: AppContext, c: Context<AppEnv>, body: ReadableStream<Uint8Array>, createdBy: string | null, via?: SignedUse) {
  const id = c.req.param("id")!;
  const backupId = await uploadBackup(ctx, id, body, createdBy, (db, b) =>
    audit(db, c, { action: "backup.upload", target: { type: "project", id }, details: { backup: b, ...(via ? { signed_url: via.nonce } : {}) }, actor: via?.actor }),
  );
  return c.json(backups.presentBackup(await backups.getBackup(ctx, id, backupId)), 201);
}

/**
 * Runs an import, followed in table_imports (GET …/imports/:import) while it runs. Its id: the signed
 * URL's nonce, else the client's X-Import-Id (a UUID it chose, to poll while this request runs), else
 * a new one; answered in X-Import-Id.
 */
async function receiveImport(ctx: AppContext, c: Context<AppEnv>, options: ImportOptions, body: ReadableStream<Uint8Array>, via?: SignedUse) {
  const { id, table } = c.req.param() as { id: string; table: string };
  const chosen = c.req.header("x-import-id");
  const importId = via?.nonce ?? (chosen === undefined ? undefined : imports.importIdSchema.parse(chosen));
  const tracker = await imports.beginImport(ctx, { id: importId, projectId: id, table, options, createdBy: via ? (via.createdBy ?? null) : (c.get("actor")?.label ?? null) });
  c.header("X-Import-Id", tracker.id);
  let result;
  try {
    result = await importTable(ctx, id, table, options, body, tracker.progress);
  } catch (err) {
    await tracker.fail(err);
    throw err;
  }
  await tracker.succeed(result);
  if (!options.dry_run) {
    const details = { table, format: options.format, mode: options.mode, rows: result.rows, ...(via ? { signed_url: via.nonce } : {}) };
    await audit(ctx.sql, c, { action: "project.table.import", target: { type: "project", id }, details, actor: via?.actor });
  }
  return c.json(result);
}

/** Signs an upload URL; its creation is audited with who asked. */
async function signUpload(ctx: AppContext, c: Context<AppEnv>, target: Omit<Parameters<typeof createUploadUrl>[2], "createdBy">) {
  const action = target.purpose === "backup_upload" ? "backup.upload_url" : "project.table.import_url";
  const signed = await createUploadUrl(ctx, baseUrl(ctx, c), { ...target, createdBy: c.get("actor")?.label ?? null }, (db, nonce, maxBytes) =>
    audit(db, c, {
      action,
      target: { type: "project", id: target.projectId },
      details: { signed_url: nonce, expires_in: target.expiresIn, max_bytes: maxBytes, ...(target.table !== undefined ? { table: target.table, options: target.options } : {}) },
    }),
  );
  const { nonce, ...shown } = signed;
  // An import's id is its URL's nonce: whoever holds the URL can be told where to follow it.
  return target.purpose === "table_import" ? { ...shown, import_id: nonce } : shown;
}

function dumpResponse(ctx: AppContext, row: backups.BackupRow) {
  const { stream, bytes } = backups.openDump(ctx, row);
  const stamp = (row.completed_at ?? row.created_at).toISOString().replace(/[:]/g, "").replace(/\..*$/, "Z");
  const extension = row.manifest!.dump.format === "plain" ? "sql" : "dump";
  const name = `${row.manifest!.project.name}-${stamp}.${extension}`.replace(/[^A-Za-z0-9._-]/g, "_");
  return new Response(stream, {
    headers: {
      "content-type": "application/octet-stream",
      "content-length": String(bytes),
      "content-disposition": `attachment; filename="${name}"`,
      "cache-control": "private, no-store",
      "x-content-sha256": row.manifest!.dump.sha256,
    },
  });
}

/** Where the admin reaches this server: ATLASHUB_PUBLIC_URL, else the request's own origin. */
function baseUrl(ctx: AppContext, c: Context) {
  if (ctx.config.publicUrl) return ctx.config.publicUrl;
  const url = new URL(c.req.url);
  if (ctx.config.trustProxy) {
    const proto = c.req.header("x-forwarded-proto")?.split(",")[0]?.trim();
    const host = c.req.header("x-forwarded-host")?.split(",")[0]?.trim();
    if (proto === "http" || proto === "https") url.protocol = proto;
    if (host && /^[A-Za-z0-9.:\[\]-]+$/.test(host)) url.host = host;
  }
  return url.origin;
}

const IMPORT_PATH = /^\/admin\/api\/projects\/[^/]+\/tables\/[^/]+\/import$/;
const UPLOAD_PATH = /^\/admin\/api\/projects\/[^/]+\/backups\/upload$/;

/** A table import or a dump upload (signed or not) streams its file with a limit of its own, past the global body limit. */
export function isTableImport(c: Context) {
  return ((c.req.method === "POST" || c.req.method === "PUT") && IMPORT_PATH.test(c.req.path)) || (c.req.method === "PUT" && UPLOAD_PATH.test(c.req.path));
}

/** The request's body as a stream of at most `limit` bytes: 413 at once when Content-Length says more, else once more has come. */
function streamedBody(c: Context, limit: number) {
  if (Number(c.req.header("content-length") ?? 0) > limit) throw errors.payloadTooLarge(limit);
  return capped(c.req.raw.body ?? new ReadableStream({ start: (ctl) => ctl.close() }), limit);
}

/** The body, failing with 413 once more than `limit` bytes have come. */
function capped(body: ReadableStream<Uint8Array>, limit: number) {
  let seen = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > limit) throw errors.payloadTooLarge(limit);
        controller.enqueue(chunk);
      },
    }),
  );
}

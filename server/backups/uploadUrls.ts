// Signed upload URLs: a dump to take as a backup (PUT …/backups/upload) or a file to import into a
// table (PUT …/tables/:table/import), sent by a script or a browser without the admin's session. The
// URL is the authenticated endpoint's path with exp, max, nonce, the import's options and sig: an
// HMAC-SHA256 (the signer of storage and of backup downloads, under a key of its own) over the method,
// the project, what the URL is for, the table, the options, the nonce, the expiry and the size limit,
// so none of them can be changed. Each URL is good for one request: the first whose signature passes
// sets its row's used_at (one conditional UPDATE, so two instances cannot both take it), whatever comes
// of the upload after.
import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { AppContext } from "../context";
import type { Db } from "../platform/db";
import { errors } from "../http/errors";
import { signGrant, verifyGrant, type UrlGrant } from "../engines/storage/signer";
import { backupUrlKey } from "./download";
import { importQuery, type ImportOptions } from "./tableImport";

const HKDF_INFO = "atlashub backup upload url v1";
const DEFAULT_EXPIRY_S = 600;
const MAX_EXPIRY_S = 24 * 3600;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export type UploadPurpose = "backup_upload" | "table_import";

/** The import options a URL may carry, as the query parameters of POST …/import. */
const IMPORT_OPTIONS = ["format", "mode", "on_conflict", "dry_run", "mapping", "encoding"] as const;

export const uploadUrlSchema = z.strictObject({
  expires_in: z.number().int().min(1).max(MAX_EXPIRY_S, "must be at most 24 hours (86400 s)").default(DEFAULT_EXPIRY_S),
  /** At most ATLASHUB_IMPORT_MAX_BYTES (the default). */
  max_bytes: z.number().int().min(1).optional(),
});

export const importUrlSchema = uploadUrlSchema.extend({
  format: z.enum(["csv", "ndjson", "json"]).optional(),
  mode: z.enum(["insert", "upsert"]).optional(),
  on_conflict: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
  dry_run: z.boolean().optional(),
  mapping: z.record(z.string(), z.string().nullable()).optional(),
  encoding: z.string().optional(),
});

/** The JSON options of an import URL as the query parameters POST …/import takes, checked by the same schema. */
export function importUrlOptions(input: z.infer<typeof importUrlSchema>): Record<string, string> {
  const raw: Record<string, string | undefined> = {
    format: input.format,
    mode: input.mode,
    on_conflict: Array.isArray(input.on_conflict) ? input.on_conflict.join(",") : input.on_conflict,
    dry_run: input.dry_run === undefined ? undefined : String(input.dry_run),
    mapping: input.mapping === undefined ? undefined : JSON.stringify(input.mapping),
    encoding: input.encoding,
  };
  const given = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined)) as Record<string, string>;
  importQuery.parse(given);
  return given;
}

interface UploadTarget {
  purpose: UploadPurpose;
  projectId: string;
  /** Imports only. */
  table?: string;
  /** Imports only: the query parameters of the import. */
  options: Record<string, string>;
  nonce: string;
  expires: number;
  maxBytes: number;
}

function grantFor(t: UploadTarget): UrlGrant {
  const options = IMPORT_OPTIONS.filter((name) => t.options[name] !== undefined).map((name) => [name, t.options[name]]);
  // One JSON array in the grant's key: no table name or option value can make two targets sign alike.
  return { method: "PUT", project: t.projectId, bucket: t.purpose, key: JSON.stringify([t.table ?? null, t.nonce, options]), expires: t.expires, maxBytes: t.maxBytes };
}

export function uploadPath(projectId: string, purpose: UploadPurpose, table?: string) {
  return purpose === "backup_upload" ? `/admin/api/projects/${projectId}/backups/upload` : `/admin/api/projects/${projectId}/tables/${encodeURIComponent(table!)}/import`;
}

/**
 * Records a new signed upload URL (and, through `record`, the audit entry of its creation in the same
 * transaction) and answers it. URLs that expired an hour ago or more are forgotten on the way.
 */
export async function createUploadUrl(
  ctx: AppContext,
  baseUrl: string,
  target: { purpose: UploadPurpose; projectId: string; table?: string; options?: Record<string, string>; expiresIn: number; maxBytes?: number; createdBy: string | null },
  record: (db: Db, nonce: string, maxBytes: number) => Promise<unknown>,
  nowMs = Date.now(),
) {
  const limit = ctx.config.importMaxBytes;
  if (target.maxBytes !== undefined && target.maxBytes > limit) throw errors.unprocessable(`max_bytes may be at most ATLASHUB_IMPORT_MAX_BYTES (${limit}).`);
  const signed: UploadTarget = {
    purpose: target.purpose,
    projectId: target.projectId,
    table: target.table,
    options: target.options ?? {},
    nonce: randomUUID(),
    expires: Math.floor(nowMs / 1000) + target.expiresIn,
    maxBytes: target.maxBytes ?? limit,
  };
  await ctx.sql.begin(async (tx) => {
    await tx`delete from signed_uploads where expires_at < now() - interval '1 hour'`;
    await tx`
      insert into signed_uploads (nonce, project_id, purpose, created_by, expires_at)
      values (${signed.nonce}, ${signed.projectId}, ${signed.purpose}, ${target.createdBy}, to_timestamp(${signed.expires}))`;
    await record(tx, signed.nonce, signed.maxBytes);
  });
  const sig = signGrant(backupUrlKey(ctx.masterKey, HKDF_INFO), grantFor(signed));
  const query = new URLSearchParams({ ...signed.options, exp: String(signed.expires), max: String(signed.maxBytes), nonce: signed.nonce, sig });
  return {
    url: `${baseUrl}${uploadPath(signed.projectId, signed.purpose, signed.table)}?${query}`,
    method: "PUT" as const,
    expires_at: new Date(signed.expires * 1000).toISOString(),
    max_bytes: signed.maxBytes,
    nonce: signed.nonce,
  };
}

/**
 * Throws 403 invalid_signature / signature_expired unless the query signs this very upload; looks
 * nothing up (the HMAC is compared in constant time first). Answers what the URL grants.
 */
export function checkUploadSignature(masterKey: Buffer, purpose: UploadPurpose, projectId: string, table: string | undefined, query: Record<string, string>) {
  const expires = Number(query.exp);
  const maxBytes = Number(query.max);
  const nonce = query.nonce ?? "";
  if (!Number.isSafeInteger(expires) || !Number.isSafeInteger(maxBytes) || typeof query.sig !== "string" || !UUID.test(nonce)) throw errors.invalidSignature();
  const options: Record<string, string> = {};
  if (purpose === "table_import") for (const name of IMPORT_OPTIONS) if (query[name] !== undefined) options[name] = query[name];
  const target: UploadTarget = { purpose, projectId, table, options, nonce, expires, maxBytes };
  const check = verifyGrant(backupUrlKey(masterKey, HKDF_INFO), grantFor(target), query.sig);
  if (check === "expired") throw errors.signatureExpired();
  if (check !== "valid") throw errors.invalidSignature();
  return { nonce, maxBytes, options: purpose === "table_import" ? (importQuery.parse(options) as ImportOptions) : undefined };
}

/**
 * Takes the URL's one use: 403 signed_url_used when it was taken before. `record` writes the audit
 * entry of the use in the same transaction, so a spent URL always has one, whatever comes of the
 * upload after (a failed or dry-run import leaves no other). Answers who asked for the URL.
 */
export async function claimUploadUrl(
  ctx: AppContext,
  nonce: string,
  projectId: string,
  purpose: UploadPurpose,
  record: (db: Db, createdBy: string | null) => Promise<unknown>,
) {
  return ctx.sql.begin(async (tx) => {
    const [row] = await tx<{ created_by: string | null }[]>`
      update signed_uploads set used_at = now()
      where nonce = ${nonce} and project_id = ${projectId} and purpose = ${purpose} and used_at is null
      returning created_by`;
    if (!row) throw errors.signedUrlUsed();
    await record(tx, row.created_by);
    return { createdBy: row.created_by };
  });
}

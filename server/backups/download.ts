// Signed download URLs of a backup's dump: the admin API path of the download with an expiry and an
// HMAC in the query, so a browser link, curl or wget can fetch it without the admin's credentials.
// Signed with a key of their own (HKDF of the master key, another label than storage URLs), so no
// storage URL's signature can ever pass for a backup's, nor the other way round.
import { hkdfSync } from "node:crypto";
import { z } from "zod";
import { errors } from "../http/errors";
import { signGrant, verifyGrant, type UrlGrant } from "../engines/storage/signer";
import { backupBucket } from "./store";

const HKDF_INFO = "atlashub backup download url v1";
const DEFAULT_EXPIRY_S = 900;
const MAX_EXPIRY_S = 24 * 3600;

export const downloadUrlSchema = z.object({
  expires_in: z.number().int().min(1).max(MAX_EXPIRY_S, "must be at most 24 hours (86400 s)").default(DEFAULT_EXPIRY_S),
});

const keys = new Map<string, WeakMap<Buffer, Buffer>>();
/** The signing key of one kind of backup URL: HKDF of the master key under its own label. */
export function backupUrlKey(masterKey: Buffer, info: string) {
  let byMaster = keys.get(info);
  if (!byMaster) keys.set(info, (byMaster = new WeakMap()));
  let key = byMaster.get(masterKey);
  if (!key) byMaster.set(masterKey, (key = Buffer.from(hkdfSync("sha256", masterKey, Buffer.alloc(0), info, 32))));
  return key;
}
const signingKey = (masterKey: Buffer) => backupUrlKey(masterKey, HKDF_INFO);

const grantFor = (projectId: string, backupId: string, expires: number): UrlGrant => ({ method: "GET", project: projectId, bucket: backupBucket(backupId), key: "dump", expires });

export const downloadPath = (projectId: string, backupId: string) => `/admin/api/projects/${projectId}/backups/${backupId}/download`;

export function signDownloadUrl(masterKey: Buffer, baseUrl: string, projectId: string, backupId: string, expiresIn: number, nowMs = Date.now()) {
  const expires = Math.floor(nowMs / 1000) + expiresIn;
  const sig = signGrant(signingKey(masterKey), grantFor(projectId, backupId, expires));
  return { url: `${baseUrl}${downloadPath(projectId, backupId)}?${new URLSearchParams({ exp: String(expires), sig })}`, expires_at: new Date(expires * 1000).toISOString() };
}

/** Throws 403 invalid_signature / signature_expired unless the query signs this very download. */
export function checkDownloadSignature(masterKey: Buffer, projectId: string, backupId: string, query: Record<string, string>) {
  const expires = Number(query.exp);
  if (!Number.isSafeInteger(expires) || typeof query.sig !== "string") throw errors.invalidSignature();
  const check = verifyGrant(signingKey(masterKey), grantFor(projectId, backupId, expires), query.sig);
  if (check === "expired") throw errors.signatureExpired();
  if (check !== "valid") throw errors.invalidSignature();
}

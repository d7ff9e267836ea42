// Signed storage URLs of the fs driver: an HMAC-SHA256 over everything the URL grants (method,
// object, expiry, size limit, content type, asking key), keyed by a key derived from the master
// key. Machinery without app imports: the storage service decides what to grant, this only signs
// and checks.
import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";

export interface UrlGrant {
  method: "GET" | "PUT";
  project: string;
  bucket: string;
  key: string;
  /** Unix time in seconds after which the URL stops working. */
  expires: number;
  /** Uploads only: the largest body accepted. */
  maxBytes?: number;
  /** Uploads only: the Content-Type the upload must carry. */
  contentType?: string;
  /** The API key that asked for the URL: checked to be still valid when the URL is used, and recorded with an uploaded object. */
  uploadedBy?: string;
}

export type GrantCheck = "valid" | "expired" | "invalid";

const HKDF_INFO = "atlashub storage url signature v1";

/** The signing key: HKDF-SHA256 of the master key, so the master key itself never signs anything public. */
export function deriveSigningKey(masterKey: Buffer): Buffer {
  return Buffer.from(hkdfSync("sha256", masterKey, Buffer.alloc(0), HKDF_INFO, 32));
}

// A JSON array is an unambiguous encoding: no choice of key or content type can make two different
// grants serialise to the same text (a plain "\n".join could, with a newline in a field).
function canonical(grant: UrlGrant) {
  return JSON.stringify([
    "v1",
    grant.method,
    grant.project,
    grant.bucket,
    grant.key,
    grant.expires,
    grant.maxBytes ?? null,
    grant.contentType ?? null,
    grant.uploadedBy ?? null,
  ]);
}

function mac(signingKey: Buffer, grant: UrlGrant) {
  return createHmac("sha256", signingKey).update(canonical(grant)).digest();
}

/** The signature for a URL carrying `grant`, base64url. */
export function signGrant(signingKey: Buffer, grant: UrlGrant): string {
  return mac(signingKey, grant).toString("base64url");
}

/** Checks a signature in constant time; the expiry is looked at only for an authentic grant. */
export function verifyGrant(signingKey: Buffer, grant: UrlGrant, signature: string, nowMs = Date.now()): GrantCheck {
  // Compared as text: base64url of 32 bytes has spare bits in its last character, so comparing the
  // decoded bytes would accept more than one spelling of a signature.
  const expected = Buffer.from(mac(signingKey, grant).toString("base64url"));
  const given = Buffer.from(signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return "invalid";
  return grant.expires * 1000 > nowMs ? "valid" : "expired";
}

// The shape of an API key: "ah_pk_" (publishable) or "ah_sk_" (secret), 32 random bytes in
// base64url (43 characters), then a 6-character checksum. The prefix makes a leaked key recognisable
// (secret scanners can match it); the checksum rejects a mistyped or made-up key before any lookup.
// The checksum is an HMAC keyed by a key derived from the master key, so only this installation can
// make keys that pass it: anyone else's made-up key costs no control-plane lookup.
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";

export type KeyKind = "publishable" | "secret";

/**
 * `keyed`: the checksum is this installation's HMAC. `legacy`: only the unkeyed SHA-256 checksum of
 * keys made before the HMAC matches — such a key is a real one only if the database has it.
 */
export type KeyShape = { kind: KeyKind; checksum: "keyed" | "legacy" };

const PREFIX: Record<KeyKind, string> = { publishable: "ah_pk_", secret: "ah_sk_" };
const SHAPE = /^ah_(pk|sk)_([A-Za-z0-9_-]{43})([A-Za-z0-9_-]{6})$/;
const HKDF_INFO = "atlashub api key checksum v1";

/** The checksum key: HKDF-SHA256 of the master key, so the master key itself never checks anything public. */
export function deriveChecksumKey(masterKey: Buffer): Buffer {
  return Buffer.from(hkdfSync("sha256", masterKey, Buffer.alloc(0), HKDF_INFO, 32));
}

function checksum(checksumKey: Buffer, prefix: string, body: string) {
  return createHmac("sha256", checksumKey).update(prefix + body).digest("base64url").slice(0, 6);
}

/** The checksum of keys made before it was keyed. */
export function legacyChecksum(prefix: string, body: string) {
  return (Bun.SHA256.hash(prefix + body, "base64url") as string).slice(0, 6);
}

export function newKey(kind: KeyKind, checksumKey: Buffer): string {
  const body = randomBytes(32).toString("base64url");
  return PREFIX[kind] + body + checksum(checksumKey, PREFIX[kind], body);
}

/** The kind of a well-formed key and which checksum it passes, else undefined (no lookup needed). */
export function parseKey(key: string, checksumKey: Buffer): KeyShape | undefined {
  const m = SHAPE.exec(key);
  if (!m) return undefined;
  const kind: KeyKind = m[1] === "pk" ? "publishable" : "secret";
  const given = Buffer.from(m[3]!);
  // Compared in constant time: a timing difference would let a caller find the keyed checksum of a made-up body.
  if (timingSafeEqual(Buffer.from(checksum(checksumKey, PREFIX[kind], m[2]!)), given)) return { kind, checksum: "keyed" };
  if (legacyChecksum(PREFIX[kind], m[2]!) === m[3]) return { kind, checksum: "legacy" };
  return undefined;
}

/** What lists show: enough to tell keys apart, nothing that helps guess one. */
export function keyPrefix(key: string) {
  return key.slice(0, 12);
}

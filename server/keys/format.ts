// The shape of an API key: "ah_pk_" (publishable) or "ah_sk_" (secret), 32 random bytes in
// base64url (43 characters), then a 6-character checksum. The prefix makes a leaked key recognisable
// (secret scanners can match it); the checksum rejects a mistyped or made-up key before any lookup.
import { randomBytes } from "node:crypto";

export type KeyKind = "publishable" | "secret";

const PREFIX: Record<KeyKind, string> = { publishable: "ah_pk_", secret: "ah_sk_" };
const SHAPE = /^ah_(pk|sk)_([A-Za-z0-9_-]{43})([A-Za-z0-9_-]{6})$/;

function checksum(prefix: string, body: string) {
  return (Bun.SHA256.hash(prefix + body, "base64url") as string).slice(0, 6);
}

export function newKey(kind: KeyKind): string {
  const body = randomBytes(32).toString("base64url");
  return PREFIX[kind] + body + checksum(PREFIX[kind], body);
}

/** The kind of a well-formed key whose checksum matches, else undefined (no lookup needed). */
export function parseKey(key: string): KeyKind | undefined {
  const m = SHAPE.exec(key);
  if (!m) return undefined;
  const kind: KeyKind = m[1] === "pk" ? "publishable" : "secret";
  return checksum(PREFIX[kind], m[2]!) === m[3] ? kind : undefined;
}

/** What lists show: enough to tell keys apart, nothing that helps guess one. */
export function keyPrefix(key: string) {
  return key.slice(0, 12);
}

import { createCipheriv, createDecipheriv, randomBytes, timingSafeEqual } from "node:crypto";

// AES-256-GCM with a 12-byte random nonce. Stored form: "v1:" + base64url(nonce | ciphertext | tag).

export function encryptSecret(masterKey: Buffer, plaintext: string): string {
  const nonce = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", masterKey, nonce);
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return "v1:" + Buffer.concat([nonce, body, cipher.getAuthTag()]).toString("base64url");
}

export function decryptSecret(masterKey: Buffer, stored: string): string {
  if (!stored.startsWith("v1:")) throw new Error("unknown secret format");
  const raw = Buffer.from(stored.slice(3), "base64url");
  const decipher = createDecipheriv("aes-256-gcm", masterKey, raw.subarray(0, 12));
  decipher.setAuthTag(raw.subarray(raw.length - 16));
  return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString("utf8");
}

export function sha256Hex(value: string): string {
  return Bun.SHA256.hash(value, "hex") as string;
}

export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString("base64url");
}

/** A password for Postgres roles: URL-safe so it can sit in a connection string unescaped. */
export function randomPassword(length = 32): string {
  return randomBytes(length).toString("base64url").slice(0, length);
}

export function constantTimeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

import { describe, expect, it } from "bun:test";
import { randomBytes } from "node:crypto";
import { deriveSigningKey, signGrant, verifyGrant, type UrlGrant } from "./signer";

const key = deriveSigningKey(randomBytes(32));
const now = Date.UTC(2030, 0, 1);
const upload: UrlGrant = {
  method: "PUT",
  project: "abcde12345",
  bucket: "uploads",
  key: "users/42/avatar.png",
  expires: now / 1000 + 600,
  maxBytes: 5_000_000,
  contentType: "image/png",
  uploadedBy: "6f1c1e1a-0000-4000-8000-000000000001",
};

describe("signGrant / verifyGrant", () => {
  it("accepts its own signature until the expiry", () => {
    const sig = signGrant(key, upload);
    expect(sig).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(verifyGrant(key, upload, sig, now)).toBe("valid");
    expect(verifyGrant(key, upload, sig, upload.expires * 1000 - 1)).toBe("valid");
  });

  it("answers expired at and after the expiry", () => {
    const sig = signGrant(key, upload);
    expect(verifyGrant(key, upload, sig, upload.expires * 1000)).toBe("expired");
    expect(verifyGrant(key, upload, sig, upload.expires * 1000 + 86_400_000)).toBe("expired");
  });

  const tampered: [string, Partial<UrlGrant>][] = [
    ["method", { method: "GET" }],
    ["project", { project: "zzzzz12345" }],
    ["bucket", { bucket: "private" }],
    ["key", { key: "users/43/avatar.png" }],
    ["key (prefix of the signed one)", { key: "users/42/avatar.pn" }],
    ["expiry", { expires: upload.expires + 1 }],
    ["max size", { maxBytes: 5_000_001 }],
    ["max size removed", { maxBytes: undefined }],
    ["content type", { contentType: "text/html" }],
    ["content type removed", { contentType: undefined }],
    ["uploading key", { uploadedBy: "6f1c1e1a-0000-4000-8000-000000000002" }],
  ];
  for (const [field, change] of tampered) {
    it(`rejects a changed ${field}`, () => {
      const sig = signGrant(key, upload);
      expect(verifyGrant(key, { ...upload, ...change }, sig, now)).toBe("invalid");
    });
  }

  it("cannot be fooled by moving text between fields", () => {
    const a: UrlGrant = { method: "GET", project: "abcde12345", bucket: "uploads", key: "a/b", expires: now / 1000 + 60 };
    const b: UrlGrant = { ...a, bucket: "uploads\",\"a", key: "b" };
    expect(verifyGrant(key, b, signGrant(key, a), now)).toBe("invalid");
  });

  it("rejects a changed, truncated, padded or malformed signature", () => {
    const sig = signGrant(key, upload);
    const flipped = Buffer.from(sig, "base64url");
    flipped[0]! ^= 1;
    // Same decoded bytes, other spelling: the last character's spare bits.
    const last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".indexOf(sig.at(-1)!);
    const respelled = sig.slice(0, -1) + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last ^ 1];
    for (const bad of [respelled, flipped.toString("base64url"), sig.slice(0, -1), sig + "A", "", "x".repeat(43), sig.replace(/.$/, "="), "%%%"]) {
      expect(verifyGrant(key, upload, bad, now)).toBe("invalid");
    }
  });

  it("rejects a signature made with another master key", () => {
    const other = deriveSigningKey(randomBytes(32));
    expect(verifyGrant(key, upload, signGrant(other, upload), now)).toBe("invalid");
  });

  it("derives the signing key deterministically and not as the master key itself", () => {
    const master = randomBytes(32);
    expect(deriveSigningKey(master).equals(deriveSigningKey(master))).toBe(true);
    expect(deriveSigningKey(master).equals(master)).toBe(false);
  });
});

import { describe, expect, it } from "bun:test";
import { randomBytes } from "node:crypto";
import { constantTimeEqual, decryptSecret, encryptSecret, randomPassword, sha256Hex } from "./crypto";

describe("encryptSecret / decryptSecret (AES-256-GCM)", () => {
  const key = randomBytes(32);

  it("round-trips and never stores the plaintext", () => {
    const stored = encryptSecret(key, "s3cret-password");
    expect(stored.startsWith("v1:")).toBe(true);
    expect(stored).not.toContain("s3cret");
    expect(decryptSecret(key, stored)).toBe("s3cret-password");
  });

  it("uses a fresh nonce each time", () => {
    expect(encryptSecret(key, "same")).not.toBe(encryptSecret(key, "same"));
  });

  it("rejects a tampered ciphertext and a wrong key", () => {
    const stored = encryptSecret(key, "value");
    const raw = Buffer.from(stored.slice(3), "base64url");
    raw[14]! ^= 1;
    expect(() => decryptSecret(key, "v1:" + raw.toString("base64url"))).toThrow();
    expect(() => decryptSecret(randomBytes(32), stored)).toThrow();
  });
});

describe("helpers", () => {
  it("hashes with SHA-256 hex", () => {
    expect(sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("makes URL-safe passwords of the asked length", () => {
    const pw = randomPassword(32);
    expect(pw).toHaveLength(32);
    expect(pw).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it("compares in constant time, including different lengths", () => {
    expect(constantTimeEqual("abc", "abc")).toBe(true);
    expect(constantTimeEqual("abc", "abd")).toBe(false);
    expect(constantTimeEqual("abc", "abcd")).toBe(false);
  });
});

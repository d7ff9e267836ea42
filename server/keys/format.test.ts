import { describe, expect, it } from "bun:test";
import { randomBytes } from "node:crypto";
import { deriveChecksumKey, keyPrefix, legacyChecksum, newKey, parseKey } from "./format";

const masterKey = randomBytes(32);
const checksumKey = deriveChecksumKey(masterKey);

/** A key as AtlasHub made them before the checksum was keyed. */
function legacyKey(prefix = "ah_sk_") {
  const body = randomBytes(32).toString("base64url");
  return prefix + body + legacyChecksum(prefix, body);
}

describe("API key format", () => {
  it("makes recognisable keys of each kind that parse back with the keyed checksum", () => {
    const pk = newKey("publishable", checksumKey);
    const sk = newKey("secret", checksumKey);
    expect(pk).toMatch(/^ah_pk_[A-Za-z0-9_-]{49}$/);
    expect(sk).toMatch(/^ah_sk_[A-Za-z0-9_-]{49}$/);
    expect(parseKey(pk, checksumKey)).toEqual({ kind: "publishable", checksum: "keyed" });
    expect(parseKey(sk, checksumKey)).toEqual({ kind: "secret", checksum: "keyed" });
    expect(keyPrefix(sk)).toBe(sk.slice(0, 12));
  });

  it("rejects every single-character typo through the checksum", () => {
    const key = newKey("secret", checksumKey);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let rejected = 0;
    for (let i = 6; i < key.length; i++) {
      const other = alphabet[(alphabet.indexOf(key[i]!) + 1) % alphabet.length]!;
      if (parseKey(key.slice(0, i) + other + key.slice(i + 1), checksumKey) === undefined) rejected++;
    }
    expect(rejected).toBe(key.length - 6);
  });

  it("rejects the wrong prefix, length or alphabet", () => {
    const key = newKey("secret", checksumKey);
    for (const bad of ["", key.replace("ah_sk_", "ah_pk_"), key + "x", key.slice(0, -1), key.replace(/.$/, "="), "ah_at_" + key.slice(6)]) {
      expect(parseKey(bad, checksumKey)).toBeUndefined();
    }
  });

  it("rejects a key made by another installation (another master key): nobody else can mint keys that pass", () => {
    const elsewhere = deriveChecksumKey(randomBytes(32));
    let passed = 0;
    for (let i = 0; i < 200; i++) if (parseKey(newKey("secret", elsewhere), checksumKey)) passed++;
    expect(passed).toBe(0);
  });

  it("tells a key with the old unkeyed checksum apart, as legacy", () => {
    expect(parseKey(legacyKey(), checksumKey)).toEqual({ kind: "secret", checksum: "legacy" });
    expect(parseKey(legacyKey("ah_pk_"), checksumKey)).toEqual({ kind: "publishable", checksum: "legacy" });
  });
});

describe("verifyKey", () => {
  it("turns away a malformed, mistyped or foreign key without asking the database; looks up keyed and legacy ones", async () => {
    const { verifyKey } = await import("./service");
    const postgres = (await import("postgres")).default;
    // A pool that fails any query it is asked to run: nothing may reach it.
    const unreachable = postgres({ host: "127.0.0.1", port: 1, max: 1, connect_timeout: 1, onnotice: () => {} });
    const ctx = { sql: unreachable, masterKey };
    const address = () => "192.0.2.1";
    const key = newKey("secret", checksumKey);
    const typo = key.slice(0, -1) + (key.endsWith("A") ? "B" : "A");
    const foreign = newKey("secret", deriveChecksumKey(randomBytes(32)));
    for (const bad of ["", "ah_sk_short", typo, foreign]) expect(await verifyKey(ctx, bad, address)).toBeUndefined();
    await expect(verifyKey(ctx, key, address)).rejects.toThrow();
    await expect(verifyKey(ctx, legacyKey(), address)).rejects.toThrow();
    await unreachable.end({ timeout: 0 });
  });
});

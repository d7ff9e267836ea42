import { describe, expect, it } from "bun:test";
import { keyPrefix, newKey, parseKey } from "./format";

describe("API key format", () => {
  it("makes recognisable keys of each kind that parse back", () => {
    const pk = newKey("publishable");
    const sk = newKey("secret");
    expect(pk).toMatch(/^ah_pk_[A-Za-z0-9_-]{49}$/);
    expect(sk).toMatch(/^ah_sk_[A-Za-z0-9_-]{49}$/);
    expect(parseKey(pk)).toBe("publishable");
    expect(parseKey(sk)).toBe("secret");
    expect(keyPrefix(sk)).toBe(sk.slice(0, 12));
  });

  it("rejects every single-character typo through the checksum", () => {
    const key = newKey("secret");
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let rejected = 0;
    for (let i = 6; i < key.length; i++) {
      const other = alphabet[(alphabet.indexOf(key[i]!) + 1) % alphabet.length]!;
      if (parseKey(key.slice(0, i) + other + key.slice(i + 1)) === undefined) rejected++;
    }
    expect(rejected).toBe(key.length - 6);
  });

  it("rejects the wrong prefix, length or alphabet", () => {
    const key = newKey("secret");
    for (const bad of ["", key.replace("ah_sk_", "ah_pk_"), key + "x", key.slice(0, -1), key.replace(/.$/, "="), "ah_at_" + key.slice(6)]) {
      expect(parseKey(bad)).toBeUndefined();
    }
  });
});

describe("verifyKey", () => {
  it("turns away a malformed or mistyped key without asking the database", async () => {
    const { verifyKey } = await import("./service");
    const postgres = (await import("postgres")).default;
    // A pool that fails any query it is asked to run: nothing may reach it.
    const unreachable = postgres({ host: "127.0.0.1", port: 1, max: 1, connect_timeout: 1, onnotice: () => {} });
    const key = newKey("secret");
    const typo = key.slice(0, -1) + (key.endsWith("A") ? "B" : "A");
    for (const bad of ["", "ah_sk_short", typo]) expect(await verifyKey(unreachable, bad)).toBeUndefined();
    await expect(verifyKey(unreachable, key)).rejects.toThrow();
    await unreachable.end({ timeout: 0 });
  });
});

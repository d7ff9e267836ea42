import { describe, expect, it } from "bun:test";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadMasterKey } from "./masterKey";
import { lockDataDir, prepareDataDir } from "./dataDir";
import { registerSecret, tempDir, waitFor } from "../test/harness";

describe("loadMasterKey", () => {
  it("creates <data>/master.key with mode 0600 on first start and reuses it", () => {
    const dir = tempDir("mk");
    const key = loadMasterKey(dir, undefined);
    registerSecret(key.toString("hex"));
    expect(key).toHaveLength(32);
    const path = join(dir, "master.key");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(loadMasterKey(dir, undefined).equals(key)).toBe(true);
    expect(readFileSync(path, "utf8").trim()).toBe(key.toString("hex"));
  });

  it("prefers ATLASHUB_MASTER_KEY and then writes no file", () => {
    const dir = tempDir("mk");
    const hex = "ab".repeat(32);
    expect(loadMasterKey(dir, hex).toString("hex")).toBe(hex);
    expect(() => statSync(join(dir, "master.key"))).toThrow();
  });

  it("refuses a corrupt key file", () => {
    const dir = tempDir("mk");
    writeFileSync(join(dir, "master.key"), "nope");
    expect(() => loadMasterKey(dir, undefined)).toThrow(/not a 64-hex-character key/);
  });
});

describe("data dir", () => {
  it("is traversable but not listable by others", () => {
    const dir = join(tempDir("dd"), "data");
    prepareDataDir(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o711);
  });

  it("is served by one atlashub at a time; a lock left by a dead process is taken over", () => {
    const dir = tempDir("dd");
    writeFileSync(join(dir, "atlashub.pid"), "999999999\n");
    const lock = lockDataDir(dir);
    expect(readFileSync(join(dir, "atlashub.pid"), "utf8").trim()).toBe(String(process.pid));
    if (!("release" in lock)) throw new Error("expected the lock");
    lock.release();
    expect(() => statSync(join(dir, "atlashub.pid"))).toThrow();
  });

  it("reports the holder when another live atlashub holds the data dir (CLI commands then attach)", async () => {
    const dir = tempDir("dd");
    const other = Bun.spawn(["bash", "-c", "exec -a atlashub sleep 30"]);
    try {
      await waitFor("the exec", () => readFileSync(`/proc/${other.pid}/cmdline`, "utf8").startsWith("atlashub"));
      writeFileSync(join(dir, "atlashub.pid"), `${other.pid}\n`);
      expect(lockDataDir(dir)).toEqual({ heldBy: other.pid });
    } finally {
      other.kill();
    }
  });
});

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { log } from "./log";
import { writeFileDurably } from "./files";

/** Returns the 32-byte master key: from the setting, else from <data>/master.key, created (0600) on first start. */
export function loadMasterKey(dataDir: string, fromSetting: string | undefined): Buffer {
  if (fromSetting) return Buffer.from(fromSetting, "hex");
  const path = join(dataDir, "master.key");
  if (existsSync(path)) {
    const hex = readFileSync(path, "utf8").trim();
    if (!/^[0-9a-f]{64}$/i.test(hex)) throw new Error(`${path} is not a 64-hex-character key`);
    return Buffer.from(hex, "hex");
  }
  const key = randomBytes(32);
  writeFileDurably(path, key.toString("hex") + "\n");
  log.info("created master key file", { path });
  return key;
}

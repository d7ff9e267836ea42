// npm postinstall: replaces postgres.js' connection queue with ours (build/patches/postgres-queue.js;
// why is written there). Only the exact file of the pinned version is replaced; any other content
// stops the install, so that an upgrade of postgres.js is looked at instead of silently unpatched.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";

const target = "node_modules/postgres/src/queue.js"; // what Bun loads (package.json exports "bun")
const original = "15e6345adb6708bf3b99ad39fc2231c2fb61de5f6cba4b7a7a6be881482a4ec3"; // postgres 3.4.9
const patch = readFileSync(new URL("./patches/postgres-queue.js", import.meta.url), "utf8");

if (!existsSync(target)) process.exit(0); // postgres is not installed (yet)
const current = readFileSync(target, "utf8");
if (current === patch) process.exit(0);
if (createHash("sha256").update(current).digest("hex") !== original) {
  console.error(`patch-postgres: ${target} is not the file of postgres 3.4.9; check whether the queue fix is still needed (build/patches/postgres-queue.js)`);
  process.exit(1);
}
writeFileSync(target, patch);
console.log("patch-postgres: replaced postgres.js' connection queue (build/patches/postgres-queue.js)");

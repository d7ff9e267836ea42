// The arm64 binary (what a Raspberry Pi runs) under qemu user-mode emulation, on the external engine
// pointed at the suite's x64 cluster. Needs `bash build/setup-qemu.sh` and `npm run build`.
import { describe, expect, it } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { freePort, registerSecret, tempDir } from "../test/harness";
import { arm64Binary, spawnAtlasHub, stopAtlasHubsAfterTests } from "../test/binary";

stopAtlasHubsAfterTests();

const HEALTHY_WITHIN_MS = 90_000;

describe("atlashub-linux-arm64 under qemu", () => {
  it(
    "answers /health 200 on the external engine",
    async () => {
      if (!existsSync("/usr/bin/qemu-aarch64-static") || !existsSync("/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1")) {
        throw new Error("qemu-aarch64-static or the arm64 C library is missing: run `bash build/setup-qemu.sh` (as root)");
      }
      if (!existsSync(arm64Binary)) throw new Error(`${arm64Binary} does not exist: run \`npm run build\``);
      const masterKey = randomBytes(32).toString("hex");
      registerSecret(masterKey);

      const started = Date.now();
      const hub = spawnAtlasHub({
        qemu: true,
        dataDir: tempDir("arm64"),
        env: {
          ATLASHUB_PORT: String(freePort()),
          ATLASHUB_PG_ENGINE: "external",
          ATLASHUB_DATABASE_URL: process.env.ATLASHUB_TEST_DATABASE_URL,
          ATLASHUB_CONTROL_DB: `atlashub_arm64_${randomBytes(5).toString("hex")}`,
          ATLASHUB_MASTER_KEY: masterKey,
        },
      });
      const { body } = await hub.waitHealthy(200, HEALTHY_WITHIN_MS);
      const healthyMs = Date.now() - started;
      console.log(`arm64.test: qemu start to /health 200 took ${healthyMs} ms`);

      expect(body).toMatchObject({ status: "ok", postgres: { ok: true, engine: "external" } });
      expect(hub.output()).toContain('"applied migration"');
      hub.kill("SIGTERM");
      expect(await hub.exited).toBe(0);
    },
    HEALTHY_WITHIN_MS + 30_000,
  );
});

// A Postgres installation without pgvector (a machine where setup-postgres.sh could not build it):
// AtlasHub starts anyway, says so once in the log and reports it in /health.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { cpSync, mkdirSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { startTestServer, type TestServer } from "../test/server";
import { appendToSuiteLog, freePort, tempDir } from "../test/harness";
import { setLogSink } from "../platform/log";

/**
 * A copy of this machine's Postgres 15 without the vector extension. Postgres finds its share
 * directory relative to its own executable, so copied binaries use the copied share dir.
 */
function postgresWithoutPgvector() {
  const root = tempDir("no-pgvector");
  const lib = join(root, "usr/lib/postgresql/15");
  mkdirSync(lib, { recursive: true });
  cpSync("/usr/lib/postgresql/15/bin", join(lib, "bin"), { recursive: true });
  symlinkSync("/usr/lib/postgresql/15/lib", join(lib, "lib"));
  const share = join(root, "usr/share/postgresql/15");
  cpSync("/usr/share/postgresql/15", share, { recursive: true });
  for (const f of readdirSync(join(share, "extension"))) if (f.startsWith("vector")) rmSync(join(share, "extension", f));
  return join(lib, "bin");
}

describe("a Postgres without pgvector", () => {
  let server: TestServer;
  const lines: string[] = [];
  beforeAll(async () => {
    setLogSink((line) => {
      lines.push(line);
      appendToSuiteLog(line);
    });
    server = await startTestServer({ ATLASHUB_PG_ENGINE: "native", ATLASHUB_PG_BIN_DIR: postgresWithoutPgvector(), ATLASHUB_PG_PORT: String(freePort()) });
  });
  afterAll(async () => {
    await server.stop();
    setLogSink(appendToSuiteLog);
  });

  it("starts and reports vector: false in /health", async () => {
    const res = await server.fetch("/health");
    expect(res.status).toBe(200);
    expect((await res.json()).postgres).toMatchObject({ ok: true, engine: "native", extensions: { vector: false, pg_stat_statements: true } });
  });

  it("says so once in the log", () => {
    expect(lines.filter((l) => l.includes("pgvector is not installed"))).toHaveLength(1);
  });
});

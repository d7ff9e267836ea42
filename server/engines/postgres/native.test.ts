import { afterEach, describe, expect, it } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { NativeEngine, smallMachineConf } from "./native";
import { EngineError } from "./engine";
import { appendToSuiteLog, freePort, registerSecret, tempDir, waitFor } from "../../test/harness";
import { setLogSink } from "../../platform/log";

const engines: NativeEngine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop()));
});

function engine(dataDir = tempDir("native"), options: Partial<ConstructorParameters<typeof NativeEngine>[0]> = {}) {
  const masterKey = randomBytes(32);
  registerSecret(masterKey.toString("hex"));
  const e = new NativeEngine({ dataDir, listen: "127.0.0.1", port: freePort(), masterKey, attach: false, initialise: true, memoryMb: 1024, ...options });
  engines.push(e);
  return e;
}

/** What a kill -9 of AtlasHub does to its engine: nobody supervises or stops its Postgres any more. */
function abandon(e: NativeEngine) {
  engines.splice(engines.indexOf(e), 1);
  (e as unknown as { stopping: boolean }).stopping = true;
}

async function query(e: NativeEngine, text: string) {
  const sql = postgres({ ...e.superuser(), max: 1, onnotice: () => {} });
  try {
    return await sql.unsafe(text);
  } finally {
    await sql.end();
  }
}

describe("NativeEngine", () => {
  it("initialises a cluster on first start with a small-machine config and an encrypted superuser password", async () => {
    const dataDir = tempDir("native");
    const e = engine(dataDir);
    await e.start();
    registerSecret(e.superuser().password);
    expect(e.state()).toBe("running");
    const [row] = await query(e, "select current_setting('shared_preload_libraries') as spl, current_setting('password_encryption') as pe, current_setting('max_connections') as mc");
    expect(row).toEqual({ spl: "pg_stat_statements", pe: "scram-sha-256", mc: "50" });
    expect(existsSync(join(dataDir, ".initdb-pw"))).toBe(false);
    const stored = readFileSync(join(dataDir, "pg-superuser.secret"), "utf8");
    expect(stored).toStartWith("v1:");
    expect(stored).not.toContain(e.superuser().password);
    expect(existsSync(join(dataDir, "pg.initializing"))).toBe(false);
    const hba = readFileSync(join(dataDir, "pg", "pg_hba.conf"), "utf8");
    expect(hba).toMatch(/host\s+all\s+all\s+127\.0\.0\.1\/32\s+scram-sha-256/);
  });

  it("keeps client errors, which quote the client's values, out of the log", async () => {
    const lines: string[] = [];
    setLogSink((line) => {
      lines.push(line);
      appendToSuiteLog(line);
    });
    try {
      const e = engine();
      await e.start();
      await query(e, "select 'distinctive-value-4711'::int").catch(() => {});
      // A LOG-level line written after the error: once it is in, the error line would be too.
      await query(e, "select pg_reload_conf()");
      await waitFor("the reload line", () => lines.some((l) => l.includes("reloading configuration files")));
      expect(lines.filter((l) => l.includes("distinctive-value-4711"))).toEqual([]);
    } finally {
      setLogSink(appendToSuiteLog);
    }
  });

  it("restarts Postgres by itself after it is killed with SIGKILL", async () => {
    const e = engine();
    await e.start();
    const pid = e.postmasterPid()!;
    process.kill(pid, "SIGKILL");
    await waitFor("engine to notice", () => e.state() !== "running");
    await waitFor("engine to restart", () => e.state() === "running" && e.postmasterPid() !== pid, 10_000);
    expect((await query(e, "select 1 as one"))[0]).toEqual({ one: 1 });
  });

  it("keeps trying when a restarted Postgres hangs past the ready timeout", async () => {
    const e = engine(tempDir("native"), { readyTimeoutMs: 1_000 });
    await e.start();
    const first = e.postmasterPid()!;
    process.kill(first, "SIGKILL");
    // Freeze the replacement as soon as it appears, before it can accept connections.
    const hung = await waitFor("a replacement postmaster", () => {
      const pid = e.postmasterPid();
      return pid && pid !== first ? pid : undefined;
    }, 10_000);
    process.kill(hung, "SIGSTOP");
    await waitFor("the engine to give up on the hung one and start another", () => e.state() === "running" && e.postmasterPid() !== hung, 30_000);
    expect((await query(e, "select 1 as one"))[0]).toEqual({ one: 1 });
  }, 40_000);

  it("removes a plaintext initdb password file left by a crash during initdb", async () => {
    const dataDir = tempDir("native");
    const masterKey = randomBytes(32);
    await engine(dataDir, { masterKey }).start();
    await engines.pop()!.stop();
    writeFileSync(join(dataDir, ".initdb-pw"), "leftover-plaintext\n");
    await engine(dataDir, { masterKey }).start();
    expect(existsSync(join(dataDir, ".initdb-pw"))).toBe(false);
  });

  it("does not create a new cluster for a CLI command pointed at an empty data dir", async () => {
    const dataDir = tempDir("native");
    const error = await engine(dataDir, { initialise: false }).start().catch((err) => err);
    expect(error).toBeInstanceOf(EngineError);
    expect(error.message).toBe(`no AtlasHub data in ${dataDir}: run 'atlashub serve' once, or point ATLASHUB_DATA_DIR (--data-dir) at the existing data dir`);
    expect(existsSync(join(dataDir, "pg"))).toBe(false);
  });

  it("starts despite a stale postmaster.pid left by a crash", async () => {
    const dataDir = tempDir("native");
    const masterKey = randomBytes(32);
    const first = engine(dataDir, { masterKey });
    await first.start();
    await first.stop();
    // A crash leaves the file behind; its pid may be dead or reused by an unrelated process (here: ourselves).
    const pidFile = join(dataDir, "pg", "postmaster.pid");
    writeFileSync(pidFile, `${process.pid}\n${dataDir}/pg\n0\n0\n\n\n\n`);
    const second = engine(dataDir, { masterKey });
    await second.start();
    expect(second.state()).toBe("running");
  });

  it("stops a Postgres orphaned by a killed AtlasHub and supervises a fresh one", async () => {
    const dataDir = tempDir("native");
    const masterKey = randomBytes(32);
    const orphan = engine(dataDir, { masterKey });
    await orphan.start();
    const orphanPid = orphan.postmasterPid()!;
    abandon(orphan);
    const next = engine(dataDir, { masterKey });
    await next.start();
    expect(next.postmasterPid()).not.toBe(orphanPid);
    expect(() => process.kill(orphanPid, 0)).toThrow();
  });

  it("recognises its orphan through another spelling of the data dir (a symlink)", async () => {
    const real = tempDir("native");
    const link = real + ".link";
    symlinkSync(real, link);
    const masterKey = randomBytes(32);
    const orphan = engine(link, { masterKey });
    await orphan.start();
    const orphanPid = orphan.postmasterPid()!;
    abandon(orphan);
    const next = engine(real, { masterKey, port: orphan.superuser().port });
    await next.start();
    expect(next.postmasterPid()).not.toBe(orphanPid);
    expect(() => process.kill(orphanPid, 0)).toThrow();
  });

  it("attaches to the Postgres of a running serve instead of starting another (CLI commands)", async () => {
    const dataDir = tempDir("native");
    const masterKey = randomBytes(32);
    const owner = engine(dataDir, { masterKey });
    await owner.start();
    const port = owner.superuser().port;
    const cli = engine(dataDir, { masterKey, attach: true, port });
    await cli.start();
    await cli.stop();
    expect(owner.postmasterPid()).toBeDefined();
    expect((await query(owner, "select 1 as one"))[0]).toEqual({ one: 1 });
  });

  it("refuses a data dir the Postgres OS user cannot reach, with a clear message", async () => {
    if (process.getuid?.() !== 0) return; // only root drops to another user
    const locked = join(tempDir("locked"), "inner");
    mkdirSync(locked, { mode: 0o700 });
    chmodSync(locked, 0o700);
    const e = engine(join(locked, "data"));
    mkdirSync(join(locked, "data"));
    const error = await e.start().catch((err) => err);
    expect(error).toBeInstanceOf(EngineError);
    expect(error.message).toMatch(new RegExp(`directory ${locked} is not traversable by OS user \\w+`));
  });

  it("refuses to start when the master key does not match the cluster's", async () => {
    const dataDir = tempDir("native");
    await engine(dataDir).start();
    await engines.pop()!.stop();
    const error = await engine(dataDir).start().catch((err) => err);
    expect(error.message).toMatch(/cannot decrypt .*pg-superuser.secret/);
  });
});

describe("smallMachineConf", () => {
  const settings = (memoryMb: number) =>
    Object.fromEntries(smallMachineConf({ listen: "127.0.0.1", port: 5555, memoryMb }).trim().split("\n").map((l) => l.split(" = ") as [string, string]));

  it("sizes a 1 GB Raspberry Pi conservatively", () => {
    expect(settings(1024)).toMatchObject({ shared_buffers: "128MB", max_connections: "50", work_mem: "4MB", shared_preload_libraries: "'pg_stat_statements'" });
  });

  it("gives an 8 GB machine more, within caps", () => {
    expect(settings(8192)).toMatchObject({ shared_buffers: "1024MB", max_connections: "150", work_mem: "16MB" });
  });

  it("never logs statements (they may carry passwords) and listens where told", () => {
    expect(settings(2048)).toMatchObject({ log_min_error_statement: "panic", log_min_messages: "log", log_statement: "'none'", listen_addresses: "'127.0.0.1'", port: "5555" });
  });
});

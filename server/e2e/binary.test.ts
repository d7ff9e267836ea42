// The compiled x64 binary with its default native engine: first start, supervision of Postgres, crash
// recovery of atlashub itself, clean shutdown, start-up errors and the CLI. Build first: npm run build.
import { describe, expect, it } from "bun:test";
import { randomBytes } from "node:crypto";
import { chownSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../../package.json";
import { freePort, registerSecret, tempDir, waitFor } from "../test/harness";
import {
  childrenOf,
  isRunning,
  postmasterPidFile,
  postmastersOf,
  readSecretsOf,
  spawnAtlasHub,
  stopAtlasHubsAfterTests,
  type AtlasHubProcess,
} from "../test/binary";

stopAtlasHubsAfterTests();

describe("atlashub serve with the native engine", () => {
  // One data dir for the whole block: the cluster is initialised once and every test below restarts,
  // kills or stops atlashub on it. serving() starts a fresh process when the previous test left none.
  const dataDir = join(tempDir("binary"), "data");
  const env = { ATLASHUB_PORT: String(freePort()), ATLASHUB_PG_PORT: String(freePort()) };
  const clusterDir = join(dataDir, "pg");
  let hub: AtlasHubProcess | undefined;

  async function serving() {
    if (!hub?.running()) hub = spawnAtlasHub({ dataDir, env, lifetime: "file" });
    await hub.waitHealthy(200, 60_000);
    return hub;
  }

  it("initialises the cluster on first start and answers /health 200 with the native engine", async () => {
    const started = Date.now();
    const h = await serving();
    const firstStartMs = Date.now() - started;
    const { body } = await h.waitHealthy(200);
    expect(body).toMatchObject({ status: "ok", postgres: { ok: true, engine: "native", state: "running" }, storage: { ok: true } });
    expect(body.postgres.version).toMatch(/^1[4-9]/);
    expect(existsSync(join(clusterDir, "PG_VERSION"))).toBe(true);
    expect(statSync(join(dataDir, "master.key")).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, "pg-superuser.secret")).mode & 0o777).toBe(0o600);
    expect(h.output()).toContain("initialised postgres cluster");
    const { superuserPassword } = readSecretsOf(dataDir);
    expect(superuserPassword.length).toBeGreaterThanOrEqual(16);
    console.log(`binary.test: first start (initdb + migrations) to /health 200 took ${firstStartMs} ms`);
  });

  it("restarts a kill -9'd Postgres: /health goes 503, then 200 within 10 s in the same atlashub process", async () => {
    const h = await serving();
    const postmaster = postmasterPidFile(dataDir)!;
    expect(postmastersOf(dataDir)).toEqual([postmaster]);

    process.kill(postmaster, "SIGKILL");
    const killedAt = Date.now();
    const down = await h.waitHealthy(503, 5_000);
    expect(down.body).toMatchObject({ status: "unavailable", postgres: { ok: false, engine: "native" } });
    await h.waitHealthy(200, 10_000);
    const recoveredMs = Date.now() - killedAt;

    expect(recoveredMs).toBeLessThan(10_000);
    expect(h.running()).toBe(true);
    expect(readFileSync(join(dataDir, "atlashub.pid"), "utf8").trim()).toBe(String(h.pid));
    const restarted = postmasterPidFile(dataDir)!;
    expect(restarted).not.toBe(postmaster);
    expect(postmastersOf(dataDir)).toEqual([restarted]);
    console.log(`binary.test: postgres kill -9 to /health 200 took ${recoveredMs} ms (saw 503 in between)`);
  });

  it("admin create attaches to the running Postgres, and the new admin can log in", async () => {
    const h = await serving();
    const postmaster = postmasterPidFile(dataDir);
    const email = `admin-${randomBytes(3).toString("hex")}@example.com`;
    const password = randomBytes(18).toString("base64url");
    registerSecret(password);

    const cli = spawnAtlasHub({ dataDir, env, args: ["admin", "create", "--email", email], stdin: password + "\n" });
    expect(await cli.exited).toBe(0);
    expect(cli.output()).toContain(`created admin ${email}`);
    expect(cli.output()).not.toContain(password);
    // The CLI used serve's Postgres and left it alone.
    expect(postmasterPidFile(dataDir)).toBe(postmaster);
    expect(h.running()).toBe(true);

    const login = await h.fetch("/admin/api/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password }),
    });
    expect(login.status).toBe(200);
    expect(await login.json()).toMatchObject({ user: { email } });
    expect(login.headers.get("set-cookie")).toMatch(/HttpOnly/i);
    const wrong = await h.fetch("/admin/api/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password: password + "x" }),
    });
    expect(wrong.status).toBe(401);
  });

  it("starts again with no manual cleanup after kill -9 of atlashub, taking over the orphaned Postgres", async () => {
    const killed = await serving();
    const orphan = postmasterPidFile(dataDir)!;
    killed.kill("SIGKILL");
    expect(await killed.exited).toBe(137);
    // The premise: Postgres outlives its parent, and its pid file and atlashub.pid are left behind.
    expect(isRunning(orphan)).toBe(true);
    expect(existsSync(join(dataDir, "atlashub.pid"))).toBe(true);

    const started = Date.now();
    const h = await serving();
    console.log(`binary.test: start after kill -9 of atlashub to /health 200 took ${Date.now() - started} ms`);
    expect(h.pid).not.toBe(killed.pid);
    expect(isRunning(orphan)).toBe(false);
    const postmasters = postmastersOf(dataDir);
    expect(postmasters).toHaveLength(1);
    expect(postmasters[0]).toBe(postmasterPidFile(dataDir)!);
  });

  it("stops cleanly on SIGTERM: exit 0, no postmaster.pid, no Postgres process left", async () => {
    const h = await serving();
    const postmaster = postmasterPidFile(dataDir)!;
    const backends = childrenOf(postmaster);
    expect(backends.length).toBeGreaterThan(0);

    h.kill("SIGTERM");
    expect(await h.exited).toBe(0);
    expect(existsSync(join(clusterDir, "postmaster.pid"))).toBe(false);
    expect(existsSync(join(dataDir, "atlashub.pid"))).toBe(false);
    expect(isRunning(postmaster)).toBe(false);
    expect(backends.filter(isRunning)).toEqual([]);
    expect(postmastersOf(dataDir)).toEqual([]);
  });

  // What a crash leaves in <data>/pg/postmaster.pid, and what the kernel may have done with that pid since.
  const stalePids: [string, () => Promise<number>][] = [
    ["a pid that no longer runs", async () => unusedPid()],
    ["the pid of an unrelated live process (pid reuse)", async () => process.pid],
    [
      "the pid of a Postgres killed together with atlashub (power cut)",
      async () => {
        const h = await serving();
        const postmaster = postmasterPidFile(dataDir)!;
        h.kill("SIGKILL");
        process.kill(postmaster, "SIGKILL");
        await h.exited;
        return postmaster;
      },
    ],
  ];
  for (const [what, stalePid] of stalePids) {
    it(`starts despite a stale postmaster.pid holding ${what}`, async () => {
      const h = await serving();
      const pidFile = join(clusterDir, "postmaster.pid");
      const [, ...rest] = readFileSync(pidFile, "utf8").split("\n");
      const pid = await stalePid();
      if (h.running()) expect(await h.stop()).toBe(0);
      if (!existsSync(pidFile)) {
        // Owned like the file a crashed postmaster leaves behind: by the OS user that runs Postgres.
        writeFileSync(pidFile, [String(pid), ...rest].join("\n"), { mode: 0o600 });
        const owner = statSync(clusterDir);
        chownSync(pidFile, owner.uid, owner.gid);
      }
      expect(Number(readFileSync(pidFile, "utf8").split("\n")[0])).toBe(pid);

      const restarted = await serving();
      expect(restarted.pid).not.toBe(h.pid);
      const postmasters = postmastersOf(dataDir);
      expect(postmasters).toHaveLength(1);
      expect(postmasterPidFile(dataDir)).toBe(postmasters[0]!);
      if (pid === process.pid) expect(isRunning(process.pid)).toBe(true);
    });
  }
});

describe("atlashub refusing to start", () => {
  it("exits non-zero with one line naming ATLASHUB_PORT when it is not a number", async () => {
    const h = spawnAtlasHub({ dataDir: join(tempDir("badport"), "data"), env: { ATLASHUB_PORT: "abc" } });
    expect(await h.exited).not.toBe(0);
    expect(h.lines()).toHaveLength(1);
    expect(h.lines()[0]).toContain("ATLASHUB_PORT");
  });

  it("exits non-zero with one line naming an unknown flag", async () => {
    const h = spawnAtlasHub({ dataDir: join(tempDir("badflag"), "data"), args: ["serve", "--no-such-flag", "1"] });
    expect(await h.exited).not.toBe(0);
    expect(h.lines()).toHaveLength(1);
    expect(h.lines()[0]).toContain("--no-such-flag");
  });

  it("exits non-zero with one clear line when a parent of the data dir is not traversable by the Postgres user", async () => {
    const locked = join(tempDir("locked"), "private");
    mkdirSync(locked, { mode: 0o700 });
    const dataDir = join(locked, "data");
    const h = spawnAtlasHub({ dataDir, env: { ATLASHUB_PORT: String(freePort()), ATLASHUB_PG_PORT: String(freePort()) } });
    expect(await h.exited).not.toBe(0);
    const errors = h.lines("stderr");
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain("not traversable");
    expect(errors[0]).toContain(locked);
    expect(h.output()).not.toMatch(/initdb|FATAL|^\s+at /m);
    expect(existsSync(join(dataDir, "pg"))).toBe(false);
    expect(postmastersOf(dataDir)).toEqual([]);
  });
});

describe("atlashub interrupted or blocked during start-up", () => {
  it("exits with one line naming ATLASHUB_PORT when the port is taken, leaving no Postgres behind", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const dataDir = join(tempDir("busyport"), "data");
      const h = spawnAtlasHub({ dataDir, env: { ATLASHUB_PORT: String(taken.port), ATLASHUB_PG_PORT: String(freePort()) } });
      expect(await h.exited).toBe(2);
      const errors = h.lines("stderr");
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain(`ATLASHUB_HOST/ATLASHUB_PORT (--host/--port): cannot listen on 127.0.0.1:${taken.port}`);
      expect(postmastersOf(dataDir)).toEqual([]);
      expect(existsSync(join(dataDir, "atlashub.pid"))).toBe(false);
    } finally {
      taken.stop(true);
    }
  });

  it("stops the Postgres it is starting when SIGTERM arrives before it is ready", async () => {
    const dataDir = join(tempDir("early-term"), "data");
    const h = spawnAtlasHub({ dataDir, env: { ATLASHUB_PORT: String(freePort()), ATLASHUB_PG_PORT: String(freePort()) } });
    await waitFor("postgres to be launched", () => postmasterPidFile(dataDir));
    h.kill("SIGTERM");
    await h.exited;
    expect(postmastersOf(dataDir)).toEqual([]);
  });
});

describe("atlashub CLI", () => {
  it("migrate starts Postgres for itself when no serve runs, then stops it and exits", async () => {
    const dataDir = join(tempDir("migrate"), "data");
    const env = { ATLASHUB_PORT: String(freePort()), ATLASHUB_PG_PORT: String(freePort()) };
    const serve = spawnAtlasHub({ dataDir, env });
    await serve.waitHealthy(200, 60_000);
    expect(await serve.stop()).toBe(0);
    readSecretsOf(dataDir);

    const h = spawnAtlasHub({ dataDir, args: ["migrate"], env });
    expect(await h.exited).toBe(0);
    expect(h.output()).toContain("control plane is up to date");
    expect(postmastersOf(dataDir)).toEqual([]);
    expect(existsSync(join(dataDir, "atlashub.pid"))).toBe(false);
  }, 30_000);

  it("admin create refuses a directory without AtlasHub data instead of making a new cluster", async () => {
    const dataDir = join(tempDir("wrongdir"), "data");
    const h = spawnAtlasHub({ dataDir, args: ["admin", "create", "--email", "a@example.com"], stdin: "long enough password\n" });
    expect(await h.exited).toBe(1);
    expect(h.lines("stderr")).toEqual([`atlashub: no AtlasHub data in ${dataDir}: run 'atlashub serve' once, or point ATLASHUB_DATA_DIR (--data-dir) at the existing data dir`]);
    expect(existsSync(join(dataDir, "pg"))).toBe(false);
  });

  it("prints the version", async () => {
    const h = spawnAtlasHub({ args: ["version"] });
    expect(await h.exited).toBe(0);
    expect(h.lines()).toEqual([pkg.version]);
  });

  const helps: [string[], RegExp][] = [
    [["serve", "--help"], /Usage: atlashub serve/],
    [["migrate", "--help"], /Usage: atlashub migrate/],
    [["admin", "create", "--help"], /Usage: atlashub admin create --email/],
  ];
  for (const [args, usage] of helps) {
    it(`prints the usage of '${args.join(" ")}' with every setting and exits 0`, async () => {
      const h = spawnAtlasHub({ args });
      expect(await h.exited).toBe(0);
      expect(h.output()).toMatch(usage);
      for (const setting of ["ATLASHUB_PORT", "--port", "ATLASHUB_DATA_DIR", "ATLASHUB_PG_ENGINE", "ATLASHUB_DATABASE_URL"]) expect(h.output()).toContain(setting);
    });
  }
});

/** A pid with no process behind it right now. */
function unusedPid() {
  for (let pid = 30_000; pid > 1_000; pid--) if (!existsSync(`/proc/${pid}`)) return pid;
  throw new Error("no unused pid found");
}

// Runs the compiled atlashub executable (build/out/) as a child process for whole-binary tests:
// output goes line by line to the suite log (scanned for secrets) and is kept for assertions, and
// every process started here is stopped after its test or file — together with any Postgres it left behind.
import { afterAll, afterEach, beforeEach } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { decryptSecret } from "../platform/crypto";
import { appendToSuiteLog, registerSecret } from "./harness";
import { readLines } from "../platform/lines";

const repoRoot = resolve(import.meta.dir, "../..");
export const x64Binary = join(repoRoot, "build/out/atlashub-linux-x64");
export const arm64Binary = join(repoRoot, "build/out/atlashub-linux-arm64");
const QEMU = "/usr/bin/qemu-aarch64-static";
const ARM64_SYSROOT = "/usr/aarch64-linux-gnu";

export interface SpawnOptions {
  /** Executable to run; default build/out/atlashub-linux-x64 (arm64 when `qemu` is set). */
  binary?: string;
  /** Command line after the executable; default ["serve"]. */
  args?: string[];
  /** ATLASHUB_* settings, on top of a minimal environment (PATH only; nothing inherited from the test process). */
  env?: Record<string, string | undefined>;
  /** Sets ATLASHUB_DATA_DIR; also where cleanup looks for a Postgres left running. */
  dataDir?: string;
  /** Run under qemu-aarch64-static with the arm64 C library (the arm64 binary on this x64 machine). */
  qemu?: boolean;
  /**
   * Standard output is the command's result, not log lines (`atlashub project create` prints the new
   * credentials, once, by design): keep it out of the suite log that is scanned for secrets.
   */
  stdoutIsResult?: boolean;
  /** Written to standard input, which is then closed (e.g. the password for `admin create`). */
  stdin?: string;
  /**
   * When cleanup stops the process: after the current test, or after the test file. By default a process
   * started inside a test lives until that test ends, and one started in beforeAll until the file ends.
   */
  lifetime?: "test" | "file";
}

export interface HealthResult {
  status: number;
  body: any;
}

export type AtlasHubProcess = ReturnType<typeof spawnAtlasHub>;

interface Tracked {
  proc: Subprocess;
  dataDir?: string;
  lifetime: "test" | "file";
  exited: Promise<number>;
}

const live = new Set<Tracked>();
let insideTest = false;

/**
 * Stops atlashub processes when their test (or file) is over, even when an assertion failed. Call it once
 * at the top of every test file that uses spawnAtlasHub: bun evaluates this module once per run, so hooks
 * registered here at import time would only reach the first file.
 */
export function stopAtlasHubsAfterTests() {
  beforeEach(() => {
    insideTest = true;
  });
  afterEach(async () => {
    insideTest = false;
    await stopTracked([...live].filter((t) => t.lifetime === "test"));
  });
  afterAll(async () => {
    await stopTracked([...live]);
  });
}

// Last line of defence when the test runner itself goes away: nothing may outlive it.
process.on("exit", () => {
  for (const t of live) {
    try {
      t.proc.kill("SIGKILL");
    } catch {}
    if (t.dataDir) for (const pid of postmastersOf(t.dataDir)) signal(pid, "SIGKILL");
  }
});

export function spawnAtlasHub(options: SpawnOptions = {}) {
  const binary = options.binary ?? (options.qemu ? arm64Binary : x64Binary);
  if (!existsSync(binary)) throw new Error(`${binary} does not exist: run \`npm run build\` first`);
  // The same test as build/build.sh --if-stale: a source (not a test) or UI file newer than the binary.
  const find = ["find", "server", "migrations", "package.json", "ui/dist", "-type", "f", "-newer", binary, "-not", "-name", "*.test.ts", "-not", "-path", "server/test/*", "-not", "-path", "server/e2e/*", "-print", "-quit"];
  const stale = Bun.spawnSync(find, { cwd: repoRoot }).stdout.toString().trim();
  if (stale) throw new Error(`${binary} is older than ${stale}: run \`npm run build\` first`);
  if (options.qemu && !existsSync(QEMU)) {
    throw new Error(`${QEMU} is missing: run \`bash build/setup-qemu.sh\` (as root) to install qemu-user-static and libc6-arm64-cross`);
  }
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin" };
  if (options.dataDir) env.ATLASHUB_DATA_DIR = options.dataDir;
  for (const [k, v] of Object.entries(options.env ?? {})) if (v !== undefined) env[k] = v;
  const dataDir = env.ATLASHUB_DATA_DIR ? resolve(env.ATLASHUB_DATA_DIR) : undefined;
  const args = options.args ?? ["serve"];
  const cmd = options.qemu ? [QEMU, "-L", ARM64_SYSROOT, binary, ...args] : [binary, ...args];

  const proc = Bun.spawn(cmd, {
    env,
    cwd: tmpdir(), // never the repository: a forgotten data dir setting would create ./atlashub-data there
    stdin: options.stdin === undefined ? "ignore" : "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  if (options.stdin !== undefined) {
    const stdin = proc.stdin as import("bun").FileSink;
    stdin.write(options.stdin);
    void stdin.end();
  }

  const lines: { stream: "stdout" | "stderr"; line: string }[] = [];
  let listeningUrl: string | undefined;
  const onLine = (stream: "stdout" | "stderr", line: string) => {
    lines.push({ stream, line });
    if (!(stream === "stdout" && options.stdoutIsResult)) appendToSuiteLog(line);
    if (!listeningUrl && line.includes('"atlashub listening"')) {
      try {
        listeningUrl = JSON.parse(line).url;
      } catch {}
    }
  };
  const readers = [readLines(proc.stdout as ReadableStream<Uint8Array>, (l) => onLine("stdout", l)), readLines(proc.stderr as ReadableStream<Uint8Array>, (l) => onLine("stderr", l))];
  // Resolves once the process is gone and everything it printed has been read.
  const exited = proc.exited.then(async (code) => {
    await Promise.all(readers);
    return code;
  });
  const tracked: Tracked = { proc, dataDir, lifetime: options.lifetime ?? (insideTest ? "test" : "file"), exited };
  live.add(tracked);

  const configuredUrl = () => {
    const port = env.ATLASHUB_PORT;
    if (!port || port === "0") return undefined;
    const host = env.ATLASHUB_HOST ?? "127.0.0.1";
    return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  };
  const output = () => lines.map((l) => l.line).join("\n");
  const running = () => proc.exitCode === null && proc.signalCode === null;

  const hub = {
    proc,
    pid: proc.pid,
    dataDir,
    /** Resolves with the exit code (128 + signal number when killed) after all output has been read. */
    exited,
    running,
    /** Base URL: from the "atlashub listening" log line, else from ATLASHUB_HOST/ATLASHUB_PORT. */
    url: () => listeningUrl ?? configuredUrl(),
    /** Everything printed so far, stdout and stderr interleaved in arrival order. */
    output,
    lines: (stream?: "stdout" | "stderr") => lines.filter((l) => !stream || l.stream === stream).map((l) => l.line),
    kill: (sig: NodeJS.Signals | number = "SIGTERM") => proc.kill(sig),
    fetch(path: string, init?: RequestInit) {
      const base = hub.url();
      if (!base) throw new Error("atlashub has no known URL yet (set ATLASHUB_PORT or wait for its listening line)");
      return fetch(base + path, { signal: AbortSignal.timeout(5_000), ...init });
    },
    /** Polls GET /health until it answers `status`; fails early, with the output, when the process exits. */
    async waitHealthy(status = 200, timeoutMs = 15_000): Promise<HealthResult> {
      const deadline = Date.now() + timeoutMs;
      let last = "no answer yet";
      while (Date.now() < deadline) {
        if (!running()) {
          await exited;
          throw new Error(`atlashub exited with code ${proc.exitCode ?? proc.signalCode} while waiting for /health ${status}; output:\n${output()}`);
        }
        if (hub.url()) {
          try {
            const res = await hub.fetch("/health", { signal: AbortSignal.timeout(3_000) });
            const text = await res.text();
            if (res.status === status) return { status, body: JSON.parse(text) };
            last = `${res.status} ${text}`;
          } catch (err) {
            last = (err as Error).message;
          }
        }
        await Bun.sleep(50);
      }
      throw new Error(`/health did not answer ${status} within ${timeoutMs} ms (last: ${last}); output:\n${output()}`);
    },
    /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
    async stop(graceMs = 10_000) {
      await stopTracked([tracked], graceMs);
      return exited;
    },
    async [Symbol.asyncDispose]() {
      await stopTracked([tracked]);
    },
  };
  return hub;
}

/**
 * The master key and the Postgres superuser password of a native data dir, registered as secrets so the
 * suite's log scan fails if either ever shows up in a log line.
 */
export function readSecretsOf(dataDir: string, masterKeyHex?: string) {
  const masterKey = (masterKeyHex ?? readFileSync(join(dataDir, "master.key"), "utf8")).trim();
  registerSecret(masterKey);
  const superuserPassword = decryptSecret(Buffer.from(masterKey, "hex"), readFileSync(join(dataDir, "pg-superuser.secret"), "utf8").trim());
  registerSecret(superuserPassword);
  return { masterKey, superuserPassword };
}

/** Pid in the first line of <data>/pg/postmaster.pid, if the file exists. */
export function postmasterPidFile(dataDir: string): number | undefined {
  const file = join(dataDir, "pg", "postmaster.pid");
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, "utf8").split("\n")[0]);
  return pid > 0 ? pid : undefined;
}

/** Live (non-zombie) postmasters whose command line names <data>/pg. */
export function postmastersOf(dataDir: string): number[] {
  const clusterDir = join(resolve(dataDir), "pg");
  return procPids().filter((pid) => {
    const args = cmdline(pid);
    return args.length > 0 && args[0]!.endsWith("postgres") && args.includes(clusterDir) && isRunning(pid);
  });
}

/** Live (non-zombie) children of `pid` — a postmaster's backends and auxiliary processes. */
export function childrenOf(pid: number): number[] {
  return procPids().filter((p) => parentOf(p) === pid && isRunning(p));
}

/** True when `pid` exists and is not a zombie waiting to be reaped. */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

async function stopTracked(targets: Tracked[], graceMs = 10_000) {
  await Promise.all(
    targets.map(async (t) => {
      if (t.proc.exitCode === null && t.proc.signalCode === null) {
        t.proc.kill("SIGTERM");
        const gone = await Promise.race([t.exited.then(() => true), Bun.sleep(graceMs).then(() => false)]);
        if (!gone) t.proc.kill("SIGKILL");
      }
      await t.exited;
      live.delete(t);
    }),
  );
  // A Postgres orphaned by a killed atlashub belongs to nobody now, unless another running process uses that data dir.
  const dirs = new Set(targets.map((t) => t.dataDir).filter((d): d is string => !!d));
  for (const t of live) if (t.dataDir && t.proc.exitCode === null && t.proc.signalCode === null) dirs.delete(t.dataDir);
  await Promise.all([...dirs].map(stopOrphanedPostgres));
}

async function stopOrphanedPostgres(dataDir: string) {
  for (const pid of postmastersOf(dataDir)) {
    signal(pid, "SIGQUIT"); // immediate shutdown, takes its backends with it
    const deadline = Date.now() + 5_000;
    while (isRunning(pid) && Date.now() < deadline) await Bun.sleep(50);
    if (isRunning(pid)) signal(pid, "SIGKILL");
  }
}

function signal(pid: number, sig: NodeJS.Signals) {
  try {
    process.kill(pid, sig);
  } catch {}
}

function procPids(): number[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

/** Resident memory of a process from /proc, in bytes: now (VmRSS) and the peak since the last reset (VmHWM). */
export function memoryOf(pid: number) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)![1]) * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}

/** How far a process's peak rose above its resident size while `run` ran ("5" to clear_refs resets VmHWM). */
export async function peakGrowth<T>(pid: number, run: () => Promise<T>) {
  writeFileSync(`/proc/${pid}/clear_refs`, "5");
  const before = memoryOf(pid).rss;
  const result = await run();
  return { result, growth: memoryOf(pid).peak - before };
}

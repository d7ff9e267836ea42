import { chownSync, existsSync, mkdirSync, readFileSync, readlinkSync, realpathSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { totalmem } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import postgres from "postgres";
import { EngineError, type EngineState, type PgConnectionInfo, type PostgresEngine } from "./engine";
import { findPgBinDir } from "./binaries";
import { assertTraversable, pgOsUser, type OsUser } from "./osUser";
import { decryptSecret, encryptSecret, randomPassword } from "../../platform/crypto";
import { fsyncDir, writeFileDurably } from "../../platform/files";
import { log } from "../../platform/log";
import { readLines } from "../../platform/lines";

export interface NativeOptions {
  dataDir: string;
  binDir?: string;
  listen: string;
  port: number;
  osUser?: string;
  memoryMb?: number;
  masterKey: Buffer;
  /**
   * CLI commands (`admin create`, `migrate`) use the Postgres a running `serve` already started.
   * Otherwise (attach = false) a Postgres left behind by a killed AtlasHub is stopped and a fresh one supervised.
   */
  attach: boolean;
  /** Only `serve` may create a new cluster; a CLI command pointed at the wrong directory must not. */
  initialise: boolean;
  /** How long Postgres may be unreachable, without saying it is starting up, before a start counts as failed. */
  readyTimeoutMs?: number;
}

const SUPERUSER = "postgres";
// Default for readyTimeoutMs. Crash recovery on an SD card can take much longer; while Postgres
// answers "starting up" we keep waiting.
const READY_TIMEOUT_MS = 60_000;

/** Runs a Postgres cluster in <data>/pg as a supervised child process, restarting it when it dies. */
export class NativeEngine implements PostgresEngine {
  readonly kind = "native";
  private readonly clusterDir: string;
  private bin = "";
  private readonly initPasswordFile: string;
  private user: OsUser | undefined;
  private password = "";
  private child: Subprocess | undefined;
  private current: EngineState = "stopped";
  private attached = false;
  private stopping = false;
  private restartTimer: Timer | undefined;
  private restarts = 0;
  private recentOutput: string[] = [];

  constructor(private readonly options: NativeOptions) {
    this.clusterDir = join(options.dataDir, "pg");
    this.initPasswordFile = join(options.dataDir, ".initdb-pw");
  }

  state() {
    return this.current;
  }

  superuser(): PgConnectionInfo {
    const listen = this.options.listen.split(",")[0]!.trim();
    const host = listen === "*" || listen === "0.0.0.0" || listen === "localhost" ? "127.0.0.1" : listen === "::" ? "::1" : listen;
    return { host, port: this.options.port, user: SUPERUSER, password: this.password, database: "postgres" };
  }

  /** The pid of this cluster's running postmaster (tests kill it to check supervision). */
  postmasterPid(): number | undefined {
    const pid = readPidFile(join(this.clusterDir, "postmaster.pid"));
    return pid && isPostmasterOf(pid, this.clusterDir) ? pid : undefined;
  }

  async start() {
    this.current = "starting";
    this.stopping = false;
    this.bin = findPgBinDir(this.options.binDir);
    this.user = pgOsUser(this.options.osUser, existsSync(this.clusterDir) ? statSync(this.clusterDir).uid : undefined);
    mkdirSync(this.options.dataDir, { recursive: true, mode: 0o711 });
    if (this.user) assertTraversable(this.clusterDir, this.user);
    rmSync(this.initPasswordFile, { force: true }); // left by a crash during initdb
    if (!existsSync(join(this.clusterDir, "PG_VERSION"))) {
      if (!this.options.initialise) {
        throw new EngineError(`no AtlasHub data in ${this.options.dataDir}: run 'atlashub serve' once, or point ATLASHUB_DATA_DIR (--data-dir) at the existing data dir`);
      }
      this.initCluster();
    }
    this.password = this.readPassword();
    this.writeConf();

    if (this.options.attach) {
      // The serve holding the data dir supervises Postgres (it may be restarting it right now): never start our own.
      this.attached = true;
      await this.waitReady();
      this.current = "running";
      return;
    }
    const running = this.runningPostmaster();
    if (running) await this.stopOrphan(running);
    this.launch();
    await this.waitReady();
    this.current = "running";
    log.info("postgres ready", { engine: "native", port: this.options.port, bin_dir: this.bin });
  }

  async stop() {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (this.attached || !child) {
      this.current = "stopped";
      return;
    }
    child.kill("SIGINT"); // fast shutdown: roll back open transactions, checkpoint, exit
    const escalate = setTimeout(() => child.kill("SIGQUIT"), 30_000);
    await child.exited;
    clearTimeout(escalate);
    this.child = undefined;
    this.current = "stopped";
  }

  private initCluster() {
    const tmp = this.clusterDir + ".initializing";
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { mode: 0o700 });
    this.chown(tmp);
    // The password is stored before initdb so a crash can never leave a cluster whose password is unknown.
    const password = randomPassword(32);
    writeFileDurably(this.passwordFile(), encryptSecret(this.options.masterKey, password));
    const pwfile = this.initPasswordFile;
    writeFileSync(pwfile, password + "\n", { mode: 0o600 });
    this.chown(pwfile);
    try {
      const args = ["-D", tmp, "-U", SUPERUSER, "--auth=scram-sha-256", `--pwfile=${pwfile}`, "-E", "UTF8", "--locale=C"];
      const out = Bun.spawnSync([join(this.bin, "initdb"), ...args], this.spawnIdentity());
      if (out.exitCode !== 0) {
        const reason = out.stderr.toString().trim().split("\n").pop();
        throw new EngineError(`initdb failed: ${reason}`);
      }
    } finally {
      rmSync(pwfile, { force: true });
    }
    const conf = join(tmp, "postgresql.conf");
    writeFileSync(
      conf,
      readFileSync(conf, "utf8") +
        "\n# Sizing and safety settings written by AtlasHub at every start. Put your own overrides in\n" +
        "# postgresql.auto.conf (ALTER SYSTEM), which is read after this file.\ninclude_if_exists 'atlashub.conf'\n",
    );
    renameSync(tmp, this.clusterDir);
    fsyncDir(this.options.dataDir);
    log.info("initialised postgres cluster", { dir: this.clusterDir });
  }

  private writeConf() {
    const path = join(this.clusterDir, "atlashub.conf");
    writeFileSync(path, smallMachineConf(this.options), { mode: 0o600 });
    this.chown(path);
  }

  private readPassword() {
    const file = this.passwordFile();
    if (!existsSync(file)) throw new EngineError(`${file} is missing: the cluster in ${this.clusterDir} cannot be used without its superuser password`);
    try {
      return decryptSecret(this.options.masterKey, readFileSync(file, "utf8").trim());
    } catch {
      throw new EngineError(`cannot decrypt ${file}: the master key is not the one this data dir was created with`);
    }
  }

  private passwordFile() {
    return join(this.options.dataDir, "pg-superuser.secret");
  }

  /**
   * The live postmaster of this cluster, if any. A postmaster.pid whose pid now names another process
   * (pid reuse after a crash, common in containers, or an unreaped zombie) would make Postgres refuse
   * to start, so it is removed. One whose pid is gone is left alone: Postgres handles that itself and
   * also uses the file to check that no old backend still holds the shared memory.
   */
  private runningPostmaster(): number | undefined {
    const pidFile = join(this.clusterDir, "postmaster.pid");
    const pid = readPidFile(pidFile);
    if (!pid) return undefined;
    if (isPostmasterOf(pid, this.clusterDir)) return pid;
    if (existsSync(`/proc/${pid}`)) {
      unlinkSync(pidFile);
      log.info("removed stale postmaster.pid whose pid belongs to another process", { pid });
    }
    return undefined;
  }

  private async stopOrphan(pid: number) {
    log.warn("stopping a postgres left running by an earlier atlashub process", { pid });
    for (const [signal, waitMs] of [["SIGINT", 15_000], ["SIGQUIT", 5_000], ["SIGKILL", 5_000]] as const) {
      try {
        process.kill(pid, signal);
      } catch {
        return;
      }
      const deadline = Date.now() + waitMs;
      while (Date.now() < deadline) {
        if (!isAlive(pid)) return;
        await Bun.sleep(50);
      }
    }
    throw new EngineError(`postgres pid ${pid} of ${this.clusterDir} does not stop`);
  }

  private launch() {
    this.recentOutput = [];
    const child: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn([join(this.bin, "postgres"), "-D", this.clusterDir], {
      ...this.spawnIdentity(),
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      onExit: (proc, code, signal) => this.onChildExit(proc, code, signal),
    });
    this.child = child;
    void readLines(child.stdout, (line) => this.record(line));
    void readLines(child.stderr, (line) => this.record(line));
  }

  private onChildExit(child: Subprocess, code: number | null, signal: unknown) {
    if (this.stopping || child !== this.child) return;
    this.current = "restarting";
    const delay = Math.min(250 * 2 ** this.restarts, 5_000);
    this.restarts++;
    log.warn("postgres exited; restarting", { code, signal, restart_in_ms: delay });
    this.restartTimer = setTimeout(() => void this.restart(), delay);
  }

  private async restart() {
    if (this.stopping) return;
    this.runningPostmaster(); // clears a pid file whose pid was reused meanwhile
    this.launch();
    const child = this.child!;
    try {
      await this.waitReady();
      this.current = "running";
      log.info("postgres restarted");
      setTimeout(() => {
        if (this.child === child && this.current === "running") this.restarts = 0;
      }, 30_000).unref();
    } catch (err) {
      log.warn("postgres restart failed", { reason: (err as Error).message });
      // A child that exited has already scheduled the next attempt; one that hangs is killed so its exit does.
      if (child.exitCode === null && !this.stopping) child.kill("SIGKILL");
    }
  }

  private async waitReady() {
    const timeoutMs = this.options.readyTimeoutMs ?? READY_TIMEOUT_MS;
    let deadline = Date.now() + timeoutMs;
    const child = this.child;
    while (Date.now() < deadline) {
      if (this.stopping) throw new EngineError("stopped while starting");
      if (child && child.exitCode !== null) {
        throw new EngineError(`postgres exited during start-up: ${this.recentOutput.slice(-3).join(" | ") || `exit code ${child.exitCode}`}`);
      }
      const state = await probe(this.superuser());
      if (state === "ready") return;
      if (state === "starting") deadline = Date.now() + timeoutMs;
      await Bun.sleep(20);
    }
    throw new EngineError(`postgres did not accept connections within ${timeoutMs / 1000}s: ${this.recentOutput.slice(-3).join(" | ")}`);
  }

  private record(line: string) {
    this.recentOutput.push(line);
    if (this.recentOutput.length > 20) this.recentOutput.shift();
    const serious = /\b(WARNING|ERROR|FATAL|PANIC):/.test(line);
    (serious ? log.warn : log.debug)("postgres", { line });
  }

  private spawnIdentity() {
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C", LC_ALL: "C" };
    return this.user ? { uid: this.user.uid, gid: this.user.gid, cwd: "/", env } : { cwd: "/", env };
  }

  private chown(path: string) {
    if (this.user) chownSync(path, this.user.uid, this.user.gid);
  }
}

/** postgresql.conf settings for a 1–8 GB machine (a Raspberry Pi up to a small VPS). */
export function smallMachineConf(options: Pick<NativeOptions, "listen" | "port" | "memoryMb">): string {
  const memMb = options.memoryMb ?? Math.floor(totalmem() / 1024 / 1024);
  const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, Math.floor(v)));
  const lines = {
    listen_addresses: `'${options.listen}'`,
    port: options.port,
    // TCP only: the socket directory of distribution packages may not exist or be writable.
    unix_socket_directories: "''",
    max_connections: memMb <= 1024 ? 50 : memMb <= 4096 ? 100 : 150,
    shared_buffers: `${clamp(memMb / 8, 32, 1024)}MB`,
    effective_cache_size: `${clamp(memMb / 2, 128, 8192)}MB`,
    work_mem: `${clamp(memMb / 256, 2, 16)}MB`,
    maintenance_work_mem: `${clamp(memMb / 16, 32, 256)}MB`,
    max_wal_size: "512MB",
    password_encryption: "'scram-sha-256'",
    shared_preload_libraries: "'pg_stat_statements'",
    // Never echo statements or client errors into the log: a failing ALTER ROLE … PASSWORD would leak
    // the password, and error messages quote the client's values. Clients get their errors directly.
    log_min_error_statement: "panic",
    log_min_messages: "log",
    log_statement: "'none'",
    lc_messages: "'C'",
  };
  return Object.entries(lines).map(([k, v]) => `${k} = ${v}`).join("\n") + "\n";
}

/** "starting": Postgres answers but is still starting up or recovering (SQLSTATE 57P03). */
async function probe(info: PgConnectionInfo): Promise<"ready" | "starting" | "unreachable"> {
  const sql = postgres({ ...info, max: 1, connect_timeout: 2, onnotice: () => {} });
  try {
    await sql`select 1`;
    return "ready";
  } catch (err) {
    return (err as { code?: string }).code === "57P03" ? "starting" : "unreachable";
  } finally {
    await sql.end({ timeout: 1 });
  }
}

function readPidFile(path: string): number | undefined {
  if (!existsSync(path)) return undefined;
  const pid = Number(readFileSync(path, "utf8").split("\n")[0]);
  return pid > 0 ? pid : undefined;
}

/** Alive and not a zombie (a killed child not yet reaped still has a pid). */
function isAlive(pid: number) {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** A postmaster runs in its data directory, so compare its cwd to ours — robust to symlinked spellings. */
function isPostmasterOf(pid: number, clusterDir: string) {
  if (!isAlive(pid)) return false;
  try {
    return readlinkSync(`/proc/${pid}/cwd`) === realpathSync(clusterDir);
  } catch {
    return false;
  }
}

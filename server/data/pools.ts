// One small pool per active project, connected as the project's app role. A pool is made on first
// use; its connections close after a minute idle, the pool itself after ten. All pools together hold
// at most ATLASHUB_MAX_PROJECT_CONNECTIONS backends, counted as pools × ATLASHUB_PROJECT_POOL_MAX (a
// Pi has few backends): past that cap a new pool takes the place of the least recently used pool
// with no query in flight, and when every pool is busy the request waits a few seconds for one to
// finish before it gets 503.
import postgres from "postgres";
import type { AppContext } from "../context";
import type { Sql } from "../platform/db";
import { decryptSecret } from "../platform/crypto";
import { errors } from "../http/errors";
import { databaseName, roleName } from "../projects/provision";
import { loadSchema, type Schema } from "./schema";

const CONNECTION_IDLE_S = 60;
const POOL_IDLE_MS = 10 * 60_000;
const SWEEP_EVERY_MS = 60_000;
const WAIT_MS = 5_000;
const SCHEMA_TTL_MS = 5_000;

export interface PoolLimits {
  /** Backends all pools may hold together. */
  maxConnections: number;
  /** Connections in one pool. */
  perPool: number;
  /** How long a request waits for a busy pool to go idle when a new pool would pass the cap. */
  waitMs: number;
}

interface Entry {
  projectId: string;
  sql: Sql;
  /** Resolves once the pool this one replaced has closed (its backends count until then); undefined after. */
  ready?: Promise<void>;
  inFlight: number;
  usedAt: number;
  schema?: { value: Schema; loadedAt: number };
}

export class ProjectPools {
  readonly limits: PoolLimits;
  private readonly pools = new Map<string, Entry>();
  /** Pools being closed outside an eviction (idle, project deleted): they hold their place until closed. */
  private readonly closing = new Set<Promise<void>>();
  private readonly waiters = new Set<() => void>();
  private readonly sweeper: ReturnType<typeof setInterval>;

  constructor(
    private readonly ctx: Pick<AppContext, "config" | "engine" | "sql" | "masterKey">,
    limits: Partial<PoolLimits> = {},
  ) {
    this.limits = { maxConnections: ctx.config.maxProjectConnections, perPool: ctx.config.projectPoolMax, waitMs: WAIT_MS, ...limits };
    this.sweeper = setInterval(() => this.closeIdle(POOL_IDLE_MS), SWEEP_EVERY_MS);
    this.sweeper.unref();
  }

  get maxPools() {
    return Math.max(1, Math.floor(this.limits.maxConnections / this.limits.perPool));
  }

  /** The projects that have a pool now, least recently used first. */
  get projects(): string[] {
    return [...this.pools.values()].sort((a, b) => a.usedAt - b.usedAt).map((e) => e.projectId);
  }

  /** Runs `use` on the project's pool. Every query of /v1 goes through here, so the pool knows when it is busy. */
  async run<T>(projectId: string, use: (sql: Sql) => Promise<T>): Promise<T> {
    return this.using(projectId, (entry) => use(entry.sql));
  }

  /** The project's schema, re-read when older than a few seconds or when `stale` says a name was missing. */
  async schema(projectId: string, stale = false): Promise<Schema> {
    const cached = this.pools.get(projectId)?.schema;
    if (!stale && cached && Date.now() - cached.loadedAt <= SCHEMA_TTL_MS) return cached.value;
    return this.using(projectId, async (entry) => {
      if (stale || !entry.schema || Date.now() - entry.schema.loadedAt > SCHEMA_TTL_MS) {
        entry.schema = { value: await loadSchema(entry.sql), loadedAt: Date.now() };
      }
      return entry.schema.value;
    });
  }

  /** Closes the project's pool at once, cutting off queries in flight (the project was deleted). */
  async close(projectId: string) {
    const entry = this.pools.get(projectId);
    if (entry) await this.retire(entry, 0);
  }

  /** Closes pools unused for `idleMs`. */
  async closeIdle(idleMs: number) {
    const now = Date.now();
    const idle = [...this.pools.values()].filter((e) => e.inFlight === 0 && now - e.usedAt >= idleMs);
    await Promise.all(idle.map((e) => this.retire(e, 5)));
  }

  async closeAll() {
    clearInterval(this.sweeper);
    await Promise.all([...this.pools.values()].map((e) => this.retire(e, 5)));
  }

  private async using<T>(projectId: string, use: (entry: Entry) => Promise<T>): Promise<T> {
    const entry = this.tryAcquire(projectId) ?? (await this.acquire(projectId));
    try {
      if (entry.ready) await entry.ready;
      return await use(entry).catch(rethrowUnavailable);
    } finally {
      entry.inFlight--;
      entry.usedAt = Date.now();
      if (entry.inFlight === 0) this.wake();
    }
  }

  private async acquire(projectId: string): Promise<Entry> {
    const deadline = Date.now() + this.limits.waitMs;
    for (;;) {
      const entry = this.tryAcquire(projectId);
      if (entry) return entry;
      if (!(await this.waitForIdle(deadline))) throw errors.poolBusy();
    }
  }

  /** The project's pool with one more query in flight, or undefined when a new pool would pass the cap and none is idle. */
  private tryAcquire(projectId: string): Entry | undefined {
    let entry = this.pools.get(projectId);
    if (!entry) {
      let ready: Promise<void> | undefined;
      if (this.pools.size + this.closing.size >= this.maxPools) {
        const lru = [...this.pools.values()].filter((e) => e.inFlight === 0).sort((a, b) => a.usedAt - b.usedAt)[0];
        if (!lru) return undefined;
        this.pools.delete(lru.projectId);
        ready = lru.sql.end({ timeout: 5 }).catch(() => {});
      }
      const made: Entry = (entry = { projectId, sql: this.connect(projectId), ready, inFlight: 0, usedAt: 0 });
      ready?.then(() => (made.ready = undefined));
      this.pools.set(projectId, entry);
    }
    entry.inFlight++;
    entry.usedAt = Date.now();
    return entry;
  }

  /** Resolves true when some pool went idle or closed, false once the deadline has passed. */
  private waitForIdle(deadline: number): Promise<boolean> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(wake);
        resolve(false);
      }, Math.max(0, deadline - Date.now()));
      this.waiters.add(wake);
    });
  }

  private wake() {
    for (const wake of [...this.waiters]) wake();
  }

  /** Takes the pool out of use and closes it; its place stays taken until its backends are gone. */
  private async retire(entry: Entry, timeoutSeconds: number) {
    if (this.pools.get(entry.projectId) === entry) this.pools.delete(entry.projectId);
    const closed = entry.sql.end({ timeout: timeoutSeconds }).catch(() => {});
    this.closing.add(closed);
    await closed;
    this.closing.delete(closed);
    this.wake();
  }

  /** A lazy pool: postgres.js connects on the first query, so the password is fetched just before. */
  private connect(projectId: string): Sql {
    const su = this.ctx.engine.superuser();
    const password = async () => {
      const [row] = await this.ctx.sql<{ password_enc: string }[]>`
        select password_enc from project_roles where project_id = ${projectId} and kind = 'app'`;
      if (!row) throw errors.databaseUnavailable();
      return decryptSecret(this.ctx.masterKey, row.password_enc);
    };
    const options: postgres.Options<{}> = {
      host: su.host,
      port: su.port,
      ssl: su.ssl,
      database: databaseName(projectId),
      user: roleName(projectId, "app"),
      password,
      max: this.limits.perPool,
      idle_timeout: CONNECTION_IDLE_S,
      connect_timeout: 5,
      // statement_timeout and idle_in_transaction_session_timeout come from the app role itself.
      // UTC, so that timestamptz values come out of to_json as ISO strings in UTC.
      // Generic plans: every /v1 statement is prepared with its values (limit and offset too) as
      // parameters, and with custom plans Postgres re-planned each execution (more than doubling its
      // CPU per read here). The cost: no plan tuned to one value, e.g. an index for a like 'abc%' filter.
      connection: { application_name: "atlashub-data", TimeZone: "UTC", plan_cache_mode: "force_generic_plan" },
      types: TEXT_PARAMETERS as postgres.Options<{}>["types"],
      onnotice: () => {},
    };
    return postgres(options) as Sql;
  }
}

/**
 * /v1 sends every value as text for Postgres to cast. postgres.js would otherwise re-encode the text
 * by the parameter's type: a timestamp through a JS Date (microseconds lost, a bad one throws), a
 * bool as 'f' unless it reads exactly "true", json through JSON.stringify, bytea as hex of the text.
 * The parsers only matter for the rare result column of these types (our results are text).
 */
const TEXT_PARAMETERS = {
  boolean: { to: 16, from: [16], serialize: String, parse: (x: string) => x === "t" },
  date: { to: 1184, from: [1082, 1114, 1184], serialize: String, parse: (x: string) => new Date(x) },
  json: { to: 114, from: [114, 3802], serialize: String, parse: JSON.parse },
  bytea: { to: 17, from: [17], serialize: String, parse: (x: string) => Buffer.from(x.slice(2), "hex") },
};

/**
 * A pool that cannot reach its database is a passing condition for the client: 503, never 500. That
 * is too many connections, a restart, a pool closed mid-query, or a database that another instance
 * closed (soft delete: CheckMyDatabase refuses with 55000) or dropped (3D000) while the key was cached.
 */
function rethrowUnavailable(err: unknown): never {
  if (err instanceof postgres.PostgresError) {
    if (/^(08|53300|57P0[123]|3D000)/.test(err.code) || (err.code === "55000" && err.routine === "CheckMyDatabase")) throw errors.databaseUnavailable();
    throw err;
  }
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && /^(CONNECT_TIMEOUT|CONNECTION_|ECONNREFUSED|ECONNRESET)/.test(code)) throw errors.databaseUnavailable();
  throw err;
}

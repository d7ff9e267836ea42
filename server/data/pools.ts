// One small pool per active project, connected as the project's app role. Pools are made on first
// use and closed when idle; past the cap the least recently used one is closed (a Pi has few backends).
import postgres from "postgres";
import type { AppContext } from "../context";
import type { Sql } from "../platform/db";
import { decryptSecret } from "../platform/crypto";
import { databaseName, roleName } from "../projects/provision";
import { loadSchema, type Schema } from "./schema";

const POOL_MAX = 5;
const MAX_POOLS = 8; // 8 × 5 = 40 backends at most for /v1
const SCHEMA_TTL_MS = 5_000;

interface Entry {
  sql: Sql;
  usedAt: number;
  schema?: { value: Schema; loadedAt: number };
}

export class ProjectPools {
  private readonly pools = new Map<string, Entry>();

  constructor(private readonly ctx: AppContext) {}

  /** The project's pool, made on first use; concurrent first requests share the one being made. */
  async get(projectId: string): Promise<Entry> {
    let entry = this.pools.get(projectId);
    if (!entry) {
      entry = { sql: this.connect(projectId), usedAt: Date.now() };
      this.pools.set(projectId, entry);
      this.evictBeyondCap();
    }
    entry.usedAt = Date.now();
    return entry;
  }

  /** A lazy pool: postgres.js connects on the first query, so the password is fetched just before. */
  private connect(projectId: string): Sql {
    const su = this.ctx.engine.superuser();
    const password = async () => {
      const [row] = await this.ctx.sql<{ password_enc: string }[]>`
        select password_enc from project_roles where project_id = ${projectId} and kind = 'app'`;
      return decryptSecret(this.ctx.masterKey, row!.password_enc);
    };
    return postgres({
      host: su.host,
      port: su.port,
      ssl: su.ssl,
      database: databaseName(projectId),
      user: roleName(projectId, "app"),
      password,
      max: POOL_MAX,
      idle_timeout: 60,
      connect_timeout: 5,
      onnotice: () => {},
    });
  }

  /** Runs `use` on the project's pool. Every query of /v1 goes through here, so the pool knows when it is busy. */
  async run<T>(projectId: string, use: (sql: Sql) => Promise<T>): Promise<T> {
    const entry = await this.get(projectId);
    return use(entry.sql);
  }

  /** The project's schema, re-read when older than a few seconds or when `stale` says a name was missing. */
  async schema(projectId: string, stale = false): Promise<Schema> {
    const entry = await this.get(projectId);
    if (stale || !entry.schema || Date.now() - entry.schema.loadedAt > SCHEMA_TTL_MS) {
      entry.schema = { value: await loadSchema(entry.sql), loadedAt: Date.now() };
    }
    return entry.schema.value;
  }

  async closeAll() {
    await Promise.all([...this.pools.values()].map((e) => e.sql.end({ timeout: 5 })));
    this.pools.clear();
  }

  private evictBeyondCap() {
    while (this.pools.size > MAX_POOLS) {
      const [oldest] = [...this.pools.entries()].sort((a, b) => a[1].usedAt - b[1].usedAt);
      this.pools.delete(oldest![0]);
      void oldest![1].sql.end({ timeout: 5 });
    }
  }
}

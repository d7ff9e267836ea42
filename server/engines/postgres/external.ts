import postgres from "postgres";
import { EngineError, type EngineState, type PgConnectionInfo, type PostgresEngine } from "./engine";

const MIN_VERSION = 140000;

/** A Postgres someone else runs, reached through a superuser-capable ATLASHUB_DATABASE_URL. */
export class ExternalEngine implements PostgresEngine {
  readonly kind = "external";
  private readonly info: PgConnectionInfo;
  private current: EngineState = "stopped";

  constructor(url: string) {
    const u = new URL(url);
    this.info = {
      host: u.hostname.replace(/^\[|\]$/g, ""),
      port: Number(u.port || 5432),
      user: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
      database: decodeURIComponent(u.pathname.slice(1)) || "postgres",
      ssl: sslFrom(u.searchParams.get("sslmode")),
    };
  }

  state() {
    return this.current;
  }

  superuser() {
    return this.info;
  }

  async start() {
    const sql = postgres({ ...this.info, max: 1, connect_timeout: 5, onnotice: () => {} });
    try {
      const [me] = await sql`
        select current_setting('server_version_num')::int as version, current_setting('server_version') as version_text,
               rolsuper, rolcreatedb, rolcreaterole
        from pg_roles where rolname = current_user`.catch((err: Error) => {
        throw new EngineError(`cannot connect with ATLASHUB_DATABASE_URL (${this.info.host}:${this.info.port}): ${err.message}`);
      });
      if (me!.version < MIN_VERSION) throw new EngineError(`external Postgres is ${me!.version_text}; AtlasHub needs 14 or newer`);
      const missing = [!me!.rolcreatedb && "CREATEDB", !me!.rolcreaterole && "CREATEROLE"].filter(Boolean);
      if (!me!.rolsuper && missing.length) {
        throw new EngineError(`ATLASHUB_DATABASE_URL user ${this.info.user} is not a superuser and lacks ${missing.join(" and ")}; grant them or use a superuser`);
      }
      this.current = "running";
    } finally {
      await sql.end({ timeout: 1 });
    }
  }

  async stop() {
    this.current = "stopped";
  }
}

function sslFrom(sslmode: string | null): PgConnectionInfo["ssl"] {
  switch (sslmode) {
    case null:
    case "disable":
      return undefined;
    case "allow":
    case "prefer":
      return "prefer";
    case "require":
      return "require";
    case "verify-ca":
    case "verify-full":
      return "verify-full";
    default:
      throw new EngineError(`ATLASHUB_DATABASE_URL: unknown sslmode ${sslmode}`);
  }
}

// The one interface over the ways AtlasHub can get a Postgres: a cluster it starts itself (native),
// a server somebody else runs (external), or containers (docker: a later issue, not built yet).

export interface PgConnectionInfo {
  host: string;
  port: number;
  user: string;
  password: string;
  /** The database to connect to for cluster-wide work (CREATE DATABASE, roles). */
  database: string;
  /** postgres.js `ssl` mode, from the external URL's sslmode; the native engine talks plain TCP on loopback. */
  ssl?: "require" | "prefer" | "verify-full";
}

export type EngineState = "stopped" | "starting" | "running" | "restarting";

export interface PostgresEngine {
  readonly kind: "native" | "external";
  /** Resolves once Postgres accepts connections; throws EngineError with a one-line reason otherwise. */
  start(): Promise<void>;
  stop(): Promise<void>;
  state(): EngineState;
  superuser(): PgConnectionInfo;
}

/** A start-up problem the operator can fix; the message is one line and names the fix. */
export class EngineError extends Error {}

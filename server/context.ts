import type { Config } from "./config";
import type { PostgresEngine } from "./engines/postgres/engine";
import type { Sql } from "./platform/db";
import type { Actor } from "./platform/audit";
import type { VerifiedKey } from "./keys/service";
import type { ProjectPools } from "./data/pools";
import type { JobRunner } from "./jobs/runner";
import type { ObjectStore } from "./engines/storage/store";
import type { BackupRunner } from "./backups/runner";

/** What every router gets: built once in startAtlasHub, passed down as a plain object. */
export interface AppContext {
  config: Config;
  version: string;
  engine: PostgresEngine;
  sql: Sql;
  /** A second small pool for cluster-wide DDL (CREATE DATABASE/ROLE, drops), without the API's statement
   * timeout, so that provisioning never starves the API's pool and a slow CREATE DATABASE is not cut off. */
  clusterSql: Sql;
  masterKey: Buffer;
  extensions: Record<string, boolean>;
  /** The /v1 pools of this process, one per active project; made lazily, so commands other than serve open none. */
  pools: ProjectPools;
  /** Runs jobs in this process ("run now" always; scheduled occurrences once serve starts its scheduler). */
  jobs: JobRunner;
  /** Where object bytes live (fs or s3); their metadata is in the control plane. */
  storage: ObjectStore;
  /** Backups (and their verifications) running in this process, and the store their bytes go to. */
  backups: BackupRunner;
}

export type AppEnv = {
  Variables: {
    requestId: string;
    clientIp: string;
    actor: Actor;
    apiKey: VerifiedKey;
  };
};

import type { Config } from "../../config";
import type { PostgresEngine } from "./engine";
import { NativeEngine } from "./native";
import { ExternalEngine } from "./external";

export function createPostgresEngine(config: Config, masterKey: Buffer, options: { attach: boolean; initialise: boolean }): PostgresEngine {
  switch (config.pgEngine) {
    case "native":
      return new NativeEngine({
        dataDir: config.dataDir,
        binDir: config.pgBinDir,
        listen: config.pgListen,
        port: config.pgPort,
        osUser: config.pgOsUser,
        memoryMb: config.pgMemoryMb,
        masterKey,
        ...options,
      });
    case "external":
      return new ExternalEngine(config.databaseUrl!);
    // DOCKER DRIVER goes here (Docker Engine API, a postgres + pgvector image): a later issue.
    // Until then config.ts refuses ATLASHUB_PG_ENGINE=docker at start-up.
  }
}

export { EngineError, type PostgresEngine } from "./engine";

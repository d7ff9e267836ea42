import type { Config } from "../../config";
import { EngineError, type PostgresEngine } from "./engine";
import { NativeEngine } from "./native";
import { ExternalEngine } from "./external";

export function createPostgresEngine(config: Config, masterKey: Buffer, options: { attach: boolean }): PostgresEngine {
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
        attach: options.attach,
      });
    case "external":
      return new ExternalEngine(config.databaseUrl!, config.pgBinDir);
    case "docker":
      // DOCKER DRIVER: planned (Docker Engine API, postgres + pgvector image). Until it lands we refuse
      // to start rather than pretend.
      throw new EngineError("ATLASHUB_PG_ENGINE=docker is not available in this version; use native (default) or external");
  }
}

export { EngineError, type PostgresEngine } from "./engine";

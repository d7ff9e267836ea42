import { describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ConfigError, loadConfig, settings } from "./config";

describe("loadConfig", () => {
  it("uses the documented defaults", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ port: 8080, host: "127.0.0.1", pgEngine: "native", storage: "fs", controlDb: "atlashub", bodyLimit: 1048576 });
    expect(config).toMatchObject({ maxProjectConnections: 40, projectPoolMax: 5, apiRateLimit: 50, apiRateBurst: 100 });
    expect(config.dataDir).toBe(resolve("./atlashub-data"));
    expect(config.masterKey).toBeUndefined();
  });

  it("reads ATLASHUB_* variables and lets flags win over them", () => {
    const env = { ATLASHUB_PORT: "9000", ATLASHUB_PG_PORT: "6000", ATLASHUB_TRUST_PROXY: "true" };
    expect(loadConfig(env)).toMatchObject({ port: 9000, pgPort: 6000, trustProxy: true });
    expect(loadConfig(env, ["--port", "9100"]).port).toBe(9100);
    expect(loadConfig(env, ["--pg-port=6100"]).pgPort).toBe(6100);
  });

  it("resolves a relative ATLASHUB_PG_BIN_DIR and accepts listen lists", () => {
    expect(loadConfig({ ATLASHUB_PG_BIN_DIR: "pgbin" }).pgBinDir).toBe(resolve("pgbin"));
    expect(loadConfig({ ATLASHUB_PG_LISTEN: "127.0.0.1, ::1" }).pgListen).toBe("127.0.0.1, ::1");
    expect(loadConfig({ ATLASHUB_PG_LISTEN: "*" }).pgListen).toBe("*");
  });

  it("treats an empty variable as unset", () => {
    expect(loadConfig({ ATLASHUB_PORT: "" }).port).toBe(8080);
  });

  const invalid: [string, Record<string, string>, string[], RegExp][] = [
    ["a port that is not a number", { ATLASHUB_PORT: "abc" }, [], /^invalid setting ATLASHUB_PORT \(--port\): .*got "abc"$/],
    ["a port out of range", {}, ["--port", "70000"], /ATLASHUB_PORT/],
    ["an unknown engine", { ATLASHUB_PG_ENGINE: "mysql" }, [], /ATLASHUB_PG_ENGINE/],
    ["a short master key", { ATLASHUB_MASTER_KEY: "abcd" }, [], /ATLASHUB_MASTER_KEY .*64 hex.*\(value hidden\)/],
    ["external without a URL", { ATLASHUB_PG_ENGINE: "external" }, [], /ATLASHUB_DATABASE_URL.*required/],
    ["a non-postgres URL", { ATLASHUB_DATABASE_URL: "mysql://x" }, [], /ATLASHUB_DATABASE_URL/],
    ["an unknown flag", {}, ["--prot", "1"], /unknown flag --prot/],
    ["a flag without a value", {}, ["--port"], /--port/],
    ["a bad boolean", { ATLASHUB_TRUST_PROXY: "yes" }, [], /ATLASHUB_TRUST_PROXY/],
    ["a URL that does not parse", { ATLASHUB_DATABASE_URL: "postgres://u:pw@[bad/db" }, [], /^invalid setting ATLASHUB_DATABASE_URL .*\(value hidden\)$/],
    ["a URL with a broken %-escape", { ATLASHUB_DATABASE_URL: "postgres://u:%zz@host/db" }, [], /ATLASHUB_DATABASE_URL/],
    ["a listen address that would break postgresql.conf", { ATLASHUB_PG_LISTEN: "127.0.0.1' x='y" }, [], /ATLASHUB_PG_LISTEN/],
    ["a host with spaces", { ATLASHUB_HOST: "local host" }, [], /ATLASHUB_HOST/],
    ["the planned docker engine", { ATLASHUB_PG_ENGINE: "docker" }, [], /ATLASHUB_PG_ENGINE .*docker is planned and not available in this version; use native or external/],
    ["a pool larger than the cap on project connections", { ATLASHUB_MAX_PROJECT_CONNECTIONS: "4" }, [], /^invalid setting ATLASHUB_MAX_PROJECT_CONNECTIONS .*at least ATLASHUB_PROJECT_POOL_MAX \(5\), got 4$/],
    ["a pool beyond the app role's connection limit", { ATLASHUB_PROJECT_POOL_MAX: "21" }, [], /ATLASHUB_PROJECT_POOL_MAX .*at most 20/],
    ["a zero rate limit", { ATLASHUB_API_RATE_LIMIT: "0" }, [], /ATLASHUB_API_RATE_LIMIT/],
    ["a job notify URL that is not http(s), without echoing it", { ATLASHUB_JOB_NOTIFY_URL: "ftp://hooks.example/token-123" }, [], /^invalid setting ATLASHUB_JOB_NOTIFY_URL .*\(value hidden\)$/],
    ["an unknown storage driver", { ATLASHUB_STORAGE: "gcs" }, [], /ATLASHUB_STORAGE .*must be fs or s3/],
    ["s3 storage without credentials", { ATLASHUB_STORAGE: "s3", ATLASHUB_S3_ACCESS_KEY_ID: "id" }, [], /ATLASHUB_S3_SECRET_ACCESS_KEY.*required when ATLASHUB_STORAGE=s3/],
    ["a backup bucket that is the shared storage bucket", { ATLASHUB_STORAGE: "s3", ATLASHUB_S3_ACCESS_KEY_ID: "id", ATLASHUB_S3_SECRET_ACCESS_KEY: "secret", ATLASHUB_S3_BUCKET: "shared", ATLASHUB_BACKUP_S3_BUCKET: "shared" }, [], /ATLASHUB_BACKUP_S3_BUCKET .*must not be the shared storage bucket/],
    ["backup parts smaller than 64 KiB", { ATLASHUB_BACKUP_PART_BYTES: "1000" }, [], /ATLASHUB_BACKUP_PART_BYTES .*at least 65536/],
    ["an S3 bucket name S3 would refuse", { ATLASHUB_S3_BUCKET: "Shared_Bucket" }, [], /ATLASHUB_S3_BUCKET /],
  ];
  for (const [name, env, argv, message] of invalid) {
    it(`rejects ${name} with one line naming the setting`, () => {
      let error: unknown;
      try {
        loadConfig(env, argv);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain("\n");
    });
  }

  it("never echoes a secret setting's value in its error", () => {
    const secret = "postgres-but-not://user:hunter2hunter2@host/db";
    expect(() => loadConfig({ ATLASHUB_DATABASE_URL: secret })).toThrow(ConfigError);
    try {
      loadConfig({ ATLASHUB_DATABASE_URL: secret });
    } catch (err) {
      expect((err as Error).message).not.toContain("hunter2");
    }
  });

  it("documents every setting in docs/CONFIGURATION.md", () => {
    const doc = readFileSync(resolve(import.meta.dir, "../docs/CONFIGURATION.md"), "utf8");
    for (const s of Object.values(settings)) expect(doc).toContain(s.env);
  });
});

import { resolve } from "node:path";
import { z } from "zod";
import { parseAllowList } from "./jobs/ssrf";

// Every setting AtlasHub reads, in one table: env var, CLI flag, schema, default, meaning.
// docs/CONFIGURATION.md is checked against this table by config.test.ts.

const port = z.coerce.number().int().min(1).max(65535);
const httpPort = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().min(1);
const bool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");

// A host name, IPv4 or IPv6 address; also what goes into postgresql.conf, so no quotes or spaces.
const address = z.string().regex(/^[A-Za-z0-9.:_-]+$/, "must be a host name or IP address");
const addressList = z.string().regex(/^(\*|[A-Za-z0-9.:_-]+)(\s*,\s*[A-Za-z0-9.:_-]+)*$/, "must be '*' or a comma-separated list of addresses");

function isPostgresUrl(value: string) {
  try {
    const u = new URL(value);
    decodeURIComponent(u.username);
    decodeURIComponent(u.password);
    return (u.protocol === "postgres:" || u.protocol === "postgresql:") && u.hostname !== "";
  } catch {
    return false;
  }
}

/** An http(s) base URL without query or fragment; a trailing slash is dropped. */
const httpUrl = z
  .string()
  .refine((v) => {
    try {
      const u = new URL(v);
      return (u.protocol === "http:" || u.protocol === "https:") && !u.search && !u.hash && !u.username && !u.password;
    } catch {
      return false;
    }
  }, "must be an http:// or https:// URL without query, fragment or credentials")
  .transform((v) => v.replace(/\/+$/, ""));

/** Comma-separated host names, IP addresses or CIDR ranges that jobs may reach although they are internal. */
const allowHosts = z.string().transform((v, ctx) => {
  const entries = v.split(",").map((e) => e.trim()).filter(Boolean);
  try {
    parseAllowList(entries);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: `${(err as Error).message}: use host names, IP addresses or CIDR ranges separated by commas` });
    return z.NEVER;
  }
  return entries;
});

/** An S3 bucket name (3–63 characters of lowercase letters, digits, . and -). */
const s3BucketName = z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "must be an S3 bucket name (3–63 characters: a-z, 0-9, . and -)");

/** A webhook to post to: any http(s) URL without credentials (its path or query usually holds a token). */
const webhookUrl = z.string().refine((v) => {
  try {
    const u = new URL(v);
    return (u.protocol === "http:" || u.protocol === "https:") && !u.username && !u.password;
  } catch {
    return false;
  }
}, "must be an http:// or https:// URL without credentials");

/** "7d", "12h", "30m", "45s" → seconds. */
const duration = z
  .string()
  .regex(/^\d+[dhms]$/, "must be a number followed by d, h, m or s (e.g. 7d)")
  .transform((v) => Number(v.slice(0, -1)) * { d: 86400, h: 3600, m: 60, s: 1 }[v.slice(-1) as "d" | "h" | "m" | "s"]);

/** An enum of what exists today, with a clear word for the values that are planned but not built yet. */
function available<const T extends readonly [string, ...string[]]>(values: T, planned: string[]) {
  return z.enum(values, {
    error: (issue) =>
      planned.includes(issue.input as string)
        ? `${issue.input} is planned and not available in this version; use ${values.join(" or ")}`
        : `must be one of ${values.join(", ")}`,
  });
}

function setting<S extends z.ZodType>(env: string, schema: S, fallback: string | undefined, help: string) {
  const flag = "--" + env.replace(/^ATLASHUB_/, "").toLowerCase().replaceAll("_", "-");
  return { env, flag, schema, fallback, help };
}

export const settings = {
  dataDir: setting("ATLASHUB_DATA_DIR", z.string().min(1), "./atlashub-data", "Directory for the Postgres cluster, master key and local storage."),
  host: setting("ATLASHUB_HOST", address, "127.0.0.1", "Address the HTTP server listens on (0.0.0.0 to reach it from the network)."),
  port: setting("ATLASHUB_PORT", httpPort, "8080", "HTTP port of the admin UI and APIs (0 picks a free port)."),
  masterKey: setting("ATLASHUB_MASTER_KEY", z.string().regex(/^[0-9a-f]{64}$/i, "must be 64 hex characters (32 bytes)").optional(), undefined, "Key that encrypts stored secrets; generated into <data>/master.key on first start when not set."),
  pgEngine: setting("ATLASHUB_PG_ENGINE", available(["native", "external"], ["docker"]), "native", "native: start Postgres from installed binaries; external: use ATLASHUB_DATABASE_URL; docker: planned."),
  databaseUrl: setting("ATLASHUB_DATABASE_URL", z.string().refine(isPostgresUrl, "must be a postgres://user:password@host:port/database URL").optional(), undefined, "Superuser-capable connection URL for the external engine."),
  pgBinDir: setting("ATLASHUB_PG_BIN_DIR", z.string().min(1).transform((dir) => resolve(dir)).optional(), undefined, "Directory holding initdb/postgres (default: PATH, pg_config --bindir, /usr/lib/postgresql/*/bin)."),
  pgListen: setting("ATLASHUB_PG_LISTEN", addressList, "127.0.0.1", "listen_addresses of the native Postgres."),
  pgPort: setting("ATLASHUB_PG_PORT", port, "54329", "Port of the native Postgres."),
  pgOsUser: setting("ATLASHUB_PG_OS_USER", z.string().regex(/^[a-z_][a-z0-9_-]*$/, "must be a system user name").optional(), undefined, "OS user that runs the native Postgres when AtlasHub runs as root (default: postgres, else a created atlashub user)."),
  pgMemoryMb: setting("ATLASHUB_PG_MEMORY_MB", positiveInt.optional(), undefined, "Memory to size the native Postgres for (default: the machine's total memory)."),
  publicPgHost: setting("ATLASHUB_PUBLIC_PG_HOST", address.optional(), undefined, "Host that project connection strings name (default: the engine's host)."),
  publicPgPort: setting("ATLASHUB_PUBLIC_PG_PORT", port.optional(), undefined, "Port that project connection strings name (default: the engine's port)."),
  provisionKey: setting("ATLASHUB_PROVISION_KEY", z.string().min(24, "must be at least 24 characters").optional(), undefined, "Shared key for POST /provision (besides admin API tokens); unset and without tokens the endpoint is off."),
  deletedRetention: setting("ATLASHUB_DELETED_RETENTION", duration, "7d", "How long a soft-deleted project can be restored before it is purged for good (e.g. 7d, 12h, 30m)."),
  controlDb: setting("ATLASHUB_CONTROL_DB", z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "must be a lowercase database name"), "atlashub", "Name of the control-plane database."),
  storage: setting("ATLASHUB_STORAGE", z.enum(["fs", "s3"], { error: "must be fs or s3" }), "fs", "Object storage driver: fs (local disk under <data>/storage) or s3 (S3 or MinIO, ATLASHUB_S3_*)."),
  s3Endpoint: setting("ATLASHUB_S3_ENDPOINT", httpUrl.optional(), undefined, "URL of the S3 service, e.g. http://127.0.0.1:9000 for MinIO (default: AWS S3)."),
  s3Region: setting("ATLASHUB_S3_REGION", z.string().regex(/^[a-z0-9-]{1,40}$/, "must be a region name such as us-east-1"), "us-east-1", "S3 region."),
  s3AccessKeyId: setting("ATLASHUB_S3_ACCESS_KEY_ID", z.string().min(1).optional(), undefined, "S3 access key id (required with ATLASHUB_STORAGE=s3)."),
  s3SecretAccessKey: setting("ATLASHUB_S3_SECRET_ACCESS_KEY", z.string().min(1).optional(), undefined, "S3 secret access key (required with ATLASHUB_STORAGE=s3)."),
  s3ForcePathStyle: setting("ATLASHUB_S3_FORCE_PATH_STYLE", bool, "false", "Name the bucket in the URL path instead of the host name (MinIO wants true)."),
  s3Bucket: setting("ATLASHUB_S3_BUCKET", s3BucketName.optional(), undefined, "One shared S3 bucket for all projects, with a prefix per project (default: one S3 bucket per project)."),
  s3BucketPrefix: setting("ATLASHUB_S3_BUCKET_PREFIX", z.string().regex(/^[a-z0-9][a-z0-9.-]{0,40}$/, "must be lowercase letters, digits, . and -"), "ah-", "Name prefix of the per-project S3 buckets (<prefix><project id>)."),
  storageMaxUpload: setting("ATLASHUB_STORAGE_MAX_UPLOAD", positiveInt, String(50 * 1024 * 1024), "Default largest object a signed upload URL allows, in bytes (a project can set its own)."),
  backupS3Bucket: setting("ATLASHUB_BACKUP_S3_BUCKET", s3BucketName.optional(), undefined, "S3 bucket that holds backups when ATLASHUB_STORAGE=s3 (default: <ATLASHUB_S3_BUCKET_PREFIX>backups)."),
  backupPartBytes: setting("ATLASHUB_BACKUP_PART_BYTES", positiveInt.min(65536, "must be at least 65536"), String(64 * 1024 * 1024), "Size of the parts a backup's dump is stored in, in bytes (the s3 driver stages one part on local disk at a time)."),
  backupVerify: setting("ATLASHUB_BACKUP_VERIFY", bool, "true", "After each backup, restore it into a temporary database and compare every table with the source."),
  restoreKeep: setting("ATLASHUB_RESTORE_KEEP", duration, "24h", "How long a database replaced by a restore is kept for POST /admin/api/projects/:id/restore/rollback (e.g. 24h, 7d)."),
  restoreStatementTimeout: setting("ATLASHUB_RESTORE_STATEMENT_TIMEOUT", duration, "6h", "Longest a single statement of a dump (an AtlasHub backup, an uploaded archive or .sql script) may run while it is restored or verified (e.g. 1h, 30m); past it the restore or verification fails."),
  importMaxBytes: setting("ATLASHUB_IMPORT_MAX_BYTES", positiveInt, String(1024 * 1024 * 1024), "Largest file a table import or a dump upload takes, in bytes (streamed; never held in memory)."),
  publicUrl: setting("ATLASHUB_PUBLIC_URL", httpUrl.optional(), undefined, "Base URL apps reach AtlasHub at, for signed storage URLs (default: taken from each request)."),
  bodyLimit: setting("ATLASHUB_BODY_LIMIT", positiveInt, String(1024 * 1024), "Largest accepted request body in bytes (uploads through signed URLs have their own limit)."),
  maxProjectConnections: setting("ATLASHUB_MAX_PROJECT_CONNECTIONS", positiveInt, "40", "Most Postgres backends the /v1 pools of all projects may hold together (pools × ATLASHUB_PROJECT_POOL_MAX)."),
  projectPoolMax: setting("ATLASHUB_PROJECT_POOL_MAX", positiveInt.max(20, "must be at most 20 (the app role's connection limit)"), "5", "Connections in one project's /v1 pool."),
  apiRateLimit: setting("ATLASHUB_API_RATE_LIMIT", positiveInt, "50", "Default /v1 requests per second per project and per API key (a project can set its own)."),
  apiRateBurst: setting("ATLASHUB_API_RATE_BURST", positiveInt, "100", "Default /v1 burst per project and per API key: requests allowed at once after a quiet spell."),
  sessionHours: setting("ATLASHUB_SESSION_HOURS", positiveInt, "168", "Lifetime of an admin session cookie in hours."),
  trustProxy: setting("ATLASHUB_TRUST_PROXY", bool, "false", "Take the client IP from X-Forwarded-For (only behind a reverse proxy you run)."),
  scheduler: setting("ATLASHUB_SCHEDULER", bool, "true", "Run scheduled jobs in this process (false: serve only; another instance on the same control plane runs them)."),
  jobNotifyUrl: setting("ATLASHUB_JOB_NOTIFY_URL", webhookUrl.optional(), undefined, "Webhook (Discord or any JSON endpoint) told about every job run that does not succeed, besides each job's own notify."),
  jobAllowHosts: setting("ATLASHUB_JOB_ALLOW_HOSTS", allowHosts, "", "Internal hosts, addresses or CIDR ranges that HTTP jobs and notifications may reach (comma-separated); everything private is refused otherwise."),
  logLevel: setting("ATLASHUB_LOG_LEVEL", z.enum(["debug", "info", "warn", "error"]), "info", "Lowest log level written."),
};

type Settings = typeof settings;
export type Config = { [K in keyof Settings]: z.output<Settings[K]["schema"]> };

export class ConfigError extends Error {}

/** Reads flags (`--port 9000`, `--port=9000`) over env vars over defaults; throws ConfigError naming the first bad setting. */
export function loadConfig(env: Record<string, string | undefined>, argv: string[] = []): Config {
  const flags = parseFlags(argv);
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(settings)) {
    const raw = flags.get(s.flag) ?? emptyToUndefined(env[s.env]) ?? s.fallback;
    const parsed = s.schema.safeParse(raw);
    if (!parsed.success) {
      const shown = ["ATLASHUB_MASTER_KEY", "ATLASHUB_DATABASE_URL", "ATLASHUB_PROVISION_KEY", "ATLASHUB_S3_SECRET_ACCESS_KEY", "ATLASHUB_JOB_NOTIFY_URL"].includes(s.env) ? "(value hidden)" : JSON.stringify(raw);
      throw new ConfigError(`invalid setting ${s.env} (${s.flag}): ${parsed.error.issues[0]?.message ?? "invalid"}, got ${shown}`);
    }
    out[key] = parsed.data;
  }
  const config = out as Config;
  config.dataDir = resolve(config.dataDir);
  if (config.pgEngine === "external" && !config.databaseUrl) {
    throw new ConfigError("invalid setting ATLASHUB_DATABASE_URL (--database-url): required when ATLASHUB_PG_ENGINE=external");
  }
  if (config.storage === "s3" && (!config.s3AccessKeyId || !config.s3SecretAccessKey)) {
    throw new ConfigError("invalid setting ATLASHUB_S3_ACCESS_KEY_ID / ATLASHUB_S3_SECRET_ACCESS_KEY (--s3-access-key-id / --s3-secret-access-key): both are required when ATLASHUB_STORAGE=s3");
  }
  if (config.storage === "s3" && config.s3Bucket !== undefined && (config.backupS3Bucket ?? `${config.s3BucketPrefix}backups`) === config.s3Bucket) {
    throw new ConfigError("invalid setting ATLASHUB_BACKUP_S3_BUCKET (--backup-s3-bucket): must not be the shared storage bucket ATLASHUB_S3_BUCKET");
  }
  if (config.projectPoolMax > config.maxProjectConnections) {
    throw new ConfigError(
      `invalid setting ATLASHUB_MAX_PROJECT_CONNECTIONS (--max-project-connections): must be at least ATLASHUB_PROJECT_POOL_MAX (${config.projectPoolMax}), got ${config.maxProjectConnections}`,
    );
  }
  return config;
}

function parseFlags(argv: string[]): Map<string, string> {
  const known = new Set(Object.values(settings).map((s) => s.flag));
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) continue;
    const [name, inline] = splitOnce(arg, "=");
    if (!known.has(name)) throw new ConfigError(`unknown flag ${name} (see --help)`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new ConfigError(`invalid setting ${name}: a value is required`);
    flags.set(name, value);
  }
  return flags;
}

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const at = s.indexOf(sep);
  return at < 0 ? [s, undefined] : [s.slice(0, at), s.slice(at + 1)];
}

function emptyToUndefined(v: string | undefined) {
  return v === undefined || v === "" ? undefined : v;
}

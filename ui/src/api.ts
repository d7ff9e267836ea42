// The one client of the admin API (docs/API.md). Every call goes through `request`, which sends the
// session cookie, turns the server's error shape into an ApiError and sends a 401 to the sign-in page.

export interface Page<T> {
  items: T[];
  limit: number;
  offset: number;
}

export type ProjectStatus =
  | "pending"
  | "creating_roles"
  | "creating_db"
  | "configuring"
  | "ready"
  | "failed"
  | "deleting"
  | "deleted"
  | "restoring"
  | "purging"
  | "purged";

export type RoleKind = "owner" | "app" | "ro";

export interface Project {
  id: string;
  name: string;
  description: string;
  status: ProjectStatus;
  failure_reason: string | null;
  rate_limit_rps: number | null;
  rate_limit_burst: number | null;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
  purged_at?: string | null;
  /** List and get only: the database's size (ready and deleted projects), else null. */
  size_bytes?: number | null;
  /** List and get only: the latest use of any of the project's API keys, null when none. */
  last_activity_at?: string | null;
  database: {
    name: string;
    host: string;
    port: number;
    sslmode: string;
    roles: Record<RoleKind, string>;
    extensions: string[];
  };
}

export interface Credential {
  role: string;
  password: string;
  connection_string: string;
}
export type Credentials = Record<RoleKind, Credential>;

export type Access = "read" | "write" | "migrate";
export interface DbUser {
  username: string;
  access: Access;
  role_name: string;
  created_at: string;
  password_changed_at: string;
}
export interface DbUserWithPassword extends DbUser {
  password: string;
  connection_string: string;
}

export type KeyKind = "publishable" | "secret";
export interface ApiKey {
  id: string;
  name: string;
  kind: KeyKind;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  replaced_by: string | null;
  status: "active" | "rotating" | "expired" | "revoked";
}
export interface NewApiKey extends ApiKey {
  key: string;
}

export interface Bucket {
  name: string;
  public: boolean;
  created_at: string;
  objects: number;
  bytes: number;
}
export interface StoredObject {
  key: string;
  size: number;
  content_type: string;
  sha256: string | null;
  uploaded_by: string | null;
  created_at: string;
  updated_at: string;
}

export interface AuditEntry {
  id: string;
  at: string;
  actor_type: "admin" | "token" | "cli" | "system" | "anonymous";
  actor_id: string | null;
  actor_label: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  request_id: string | null;
  ip: string | null;
  details: Record<string, unknown>;
}

export interface SqlColumn {
  name: string;
  /** As Postgres' format_type writes it: "integer", "timestamp with time zone", "text[]". */
  type: string;
}
/** POST /admin/api/projects/:id/sql: one statement, run as the project's owner role. */
export interface SqlResult {
  columns: SqlColumn[];
  rows: unknown[][];
  row_count: number | null;
  truncated: boolean;
  duration_ms: number;
  notices: { severity: string; code: string; message: string }[];
  command: string | null;
}

export type HttpMethod = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
export type RunStatus = "running" | "succeeded" | "failed" | "timed_out" | "skipped";
export interface JobHttp {
  method: HttpMethod;
  url: string;
  /** Secret headers come back as "********". */
  headers: Record<string, string>;
  secret_headers: string[];
  body: string | null;
  timeout_ms: number;
}
/** A scheduled job (docs/API.md "Jobs"): an HTTP call, or a platform job (name "platform/…"). */
export interface Job {
  id: string;
  name: string;
  project_id: string | null;
  kind: "http" | "platform";
  schedule: string;
  timezone: string;
  enabled: boolean;
  http?: JobHttp;
  task?: string;
  description?: string | null;
  retries: number;
  backoff_ms: number;
  missed: "skip" | "run_once";
  concurrency: "forbid" | "allow";
  notify: { on: "failure" | "always"; webhook_url: string } | null;
  next_run_at: string | null;
  last_run: { id: string; status: RunStatus; scheduled_for: string; finished_at: string | null } | null;
  created_at: string;
  updated_at: string;
}
export interface JobInput {
  name?: string;
  schedule?: string;
  timezone?: string;
  enabled?: boolean;
  kind?: "http";
  http?: { method: HttpMethod; url: string; headers?: Record<string, string | null>; body?: string; timeout_ms?: number };
  retries?: number;
  missed?: "skip" | "run_once";
}
export interface JobRun {
  id: string;
  job_id: string;
  scheduled_for: string;
  trigger: "schedule" | "manual";
  status: RunStatus;
  attempt: number;
  started_at: string | null;
  finished_at: string | null;
  duration_ms: number | null;
  response_status: number | null;
  response_body: string | null;
  error: string | null;
}

export type BackupStatus = "running" | "completed" | "verified" | "failed";
/** A backup of a project's database and files (docs/API.md "Backups"). */
export interface Backup {
  id: string;
  project_id: string;
  status: BackupStatus;
  trigger: "manual" | "schedule" | "upload";
  scheduled_for: string | null;
  /** While running: the bytes written so far. */
  bytes: { dump: number; files: number; total: number };
  dump_parts: number;
  files_count: number;
  failure_reason: string | null;
  verify_started_at: string | null;
  verified_at: string | null;
  verify_error: string | null;
  created_by: string | null;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
}
export interface BackupSchedule {
  enabled: boolean;
  /** A cron expression (default "0 3 * * *": daily at 03:00). */
  schedule: string;
  timezone: string;
  keep_daily: number;
  keep_weekly: number;
  last_occurrence: string | null;
  next_run: string | null;
}
export type BackupScheduleInput = Partial<Pick<BackupSchedule, "enabled" | "schedule" | "timezone" | "keep_daily" | "keep_weekly">>;
export type RestoreMode = "replace" | "new_project";
export interface Restore {
  id: string;
  /** For a new_project restore, the new project. */
  project_id: string;
  source_project_id: string;
  backup_id: string;
  mode: RestoreMode;
  status: "restoring" | "swapping" | "finished" | "failed" | "rolling_back" | "rolled_back";
  files_restored: number;
  failure_reason: string | null;
  created_by: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
  /** Until when POST …/restore/rollback can swap the replaced database back. */
  rollback_until: string | null;
  rolled_back_at: string | null;
}
export type RestoreInput = { mode: "replace"; confirm: string } | { mode: "new_project"; confirm: string; name: string; description?: string };

export type DataFormat = "csv" | "json" | "ndjson";
export interface ImportOptions {
  format: DataFormat;
  mode: "insert" | "upsert";
  dry_run: boolean;
  /** {"file column": "table column" | null (left out)}. */
  mapping?: Record<string, string | null>;
}
export interface ImportRowError {
  /** The data row, 1-based (the CSV header is not a row). */
  row: number;
  /** The line of the file the row starts on (CSV, NDJSON). */
  line?: number;
  message: string;
}
/** An import as it runs (GET …/imports/:import): bytes and rows received so far. */
export interface ImportRun {
  id: string;
  table: string;
  status: "running" | "succeeded" | "failed" | "interrupted";
  phase: "receiving" | "inserting" | "checking_rows" | null;
  bytes: number;
  rows: number;
}
export interface ImportResult {
  dry_run: boolean;
  mode: "insert" | "upsert";
  rows: number;
  inserted: number;
  updated: number;
  errors: ImportRowError[];
}

export interface Me {
  id: string;
  email: string;
  via: "admin" | "token";
}

/** The server's error shape, with the HTTP status; `retryAfter` (seconds) on 429. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

let onUnauthorized: () => void = () => {};
/** Called when a request answers 401 (the session ended): the app goes to the sign-in page. */
export function setUnauthorizedHandler(handler: () => void) {
  onUnauthorized = handler;
}

async function toError(res: Response): Promise<ApiError> {
  const retry = Number(res.headers.get("retry-after")) || undefined;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string; details?: Record<string, unknown> } };
    if (body.error?.code) return new ApiError(res.status, body.error.code, body.error.message ?? res.statusText, body.error.details, retry);
  } catch {}
  return new ApiError(res.status, "http_error", `${res.status} ${res.statusText || "error"}`, undefined, retry);
}

async function request<T>(method: string, path: string, body?: unknown, options: { quiet401?: boolean; headers?: Record<string, string> } = {}): Promise<T> {
  let res: Response;
  // A file goes as it is (streamed by the browser); anything else as JSON.
  const raw = body instanceof Blob;
  try {
    res = await fetch(`/admin/api${path}`, {
      method,
      credentials: "same-origin",
      headers: { ...(body === undefined ? {} : { "content-type": raw ? body.type || "application/octet-stream" : "application/json" }), ...options.headers },
      body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network_error", "The server did not answer. Is AtlasHub running?");
  }
  if (!res.ok) {
    const error = await toError(res);
    if (res.status === 401 && !options.quiet401) onUnauthorized();
    throw error;
  }
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

const q = (params: Record<string, string | number | undefined>) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") s.set(k, String(v));
  const text = s.toString();
  return text ? `?${text}` : "";
};
const enc = encodeURIComponent;
/** An object key in a URL path: each segment encoded, the slashes kept. */
export const keyPath = (key: string) => key.split("/").map(enc).join("/");

export const api = {
  login: (email: string, password: string) =>
    request<{ user: { id: string; email: string }; expires_at: string }>("POST", "/login", { email, password }, { quiet401: true }),
  /** Whether the server still has no admin, so the first-run setup screen is shown instead of sign-in. */
  setupStatus: () => request<{ needed: boolean }>("GET", "/setup", undefined, { quiet401: true }),
  /** Creates the first admin with the one-time token from the server log, and signs them in. */
  setup: (input: { token: string; email: string; password: string }) =>
    request<{ user: { id: string; email: string }; expires_at: string }>("POST", "/setup", input, { quiet401: true }),
  logout: () => request<void>("POST", "/logout"),
  me: () => request<Me>("GET", "/me", undefined, { quiet401: true }),

  projects: {
    list: (params: { status?: ProjectStatus; limit?: number; offset?: number } = {}) => request<Page<Project>>("GET", `/projects${q(params)}`),
    get: (id: string) => request<Project>("GET", `/projects/${enc(id)}`),
    create: (input: { name: string; description?: string }) => request<Project & { credentials: Credentials }>("POST", "/projects", input),
    update: (id: string, input: { name?: string; description?: string }) => request<Project>("PATCH", `/projects/${enc(id)}`, input),
    remove: (id: string) => request<Project>("DELETE", `/projects/${enc(id)}`),
    purge: (id: string, confirm: string) => request<Project>("DELETE", `/projects/${enc(id)}?purge=true`, { confirm }),
    restore: (id: string) => request<Project>("POST", `/projects/${enc(id)}/restore`),
    retry: (id: string) => request<Project>("POST", `/projects/${enc(id)}/retry`),
    reveal: (id: string) => request<{ credentials: Credentials }>("POST", `/projects/${enc(id)}/credentials/reveal`),
    rotate: (id: string, role: RoleKind) => request<Credential>("POST", `/projects/${enc(id)}/credentials/rotate`, { role }),
  },

  users: {
    list: (project: string) => request<{ items: DbUser[] }>("GET", `/projects/${enc(project)}/users`),
    create: (project: string, input: { username: string; access: Access }) => request<DbUserWithPassword>("POST", `/projects/${enc(project)}/users`, input),
    regenerate: (project: string, username: string) =>
      request<DbUserWithPassword>("POST", `/projects/${enc(project)}/users/${enc(username)}/regenerate-password`),
    remove: (project: string, username: string) => request<void>("DELETE", `/projects/${enc(project)}/users/${enc(username)}`),
  },

  keys: {
    list: (project: string) => request<Page<ApiKey>>("GET", `/projects/${enc(project)}/keys?limit=1000`),
    create: (project: string, input: { name: string; kind: KeyKind; expires_at?: string }) => request<NewApiKey>("POST", `/projects/${enc(project)}/keys`, input),
    rotate: (project: string, keyId: string, graceHours: number) =>
      request<NewApiKey>("POST", `/projects/${enc(project)}/keys/${enc(keyId)}/rotate`, { grace_hours: graceHours }),
    revoke: (project: string, keyId: string) => request<void>("DELETE", `/projects/${enc(project)}/keys/${enc(keyId)}`),
  },

  storage: {
    buckets: (project: string) => request<{ items: Bucket[] }>("GET", `/projects/${enc(project)}/storage/buckets`),
    createBucket: (project: string, input: { name: string; public: boolean }) => request<Bucket>("POST", `/projects/${enc(project)}/storage/buckets`, input),
    updateBucket: (project: string, bucket: string, input: { public: boolean }) =>
      request<Bucket>("PATCH", `/projects/${enc(project)}/storage/buckets/${enc(bucket)}`, input),
    deleteBucket: (project: string, bucket: string) => request<void>("DELETE", `/projects/${enc(project)}/storage/buckets/${enc(bucket)}?force=true`),
    objects: (project: string, bucket: string, params: { prefix?: string; cursor?: string; limit?: number }) =>
      request<{ items: StoredObject[]; next_cursor: string | null }>("GET", `/projects/${enc(project)}/storage/buckets/${enc(bucket)}/objects${q(params)}`),
    objectUrl: (project: string, bucket: string, key: string) => `/admin/api/projects/${enc(project)}/storage/buckets/${enc(bucket)}/objects/${keyPath(key)}`,
    deleteObject: (project: string, bucket: string, key: string) =>
      request<void>("DELETE", `/projects/${enc(project)}/storage/buckets/${enc(bucket)}/objects/${keyPath(key)}`),
    settings: (project: string) => request<{ max_upload_bytes: number | null; effective_max_upload_bytes: number }>("GET", `/projects/${enc(project)}/storage/settings`),
  },

  sql: (project: string, query: string) => request<SqlResult>("POST", `/projects/${enc(project)}/sql`, { query }),

  jobs: {
    list: () => request<Page<Job>>("GET", "/jobs?limit=1000"),
    create: (input: JobInput) => request<Job>("POST", "/jobs", input),
    update: (id: string, input: JobInput) => request<Job>("PATCH", `/jobs/${enc(id)}`, input),
    remove: (id: string) => request<void>("DELETE", `/jobs/${enc(id)}`),
    run: (id: string) => request<{ run_id: string }>("POST", `/jobs/${enc(id)}/run`),
    runs: (id: string, limit = 20) => request<Page<JobRun>>("GET", `/jobs/${enc(id)}/runs?limit=${limit}`),
    preview: (schedule: string, timezone: string) =>
      request<{ schedule: string; timezone: string; next_runs: string[] }>("GET", `/jobs/preview${q({ schedule, timezone })}`),
  },

  backups: {
    list: (project: string) => request<Page<Backup>>("GET", `/projects/${enc(project)}/backups?limit=100`),
    get: (project: string, backup: string) => request<Backup>("GET", `/projects/${enc(project)}/backups/${enc(backup)}`),
    create: (project: string) => request<{ id: string; status: BackupStatus }>("POST", `/projects/${enc(project)}/backups`),
    remove: (project: string, backup: string) => request<void>("DELETE", `/projects/${enc(project)}/backups/${enc(backup)}`),
    verify: (project: string, backup: string) => request<{ id: string; verifying: boolean }>("POST", `/projects/${enc(project)}/backups/${enc(backup)}/verify`),
    /** A URL that downloads the dump without the session (15 minutes by default). */
    downloadUrl: (project: string, backup: string) =>
      request<{ url: string; expires_at: string }>("POST", `/projects/${enc(project)}/backups/${enc(backup)}/download-url`, {}),
    /** An existing pg_dump -Fc file, taken as a backup. */
    upload: (project: string, file: File) => request<Backup>("PUT", `/projects/${enc(project)}/backups/upload`, file),
    schedule: (project: string) => request<BackupSchedule>("GET", `/projects/${enc(project)}/backups/schedule`),
    setSchedule: (project: string, input: BackupScheduleInput) => request<BackupSchedule>("PUT", `/projects/${enc(project)}/backups/schedule`, input),
    restore: (project: string, backup: string, input: RestoreInput) =>
      request<Restore & { project?: Project & { credentials: Credentials } }>("POST", `/projects/${enc(project)}/backups/${enc(backup)}/restore`, input),
    restores: (project: string) => request<Page<Restore>>("GET", `/projects/${enc(project)}/restores?limit=20`),
    rollback: (project: string) => request<Restore>("POST", `/projects/${enc(project)}/restore/rollback`),
  },

  tables: {
    /** The export's URL: the file downloads with the session cookie; `filters` in the /v1/db grammar. */
    exportUrl: (project: string, table: string, format: DataFormat, filters: [string, string][] = []) =>
      `/admin/api/projects/${enc(project)}/tables/${enc(table)}/export?${new URLSearchParams([["format", format], ...filters])}`,
    /** `importId` (a UUID) names the run, to follow it with importRun while this request goes on. */
    import: (project: string, table: string, file: File, options: ImportOptions, importId?: string) =>
      request<ImportResult>(
        "POST",
        `/projects/${enc(project)}/tables/${enc(table)}/import${q({ format: options.format, mode: options.mode, dry_run: String(options.dry_run), mapping: options.mapping && JSON.stringify(options.mapping) })}`,
        file,
        { headers: importId ? { "x-import-id": importId } : undefined },
      ),
    importRun: (project: string, importId: string) => request<ImportRun>("GET", `/projects/${enc(project)}/imports/${enc(importId)}`),
  },

  audit: (params: { action?: string; limit?: number; offset?: number }) => request<Page<AuditEntry>>("GET", `/audit${q(params)}`),
};

/**
 * Uploads through the admin API with progress (fetch cannot report upload progress; XHR can).
 * Resolves with the stored object's metadata; rejects with an ApiError.
 */
export function uploadObject(project: string, bucket: string, key: string, file: File, onProgress: (sent: number, total: number) => void, signal?: AbortSignal) {
  return new Promise<StoredObject>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", api.storage.objectUrl(project, bucket, key));
    xhr.setRequestHeader("content-type", file.type || "application/octet-stream");
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      let body: any;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {}
      if (xhr.status >= 200 && xhr.status < 300) return resolve(body as StoredObject);
      if (xhr.status === 401) onUnauthorized();
      const e = body?.error;
      reject(new ApiError(xhr.status, e?.code ?? "http_error", e?.message ?? `Upload failed (${xhr.status})`, e?.details));
    };
    xhr.onerror = () => reject(new ApiError(0, "network_error", "The upload was interrupted."));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "Upload cancelled."));
    signal?.addEventListener("abort", () => xhr.abort());
    xhr.send(file);
  });
}

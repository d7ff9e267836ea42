import { randomBytes } from "node:crypto";
import { z } from "zod";
import type { AppContext } from "../context";
import type { Db } from "../platform/db";
import { decryptSecret, encryptSecret, randomPassword } from "../platform/crypto";
import { errors, ApiError } from "../http/errors";
import { pageSchema, safeText } from "../http/schemas";
import { advance, databaseName, FIRST_STATUS, isTransient, ROLE_KINDS, roleName, type Operation, type ProjectStatus, type RoleKind } from "./provision";
import { crashPoint } from "./crash";
import { forgetProjectKeys } from "../keys/service";
import { createDefaultBuckets } from "../storage/service";

export const projectName = z
  .string()
  .regex(/^[a-z0-9_-]{3,40}$/, "must be 3–40 characters: lowercase letters, digits, - and _");

export const createProjectSchema = z.object({ name: projectName, description: safeText(500).optional() });
// A project's own /v1 rate limit; null goes back to the server default.
const rateLimitValue = z.number().int().min(1).max(1_000_000).nullable().optional();

export const updateProjectSchema = z
  .object({
    name: projectName.optional(),
    description: z.union([safeText(500), z.literal("")]).optional(),
    rate_limit_rps: rateLimitValue,
    rate_limit_burst: rateLimitValue,
  })
  .refine((v) => Object.values(v).some((x) => x !== undefined), "give name, description, rate_limit_rps or rate_limit_burst");

export interface ProjectRow {
  id: string;
  name: string;
  description: string;
  status: ProjectStatus;
  operation: Operation;
  failure_reason: string | null;
  has_vector: boolean;
  rate_limit_rps: number | null;
  rate_limit_burst: number | null;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
  purged_at: Date | null;
}

/** List and get add what the console shows beside a project; other answers leave these out. */
export interface ProjectStats {
  size_bytes: number | null;
  last_activity_at: Date | null;
}

const PROJECT_COLUMNS = ["id", "name", "description", "status", "operation", "failure_reason", "has_vector", "rate_limit_rps", "rate_limit_burst", "created_at", "updated_at", "deleted_at", "purged_at"];

/** 10 characters of [a-z0-9]: short, opaque, never derived from the name (names show in pg_database). */
function newProjectId() {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  return [...randomBytes(10)].map((b) => alphabet[b % 36]).join("");
}

/** Where apps reach a project's database: the public host/port when configured, else the engine's. */
function endpoint(ctx: AppContext, projectId: string) {
  const engine = ctx.engine.superuser();
  return {
    name: databaseName(projectId),
    host: ctx.config.publicPgHost ?? engine.host,
    port: ctx.config.publicPgPort ?? engine.port,
    sslmode: engine.ssl ?? "disable",
  };
}

/** The public view of a project, with where and as whom to connect (never passwords). */
export function presentProject(ctx: AppContext, p: ProjectRow | (ProjectRow & ProjectStats)) {
  return {
    id: p.id,
    name: p.name,
    description: p.description,
    status: p.status,
    failure_reason: p.failure_reason,
    rate_limit_rps: p.rate_limit_rps,
    rate_limit_burst: p.rate_limit_burst,
    created_at: p.created_at,
    updated_at: p.updated_at,
    deleted_at: p.deleted_at,
    ...(p.status === "purged" ? { purged_at: p.purged_at } : {}),
    ...("size_bytes" in p ? { size_bytes: p.size_bytes, last_activity_at: p.last_activity_at } : {}),
    database: {
      ...endpoint(ctx, p.id),
      roles: Object.fromEntries(ROLE_KINDS.map((k) => [k, roleName(p.id, k)])) as Record<RoleKind, string>,
      extensions: p.has_vector ? ["vector"] : [],
    },
  };
}

export function connectionString(ctx: AppContext, projectId: string, role: string, password: string) {
  const db = endpoint(ctx, projectId);
  const host = db.host.includes(":") ? `[${db.host}]` : db.host;
  return `postgresql://${encodeURIComponent(role)}:${encodeURIComponent(password)}@${host}:${db.port}/${db.name}?sslmode=${db.sslmode}`;
}

/**
 * Inserts the project and its encrypted role passwords (one transaction, with the audit entry via
 * `record`), then provisions it. Returns the project and the plaintext passwords, shown this once.
 */
export async function createProject(ctx: AppContext, input: z.infer<typeof createProjectSchema>, record: (db: Db, p: ProjectRow) => Promise<unknown>) {
  const id = newProjectId();
  const passwords = Object.fromEntries(ROLE_KINDS.map((k) => [k, randomPassword(32)])) as Record<RoleKind, string>;
  const insert = async () => {
    await ctx.sql
      .begin(async (tx) => {
        const [project] = await tx<ProjectRow[]>`
          insert into projects (id, name, description, status, operation) values (${id}, ${input.name}, ${input.description ?? ""}, 'pending', 'create')
          returning ${tx(PROJECT_COLUMNS)}`;
        for (const kind of ROLE_KINDS) {
          await tx`insert into project_roles (project_id, kind, role_name, password_enc)
                   values (${id}, ${kind}, ${roleName(id, kind)}, ${encryptSecret(ctx.masterKey, passwords[kind])})`;
        }
        await createDefaultBuckets(tx, id);
        await record(tx, project!);
      })
      .catch(rethrowNameConflict(input.name));
    crashPoint("created");
  };
  const status = await runOperation(ctx, id, insert);
  const project = await getProject(ctx, id);
  if (status !== "ready") throw provisioningFailed(project);
  return { project, credentials: credentials(ctx, id, passwords) };
}

export async function getProject(ctx: AppContext, id: string): Promise<ProjectRow> {
  if (!/^[a-z0-9]{10}$/.test(id)) throw errors.notFound("project");
  const [project] = await ctx.sql<ProjectRow[]>`select ${ctx.sql(PROJECT_COLUMNS)} from projects where id = ${id}`;
  if (!project) throw errors.notFound("project");
  return project;
}

/**
 * Adds size_bytes (the database's size, for ready and deleted projects — the ones whose database
 * exists and is not being made or dropped) and last_activity_at (the latest last_used_at of its API
 * keys) to the projects `rows` selects, in the same statement: the control-plane pool is a superuser
 * of the cluster, so it sees every database in pg_database. Costs one directory walk per project on
 * the page, no round trips.
 */
function withStats(sql: Db, rows: ReturnType<Db>) {
  return sql<(ProjectRow & ProjectStats)[]>`
    select p.*,
      case when p.status in ('ready', 'deleted') then
        (select pg_database_size(d.oid)::float8 from pg_database d where d.datname = 'p_' || p.id) end as size_bytes,
      (select max(k.last_used_at) from api_keys k where k.project_id = p.id) as last_activity_at
    from (${rows}) p
    order by p.created_at desc, p.id`;
}

/** A project with its size and last activity (GET /:id). */
export async function getProjectWithStats(ctx: AppContext, id: string) {
  if (!/^[a-z0-9]{10}$/.test(id)) throw errors.notFound("project");
  const [project] = await withStats(ctx.sql, ctx.sql`select ${ctx.sql(PROJECT_COLUMNS)} from projects where id = ${id}`);
  if (!project) throw errors.notFound("project");
  return project;
}

export const listProjectsQuery = pageSchema.extend({
  status: z.enum(["pending", "creating_roles", "creating_db", "configuring", "ready", "failed", "deleting", "deleted", "restoring", "purging", "purged"]).optional(),
});

/** Newest first, with size and last activity; purged projects only when asked for by status. */
export async function listProjects(ctx: AppContext, q: z.infer<typeof listProjectsQuery>) {
  const sql = ctx.sql;
  return withStats(
    sql,
    sql`
      select ${sql(PROJECT_COLUMNS)} from projects
      where ${q.status ? sql`status = ${q.status}` : sql`status <> 'purged'`}
      order by created_at desc, id limit ${q.limit} offset ${q.offset}`,
  );
}

export async function updateProject(db: Db, id: string, input: z.infer<typeof updateProjectSchema>) {
  // A field left out keeps its value; a rate limit given as null goes back to the default.
  const given = (column: keyof typeof input) => (input[column] === undefined ? db(column) : input[column]);
  const [project] = await db<ProjectRow[]>`
    update projects set name = ${given("name")}, description = ${given("description")},
      rate_limit_rps = ${given("rate_limit_rps")}, rate_limit_burst = ${given("rate_limit_burst")}, updated_at = now()
    where id = ${id} and status <> 'purged' returning ${db(PROJECT_COLUMNS)}`.catch(rethrowNameConflict(input.name ?? ""));
  if (!project) throw errors.notFound("project");
  forgetProjectKeys(id);
  return project;
}

/**
 * Starts an operation (delete, restore, purge, or a retry of a failed one) when the project's status
 * allows it, then runs the state machine. The status change and its audit entry are one transaction.
 */
export async function startOperation(ctx: AppContext, id: string, operation: Operation | "retry", record: (db: Db, p: ProjectRow) => Promise<unknown>) {
  const allowed: Record<Operation | "retry", ProjectStatus[]> = {
    create: [],
    delete: ["ready"],
    restore: ["deleted"],
    purge: ["ready", "deleted", "failed"],
    retry: ["failed"],
  };
  await getProject(ctx, id); // 404 for malformed and unknown ids before taking any lock
  const changeStatus = () =>
    ctx.sql.begin(async (tx) => {
      const [current] = await tx<ProjectRow[]>`select ${tx(PROJECT_COLUMNS)} from projects where id = ${id} for update`;
      if (!current || current.status === "purged") throw errors.notFound("project");
      if (!allowed[operation].includes(current.status)) {
        throw errors.conflict(`The project is ${current.status}; it cannot be ${operation === "retry" ? "retried" : operation + "d"} now.`);
      }
      const op = operation === "retry" ? current.operation : operation;
      await tx`update projects set status = ${FIRST_STATUS[op]}, operation = ${op}, failure_reason = null, updated_at = now() where id = ${id}`;
      await record(tx, current);
    });
  try {
    await runOperation(ctx, id, changeStatus);
  } finally {
    // The database refuses connections now: this process's pool and cached keys go at once.
    if (operation !== "restore") {
      forgetProjectKeys(id);
      await ctx.pools.close(id);
    }
  }
  const project = await getProject(ctx, id);
  if (project.status === "failed") throw provisioningFailed(project);
  return project;
}

/** The passwords of the project's three roles, with their connection strings. */
export async function revealCredentials(ctx: AppContext, id: string) {
  const project = await getProject(ctx, id);
  if (project.status !== "ready") throw errors.conflict(`The project is ${project.status}; credentials are shown for ready projects only.`);
  const roles = await ctx.sql<{ kind: RoleKind; password_enc: string }[]>`
    select kind, password_enc from project_roles where project_id = ${id}`;
  return credentials(ctx, id, Object.fromEntries(roles.map((r) => [r.kind, decryptSecret(ctx.masterKey, r.password_enc)])) as Record<RoleKind, string>);
}

/**
 * Inside the transaction of an operation on a ready project (users, keys, passwords): the project
 * must be ready and stays so until commit (FOR SHARE conflicts with the FOR UPDATE that starts a
 * delete or purge), so a purge cannot slip in between and leave something behind.
 */
export async function lockReadyProject(tx: Db, projectId: string, what: string) {
  const [project] = await tx<{ status: string }[]>`select status from projects where id = ${projectId} for share`;
  if (!project || project.status === "purged") throw errors.notFound("project");
  if (project.status !== "ready") throw errors.conflict(`The project is ${project.status}; ${what} on ready projects only.`);
}

/**
 * A new password for one of the project's roles: stored (encrypted), set in Postgres and audited in
 * one transaction; then the role's sessions are ended. Returns the role's new credentials, shown once.
 */
export async function rotateRolePassword(ctx: AppContext, id: string, kind: RoleKind, record: (db: Db) => Promise<unknown>) {
  await getProject(ctx, id);
  const password = randomPassword(32);
  const role = roleName(id, kind);
  await ctx.clusterSql.begin(async (tx) => {
    await lockReadyProject(tx, id, "passwords are rotated");
    await tx`update project_roles set password_enc = ${encryptSecret(ctx.masterKey, password)} where project_id = ${id} and kind = ${kind}`;
    await tx`select atlashub_set_role_password(${role}, ${password})`;
    await record(tx);
  });
  await ctx.clusterSql`select pg_terminate_backend(pid) from pg_stat_activity where usename = ${role}`;
  return { role, password, connection_string: connectionString(ctx, id, role, password) };
}

function credentials(ctx: AppContext, projectId: string, passwords: Record<RoleKind, string>) {
  return Object.fromEntries(
    ROLE_KINDS.map((kind) => {
      const role = roleName(projectId, kind);
      return [kind, { role, password: passwords[kind], connection_string: connectionString(ctx, projectId, role, passwords[kind]) }];
    }),
  ) as Record<RoleKind, { role: string; password: string; connection_string: string }>;
}

/**
 * Runs the state machine for a request. A transient database error (the cluster busy, a lock wait
 * timing out) leaves the operation under way; the reconciler finishes it, and the client hears 503.
 */
async function runOperation(ctx: AppContext, id: string, start: () => Promise<unknown>) {
  try {
    return await advance(ctx, id, "wait", start);
  } catch (err) {
    if (!isTransient(err)) throw err;
    throw new ApiError(503, "operation_pending", `The database is busy; project ${id} will be finished by the reconciler within a minute.`, { project_id: id }, { "Retry-After": "60" });
  }
}

/** The reason stays on the project (GET shows failure_reason); the answer names the project only. */
function provisioningFailed(project: ProjectRow) {
  return new ApiError(500, "provisioning_failed", `Project ${project.id} failed during ${project.operation}; see its failure_reason, then retry or purge it.`, {
    project_id: project.id,
    status: project.status,
  });
}

function rethrowNameConflict(name: string) {
  return (err: unknown) => {
    if ((err as { code?: string }).code === "23505") throw errors.conflict(`A project named ${name} already exists.`);
    throw err;
  };
}

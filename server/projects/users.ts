// Database users of a project: login roles p_<id>_u_<username>, each a member of the project's
// ro (read), app (write) or owner (migrate) role. Creating, re-keying and dropping a user is one
// transaction with its control-plane row and audit entry: roles live in the same cluster, and
// CREATE/DROP ROLE are transactional, so a crash leaves either all of it or none.
import postgres from "postgres";
import { z } from "zod";
import type { AppContext } from "../context";
import type { Db } from "../platform/db";
import { randomPassword } from "../platform/crypto";
import { errors } from "../http/errors";
import { connectionString, getProject } from "./service";
import { databaseName, roleName, type RoleKind } from "./provision";

export const createUserSchema = z.object({
  username: z.string().regex(/^[a-z][a-z0-9_]{2,31}$/, "must be 3–32 characters of a-z, 0-9 and _, starting with a letter"),
  access: z.enum(["read", "write", "migrate"]),
});

const ROLE_FOR_ACCESS: Record<z.infer<typeof createUserSchema>["access"], RoleKind> = { read: "ro", write: "app", migrate: "owner" };
const USER_CONNECTION_LIMIT = 5;

export interface ProjectUser {
  username: string;
  access: "read" | "write" | "migrate";
  role_name: string;
  created_at: Date;
  password_changed_at: Date;
}

const userRole = (projectId: string, username: string) => roleName(projectId, `u_${username}`);

async function readyProject(ctx: AppContext, projectId: string) {
  const project = await getProject(ctx, projectId);
  if (project.status !== "ready") throw errors.conflict(`The project is ${project.status}; database users can be managed on ready projects only.`);
  return project;
}

/** Returns the user and its password, shown this once. `record` writes the audit entry in the same transaction. */
export async function createUser(ctx: AppContext, projectId: string, input: z.infer<typeof createUserSchema>, record: (db: Db) => Promise<unknown>) {
  await readyProject(ctx, projectId);
  const role = userRole(projectId, input.username);
  const password = randomPassword(32);
  const user = await ctx.clusterSql
    .begin(async (tx) => {
      const [row] = await tx<ProjectUser[]>`
        insert into project_users (project_id, username, access, role_name) values (${projectId}, ${input.username}, ${input.access}, ${role})
        returning username, access, role_name, created_at, password_changed_at`;
      await tx`create role ${tx(role)} with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls
               connection limit ${tx.unsafe(String(USER_CONNECTION_LIMIT))}`;
      await tx`grant ${tx(roleName(projectId, ROLE_FOR_ACCESS[input.access]))} to ${tx(role)}`;
      // Sessions act as the project role, so a migrate user's tables belong to the owner role (and so
      // get the app/ro default privileges) rather than to the user.
      await tx`alter role ${tx(role)} set role = ${tx.unsafe(`'${roleName(projectId, ROLE_FOR_ACCESS[input.access])}'`)}`;
      await tx`alter role ${tx(role)} set statement_timeout = '30s'`;
      await tx`alter role ${tx(role)} set idle_in_transaction_session_timeout = '60s'`;
      await tx`select atlashub_set_role_password(${role}, ${password})`;
      await record(tx);
      return row!;
    })
    .catch((err) => {
      if ((err as { code?: string }).code === "23505") throw errors.conflict(`The project already has a user named ${input.username}.`);
      throw err;
    });
  return { ...user, password, connection_string: connectionString(ctx, projectId, role, password) };
}

export async function listUsers(ctx: AppContext, projectId: string) {
  await getProject(ctx, projectId);
  return ctx.sql<ProjectUser[]>`
    select username, access, role_name, created_at, password_changed_at from project_users
    where project_id = ${projectId} order by username`;
}

/** A new password, shown once; the old one stops working at once and the user's sessions are ended. */
export async function regeneratePassword(ctx: AppContext, projectId: string, username: string, record: (db: Db) => Promise<unknown>) {
  await readyProject(ctx, projectId);
  const password = randomPassword(32);
  const user = await ctx.clusterSql.begin(async (tx) => {
    const [row] = await tx<ProjectUser[]>`
      update project_users set password_changed_at = now() where project_id = ${projectId} and username = ${username}
      returning username, access, role_name, created_at, password_changed_at`;
    if (!row) throw errors.notFound("database user");
    await tx`select atlashub_set_role_password(${row.role_name}, ${password})`;
    await record(tx);
    return row;
  });
  await terminateSessions(ctx, user.role_name);
  return { ...user, password, connection_string: connectionString(ctx, projectId, user.role_name, password) };
}

/** Ends the user's sessions, hands anything it owns to the owner role, and drops it. */
export async function deleteUser(ctx: AppContext, projectId: string, username: string, record: (db: Db) => Promise<unknown>) {
  await readyProject(ctx, projectId);
  const [user] = await ctx.sql<ProjectUser[]>`select role_name from project_users where project_id = ${projectId} and username = ${username}`;
  if (!user) throw errors.notFound("database user");
  await ctx.clusterSql`alter role ${ctx.clusterSql(user.role_name)} nologin`;
  await terminateSessions(ctx, user.role_name);
  // Ownership is per database: reassign inside the project's database (a user could RESET ROLE and create objects).
  const inside = postgres({ ...ctx.engine.superuser(), database: databaseName(projectId), max: 1, connect_timeout: 10, onnotice: () => {} });
  try {
    await inside`reassign owned by ${inside(user.role_name)} to ${inside(roleName(projectId, "owner"))}`;
    await inside`drop owned by ${inside(user.role_name)}`;
  } finally {
    await inside.end({ timeout: 5 });
  }
  await ctx.clusterSql.begin(async (tx) => {
    await tx`delete from project_users where project_id = ${projectId} and username = ${username}`;
    await tx`drop role if exists ${tx(user.role_name)}`;
    await record(tx);
  });
}

async function terminateSessions(ctx: AppContext, role: string) {
  await ctx.clusterSql`select pg_terminate_backend(pid) from pg_stat_activity where usename = ${role}`;
}

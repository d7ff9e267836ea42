// Database users of a project: login roles p_<id>_u_<username>, each a member of the project's
// ro (read), app (write) or owner (migrate) role. Creating, re-keying and dropping a user is one
// transaction with its control-plane row and audit entry: roles live in the same cluster, and
// CREATE/DROP ROLE are transactional, so a crash leaves either all of it or none.
import { z } from "zod";
import type { AppContext } from "../context";
import type { Db } from "../platform/db";
import { randomPassword } from "../platform/crypto";
import { ApiError, errors } from "../http/errors";
import { connectionString, getProject, lockReadyProject } from "./service";
import { databaseName, roleName, type RoleKind } from "./provision";

export const createUserSchema = z.object({
  username: z.string().regex(/^[a-z][a-z0-9_]{2,31}$/, "must be 3–32 characters of a-z, 0-9 and _, starting with a letter"),
  access: z.enum(["read", "write", "migrate"]),
});

export const ROLE_FOR_ACCESS: Record<z.infer<typeof createUserSchema>["access"], RoleKind> = { read: "ro", write: "app", migrate: "owner" };
const USER_CONNECTION_LIMIT = 5;

export interface ProjectUser {
  username: string;
  access: "read" | "write" | "migrate";
  role_name: string;
  created_at: Date;
  password_changed_at: Date;
}

const userRole = (projectId: string, username: string) => roleName(projectId, `u_${username}`);

/** Returns the user and its password, shown this once. `record` writes the audit entry in the same transaction. */
export async function createUser(ctx: AppContext, projectId: string, input: z.infer<typeof createUserSchema>, record: (db: Db) => Promise<unknown>) {
  await getProject(ctx, projectId);
  const role = userRole(projectId, input.username);
  const projectRole = roleName(projectId, ROLE_FOR_ACCESS[input.access]);
  const password = randomPassword(32);
  const user = await ctx.clusterSql
    .begin(async (tx) => {
      await lockReadyProject(tx, projectId, "database users can be managed");
      const [row] = await tx<ProjectUser[]>`
        insert into project_users (project_id, username, access, role_name) values (${projectId}, ${input.username}, ${input.access}, ${role})
        returning username, access, role_name, created_at, password_changed_at`;
      // NOINHERIT: the user has no privileges of its own, only those of the project role it switches to
      // at login (SET role below). Even after RESET ROLE it can create nothing, so it never owns anything.
      await tx`create role ${tx(role)} with login noinherit nosuperuser nocreatedb nocreaterole noreplication nobypassrls
               connection limit ${tx.unsafe(String(USER_CONNECTION_LIMIT))}`;
      await tx`grant ${tx(projectRole)} to ${tx(role)}`;
      await tx`grant connect on database ${tx(databaseName(projectId))} to ${tx(role)}`;
      await tx`alter role ${tx(role)} set role = ${tx.unsafe(`'${projectRole}'`)}`;
      await tx`alter role ${tx(role)} set statement_timeout = '30s'`;
      await tx`alter role ${tx(role)} set idle_in_transaction_session_timeout = '60s'`;
      await tx`select atlashub_set_role_password(${role}, ${password})`;
      await record(tx);
      return row!;
    })
    .catch((err) => {
      if (["23505", "42710"].includes((err as { code?: string }).code ?? "")) throw errors.conflict(`The project already has a user named ${input.username}.`);
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
  await getProject(ctx, projectId);
  const password = randomPassword(32);
  const user = await ctx.clusterSql.begin(async (tx) => {
    await lockReadyProject(tx, projectId, "database users can be managed");
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

/** Drops the user (it owns nothing: see createUser) with its row and audit entry, then ends its sessions. */
export async function deleteUser(ctx: AppContext, projectId: string, username: string, record: (db: Db) => Promise<unknown>) {
  await getProject(ctx, projectId);
  await terminateSessions(ctx, userRole(projectId, username));
  const role = await ctx.clusterSql.begin(async (tx) => {
    await lockReadyProject(tx, projectId, "database users can be managed");
    const [row] = await tx<{ role_name: string }[]>`
      delete from project_users where project_id = ${projectId} and username = ${username} returning role_name`;
    if (!row) throw errors.notFound("database user");
    await tx`revoke connect on database ${tx(databaseName(projectId))} from ${tx(row.role_name)}`;
    await tx`drop role ${tx(row.role_name)}`.catch((err) => {
      // The tenant granted the user something directly or named it in a policy: theirs to undo, not ours to guess.
      if ((err as { code?: string }).code !== "2BP01") throw err;
      const dependents = String((err as { detail?: string }).detail ?? "").split("\n").filter(Boolean).slice(0, 20);
      throw new ApiError(409, "user_in_use", `The user ${username} is still named by privileges or policies in the project's database; revoke them or alter the policies, then delete it.`, { dependents });
    });
    await record(tx);
    return row.role_name;
  });
  await terminateSessions(ctx, role);
}

async function terminateSessions(ctx: AppContext, role: string) {
  await ctx.clusterSql`select pg_terminate_backend(pid) from pg_stat_activity where usename = ${role}`;
}

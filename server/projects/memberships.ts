// Role memberships of a project's roles, held to what AtlasHub made. The only ones it makes: each
// database user p_<id>_u_<name> is a member of the project role its access names, and a stand-in
// p_<id>_x… (standIn.ts) is a member of p_<id>_owner while it runs. Anything else that names a role
// of the project, as the role granted or as the member (GRANT p_T_owner TO p_X_app, a project role
// granted pg_execute_server_program…), came from tenant SQL on a Postgres that allowed it, and would
// outlive the database it ran in: roles are the cluster's.
import type { AppContext } from "../context";
import type { Sql } from "../platform/db";
import { log } from "../platform/log";
import { recordAudit } from "../platform/audit";
import { notify } from "../jobs/notify";
import { roleName } from "./provision";
import { ROLE_FOR_ACCESS, type ProjectUser } from "./users";

export interface Membership {
  role: string;
  member: string;
  grantor: string;
}

export interface Drift {
  /** Memberships AtlasHub did not make (revoked by undoDrift). */
  extra: Membership[];
  /** Memberships AtlasHub made that are gone (granted again by undoDrift). */
  missing: Omit<Membership, "grantor">[];
}

const like = (projectId: string) => `p\\_${projectId}\\_%`;
export const standInPattern = (projectId: string) => new RegExp(`^p_${projectId}_x[a-z0-9]+$`);

/** Every membership in which a role of the project is the role or the member. */
async function actualMemberships(cluster: Sql, projectId: string): Promise<Membership[]> {
  return cluster<Membership[]>`
    select r.rolname as role, m.rolname as member, coalesce(g.rolname, '') as grantor
    from pg_catalog.pg_auth_members a
    join pg_catalog.pg_roles r on r.oid = a.roleid
    join pg_catalog.pg_roles m on m.oid = a.member
    left join pg_catalog.pg_roles g on g.oid = a.grantor
    where r.rolname like ${like(projectId)} or m.rolname like ${like(projectId)}
    order by 1, 2`;
}

/** What differs from the memberships AtlasHub made for the project. */
export async function membershipDrift(ctx: Pick<AppContext, "sql" | "clusterSql">, projectId: string): Promise<Drift> {
  const users = await ctx.sql<Pick<ProjectUser, "role_name" | "access">[]>`select role_name, access from project_users where project_id = ${projectId}`;
  const made = users.map((u) => ({ role: roleName(projectId, ROLE_FOR_ACCESS[u.access]), member: u.role_name }));
  const expected = new Map(made.map((m) => [`${m.role} ${m.member}`, m]));
  const owner = roleName(projectId, "owner");
  const standIn = standInPattern(projectId);
  const extra: Membership[] = [];
  for (const m of await actualMemberships(ctx.clusterSql, projectId)) {
    if (expected.delete(`${m.role} ${m.member}`)) continue;
    if (m.role === owner && standIn.test(m.member)) continue;
    extra.push(m);
  }
  return { extra, missing: [...expected.values()] };
}

export const hasDrift = (d: Drift) => d.extra.length > 0 || d.missing.length > 0;

/** Puts the memberships back as AtlasHub made them, in one transaction. */
export async function undoDrift(cluster: Sql, drift: Drift) {
  await cluster.begin(async (tx) => {
    for (const m of drift.extra) {
      // GRANTED BY: from Postgres 16 on, a membership is one grantor's, and only that one's revoke ends it.
      if (m.grantor) await tx`revoke ${tx(m.role)} from ${tx(m.member)} granted by ${tx(m.grantor)} cascade`;
      else await tx`revoke ${tx(m.role)} from ${tx(m.member)} cascade`;
    }
    for (const m of drift.missing) await tx`grant ${tx(m.role)} to ${tx(m.member)}`;
  });
}

/** A drift in words for logs, errors and the audit log (role names only). */
export function describeDrift(d: Drift) {
  const parts = [
    ...d.extra.map((m) => `${m.member} had been made a member of ${m.role}`),
    ...d.missing.map((m) => `${m.member} was no longer a member of ${m.role}`),
  ];
  return parts.join("; ");
}

/** Undoes any drift of the project's memberships; returns it (empty when there was none). */
export async function restoreMemberships(ctx: Pick<AppContext, "sql" | "clusterSql">, projectId: string): Promise<Drift> {
  const drift = await membershipDrift(ctx, projectId);
  if (!hasDrift(drift)) return drift;
  log.warn("project role memberships changed outside AtlasHub; put back", { project: projectId, drift: describeDrift(drift) });
  await undoDrift(ctx.clusterSql, drift);
  return drift;
}

/**
 * The reconciler's sweep: every project whose roles take part in any membership, or that has
 * database users, is checked; drift is undone, audited and told to ATLASHUB_JOB_NOTIFY_URL.
 */
export async function reconcileMemberships(ctx: AppContext) {
  const [withUsers, inMemberships] = await Promise.all([
    ctx.sql<{ id: string }[]>`select distinct project_id as id from project_users`,
    ctx.clusterSql<{ id: string }[]>`
      select distinct pg_catalog.substring(r.rolname, '^p_([a-z0-9]+)_') as id
      from pg_catalog.pg_auth_members a join pg_catalog.pg_roles r on r.oid in (a.roleid, a.member)
      where r.rolname ~ '^p_[a-z0-9]+_'`,
  ]);
  const ids = [...new Set([...withUsers, ...inMemberships].map((p) => p.id))];
  const known = new Set((await ctx.sql<{ id: string }[]>`select id from projects where id = any(${ids}) and status not in ('purged')`).map((p) => p.id));
  let undone = 0;
  for (const id of ids.filter((i) => known.has(i))) {
    const drift = await restoreMemberships(ctx, id);
    if (!hasDrift(drift)) continue;
    undone++;
    const what = describeDrift(drift);
    await recordAudit(ctx.sql, { actor: { type: "system", label: "reconciler" }, action: "project.memberships_restored", target: { type: "project", id }, details: { drift: what } });
    if (ctx.config.jobNotifyUrl) {
      await notify(ctx.config.jobNotifyUrl, { job: { id: "", name: "platform/role_memberships", project_id: id }, runId: "", attempt: 1, status: "failed", error: `role memberships changed outside AtlasHub and were put back: ${what}` }, ctx.jobs.guard, AbortSignal.timeout(15_000)).catch(
        (err) => log.warn("membership drift not notified", { project: id, reason: (err as Error).message }),
      );
    }
  }
  return undone;
}

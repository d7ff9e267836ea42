// A stand-in: a one-off login role through which AtlasHub runs what a tenant controls (a dump being
// restored or verified, an import's triggers and defaults, the reading of a backup's tables) with
// the rights of the project's owner role and nothing more, and without that role being the session
// user. Older Postgres releases let a session user grant membership in itself, and a session that
// starts as the superuser can RESET ROLE back to it; a stand-in is neither:
// - LOGIN NOINHERIT, a member of p_<id>_owner only, with CONNECT on the databases of the work only;
// - every session sets role = p_<id>_owner at startup, so RESET ROLE leads back to the owner, SET
//   ROLE to the stand-in itself leads to a role with no privileges (NOINHERIT), SET SESSION
//   AUTHORIZATION is refused (not a superuser);
// - whatever it granted of itself, or anyone granted it, goes with it: it is dropped when the work
//   ends, its password never stored nor logged; and the project's memberships are checked before
//   and after (memberships.ts).
// Its name p_<id>_x<time><random> is the project's, so a purge drops one a crash left behind.
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import type { AppContext } from "../context";
import type { Sql } from "../platform/db";
import type { PgConnectionInfo } from "../engines/postgres/engine";
import { randomPassword } from "../platform/crypto";
import { log } from "../platform/log";
import { ApiError } from "../http/errors";
import { describeDrift, hasDrift, restoreMemberships } from "./memberships";
import { connectInside, roleName } from "./provision";

export interface StandIn {
  /** The login role (the session user). */
  user: string;
  password: string;
  /** The role every session of the stand-in works as: the project's owner. */
  role: string;
}

const CONNECTION_LIMIT = 4;
/** A stand-in without a session for this long was left by a process that stopped (see dropLeftoverStandIns). */
const LEFTOVER_AFTER_MS = 15 * 60_000;

type StandInContext = Pick<AppContext, "sql" | "clusterSql" | "engine">;

/** 409 when it reaches an admin request (an import or export); a restore's or backup's failure reason otherwise. */
export class MembershipChanged extends ApiError {
  constructor(message: string) {
    super(409, "membership_changed", message.charAt(0).toUpperCase() + message.slice(1) + ".");
  }
}

/**
 * Runs `work` with a fresh stand-in for the project's owner that may connect to `databases`, and
 * drops it afterwards. Memberships of the project's roles that differ from what AtlasHub made, found
 * before or after, are put back and fail the work (MembershipChanged).
 */
export async function withStandIn<T>(ctx: StandInContext, projectId: string, databases: string[], work: (standIn: StandIn) => Promise<T>): Promise<T> {
  const opened = await openStandIn(ctx, projectId, databases);
  let failure: unknown;
  try {
    return await work(opened.standIn);
  } catch (err) {
    failure = err;
    throw err;
  } finally {
    const drift = await opened.close();
    // In place of what work() returned or threw (unless that was this already): this is what the caller must report.
    if (drift && !(failure instanceof MembershipChanged)) {
      // eslint-disable-next-line no-unsafe-finally
      throw new MembershipChanged(`the role memberships of the project changed while AtlasHub ran the tenant's SQL (${drift}); they were put back`);
    }
  }
}

/**
 * A stand-in for work whose end is not a callback's (a streamed export): `close()` drops it and puts
 * the memberships back, answering what had changed (undefined when nothing had).
 */
export async function openStandIn(ctx: StandInContext, projectId: string, databases: string[]) {
  const before = await restoreMemberships(ctx, projectId);
  if (hasDrift(before)) throw new MembershipChanged(`the role memberships of the project had changed outside AtlasHub (${describeDrift(before)}); they were put back, and nothing was run`);
  const standIn = await createStandIn(ctx.clusterSql, projectId, databases);
  let closed: Promise<string | undefined> | undefined;
  const close = () =>
    (closed ??= (async () => {
      await dropStandIn(ctx, standIn.user);
      const drift = await restoreMemberships(ctx, projectId);
      return hasDrift(drift) ? describeDrift(drift) : undefined;
    })());
  return { standIn, close };
}

/**
 * One session of the stand-in in `database` of the cluster at `server`, working as the owner from its start (`role` is a
 * startup setting, so RESET ROLE comes back to it). `connection` adds startup settings.
 */
export function connectStandIn(server: PgConnectionInfo, standIn: StandIn, database: string, connection: Record<string, string | number>, options: Partial<postgres.Options<{}>> = {}) {
  const { host, port, ssl } = server;
  return postgres({
    host,
    port,
    ssl: ssl as never,
    user: standIn.user,
    password: standIn.password,
    database,
    max: 1,
    connect_timeout: 10,
    onnotice: () => {},
    ...options,
    connection: { ...connection, role: standIn.role },
  });
}

/** libpq's PGOPTIONS for a pg_restore run by the stand-in: the same startup role, and `settings`. */
export const standInPgOptions = (standIn: StandIn, settings: string) => `-c role=${standIn.role} ${settings}`;

async function createStandIn(cluster: Sql, projectId: string, databases: string[]): Promise<StandIn> {
  const user = roleName(projectId, `x${Date.now().toString(36)}${randomBytes(4).toString("hex")}`);
  const password = randomPassword(32);
  const owner = roleName(projectId, "owner");
  await changingAcls(cluster, async (tx) => {
    await tx`create role ${tx(user)} with login noinherit nosuperuser nocreatedb nocreaterole noreplication nobypassrls
             connection limit ${tx.unsafe(String(CONNECTION_LIMIT))}`;
    await tx`select atlashub_set_role_password(${user}, ${password})`;
    await tx`grant ${tx(owner)} to ${tx(user)}`;
    for (const db of databases) await tx`grant connect on database ${tx(db)} to ${tx(user)}`;
  });
  return { user, password, role: owner };
}

/**
 * Ends the stand-in's sessions and drops it. What it may have come to own or be granted inside a
 * database (a tenant can name it in a GRANT while it runs) is dropped there first: DROP OWNED
 * changes catalogs only, it runs nothing of the tenant's.
 */
async function dropStandIn(ctx: StandInContext, user: string) {
  const cluster = ctx.clusterSql;
  try {
    await cluster`select pg_catalog.pg_terminate_backend(pid, 5000) from pg_catalog.pg_stat_activity where usename = ${user}`;
    await dropRole(ctx, user);
  } catch (err) {
    // The reconciler drops it later (dropLeftoverStandIns); its password is gone with this process.
    log.warn("stand-in role not dropped", { role: user, reason: (err as Error).message });
  }
}

async function dropRole(ctx: StandInContext, user: string) {
  const cluster = ctx.clusterSql;
  const [role] = await cluster<{ oid: number }[]>`select oid from pg_catalog.pg_roles where rolname = ${user}`;
  if (!role) return;
  const dependent = await cluster<{ datname: string }[]>`
    select distinct d.datname from pg_catalog.pg_shdepend s join pg_catalog.pg_database d on d.oid = s.dbid
    where s.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass and s.refobjid = ${role.oid} and d.datallowconn`;
  for (const { datname } of dependent) await dropOwnedIn(ctx, datname, user);
  await changingAcls(cluster, async (tx) => {
    // In the maintenance database: its CONNECT privileges (on shared objects, the databases).
    await tx`drop owned by ${tx(user)}`;
    await tx`drop role if exists ${tx(user)}`;
  });
}

/**
 * Two GRANTs on one database at once fail one of them ("tuple concurrently updated", XX000: both
 * rewrite the database's row). Stand-ins take turns, and retry once what another grant raced.
 */
async function changingAcls(cluster: Sql, change: (tx: Sql) => Promise<unknown>) {
  for (let attempt = 1; ; attempt++) {
    try {
      await cluster.begin(async (tx) => {
        await tx`select pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('atlashub.stand-in'))`;
        await change(tx as unknown as Sql);
      });
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== "XX000" || attempt >= 3) throw err;
      await Bun.sleep(20 * attempt);
    }
  }
}

async function dropOwnedIn(ctx: StandInContext, database: string, user: string) {
  const inside = connectInside(ctx, database);
  try {
    await inside`drop owned by ${inside(user)}`;
  } finally {
    await inside.end({ timeout: 5 });
  }
}

/**
 * Stand-ins of stopped processes: no session, made more than LEFTOVER_AFTER_MS ago (their name says
 * when). The reconciler drops them.
 */
export async function dropLeftoverStandIns(ctx: StandInContext) {
  const candidates = await ctx.clusterSql<{ rolname: string }[]>`
    select r.rolname from pg_catalog.pg_roles r
    where r.rolname ~ '^p_[a-z0-9]+_x[a-z0-9]+$'
      and not exists (select 1 from pg_catalog.pg_stat_activity a where a.usename = r.rolname)`;
  let dropped = 0;
  for (const { rolname } of candidates) {
    const projectId = /^p_([a-z0-9]+)_x/.exec(rolname)![1]!;
    const made = parseInt(rolname.slice(`p_${projectId}_x`.length, -8), 36);
    if (!(Date.now() - made > LEFTOVER_AFTER_MS)) continue;
    await dropRole(ctx, rolname).then(
      () => dropped++,
      (err) => log.warn("leftover stand-in role not dropped", { role: rolname, reason: (err as Error).message }),
    );
  }
  return dropped;
}

import { z } from "zod";
import type { Db, Sql } from "../platform/db";
import { constantTimeEqual, randomToken, sha256Hex } from "../platform/crypto";
import { clearHits, countAttemptWithBackoff, countHit } from "../http/rateLimit";
import { errors } from "../http/errors";
import { futureTimestamp, safeText } from "../http/schemas";
import type { Actor } from "../platform/audit";

export const emailSchema = z.email().max(254).transform((e) => e.toLowerCase());
export const passwordSchema = z.string().min(10, "must be at least 10 characters").max(512);

// Failures are counted per account *and* client address, never per account alone, so that nobody
// elsewhere can lock an admin out: past `freeFailures` from one address, each attempt there waits
// twice as long as the last (1 s, 2 s, 4 s … at most 15 min) until a login from it succeeds. Every
// attempt from one address counts against `perIp` per window, across all accounts.
export const LOGIN_LIMITS = { perIp: 60, windowSeconds: 300, freeFailures: 5, maxBackoffSeconds: 900 };

const TOKEN_PREFIX = "ah_at_";
// A real argon2id hash of a random string, verified when the email is unknown so timing does not reveal which emails exist.
let dummyHash: Promise<string> | undefined;

export interface AdminUser {
  id: string;
  email: string;
  created_at: Date;
}

export async function createAdmin(sql: Db, email: string, password: string): Promise<AdminUser> {
  const hash = await Bun.password.hash(password, { algorithm: "argon2id" });
  const [user] = await sql<AdminUser[]>`
    insert into admin_users (email, password_hash) values (${email}, ${hash})
    on conflict do nothing
    returning id, email, created_at`;
  if (!user) throw errors.conflict(`An admin with email ${email} already exists.`);
  return user;
}

// First-run setup: while no admin exists, `atlashub serve` prints a one-time token that lets the
// setup screen create the first admin. Only its SHA-256 is kept, in the control plane (admin_setup),
// so any instance behind a load balancer accepts it; each start replaces it, so only the latest
// printed token works, and creating the first admin deletes it.
export const SETUP_TOKEN_PREFIX = "ah_setup_";
// Every attempt from one IP counts: the token is 32 random bytes, so this bounds noise, not guessing.
export const SETUP_LIMITS = { perIp: 10, windowSeconds: 300 };

export const setupSchema = z.object({
  token: z.string().min(1).max(200),
  email: emailSchema,
  password: passwordSchema,
});

export async function setupNeeded(sql: Sql): Promise<boolean> {
  const [row] = await sql<{ needed: boolean }[]>`select not exists (select 1 from admin_users) as needed`;
  return row!.needed;
}

/** A new setup token replacing any earlier one, or undefined (and no token kept) once an admin exists. */
export async function issueSetupToken(sql: Db): Promise<string | undefined> {
  const token = SETUP_TOKEN_PREFIX + randomToken(32);
  const rows = await sql`
    insert into admin_setup (token_hash) select ${sha256Hex(token)} where not exists (select 1 from admin_users)
    on conflict (id) do update set token_hash = excluded.token_hash, created_at = now()
    returning created_at`;
  if (rows.length > 0) return token;
  await sql`delete from admin_setup`;
  return undefined;
}

export async function countSetupAttempt(sql: Sql, ip: string) {
  await countHit(sql, `setup:ip:${ip}`, SETUP_LIMITS.perIp, SETUP_LIMITS.windowSeconds);
}

/**
 * Creates the first admin if the token matches and no admin exists yet, then forgets the token. Run it
 * in a transaction: the advisory lock makes concurrent setups with the right token create one admin.
 */
export async function completeSetup(tx: Db, input: { token: string; email: string; passwordHash: string }): Promise<AdminUser> {
  await tx`select pg_advisory_xact_lock(hashtext('atlashub.admin_setup'))`;
  const [state] = await tx<{ done: boolean; token_hash: string | null }[]>`
    select exists (select 1 from admin_users) as done, (select token_hash from admin_setup) as token_hash`;
  if (state!.done) throw errors.setupDone();
  if (!state!.token_hash || !constantTimeEqual(sha256Hex(input.token), state!.token_hash)) throw errors.invalidSetupToken();
  const [user] = await tx<AdminUser[]>`
    insert into admin_users (email, password_hash) values (${input.email}, ${input.passwordHash})
    returning id, email, created_at`;
  await tx`delete from admin_setup`;
  return user!;
}

export function hashPassword(password: string) {
  return Bun.password.hash(password, { algorithm: "argon2id" });
}

/** Counts the attempt against the rate limits, then checks the password; returns the admin on success. */
export async function verifyLogin(sql: Sql, input: { email: string; password: string; ip: string }) {
  const accountKey = `login:account:${input.email}:ip:${input.ip}`;
  await countHit(sql, `login:ip:${input.ip}`, LOGIN_LIMITS.perIp, LOGIN_LIMITS.windowSeconds);
  await countAttemptWithBackoff(sql, accountKey, LOGIN_LIMITS.freeFailures, LOGIN_LIMITS.maxBackoffSeconds);
  const [user] = await sql<{ id: string; email: string; password_hash: string }[]>`
    select id, email, password_hash from admin_users where lower(email) = ${input.email} and disabled_at is null`;
  dummyHash ??= Bun.password.hash(randomToken(), { algorithm: "argon2id" });
  const ok = await Bun.password.verify(input.password, user?.password_hash ?? (await dummyHash));
  if (!user || !ok) return undefined;
  await clearHits(sql, accountKey);
  return { id: user.id, email: user.email };
}

/** Returns the session token (the cookie value), which is stored only as its SHA-256. */
export async function createSession(sql: Db, adminId: string, input: { ip: string; userAgent?: string; hours: number }) {
  const token = randomToken(32);
  const [session] = await sql<{ expires_at: Date }[]>`
    insert into admin_sessions (admin_id, token_hash, expires_at, ip, user_agent)
    values (${adminId}, ${sha256Hex(token)}, now() + make_interval(hours => ${input.hours}), ${input.ip}, ${input.userAgent?.slice(0, 300) ?? null})
    returning expires_at`;
  return { token, expiresAt: session!.expires_at };
}

/** True when a session was ended. */
export async function endSession(sql: Db, sessionToken: string) {
  const rows = await sql`delete from admin_sessions where token_hash = ${sha256Hex(sessionToken)} returning id`;
  return rows.length > 0;
}

/** Session cookie → actor. last_seen_at is written at most once a minute. */
export async function actorFromSession(sql: Sql, sessionToken: string): Promise<Actor | undefined> {
  const [row] = await sql<{ id: string; email: string; session_id: string; stale: boolean }[]>`
    select u.id, u.email, s.id as session_id, s.last_seen_at < now() - interval '1 minute' as stale
    from admin_sessions s join admin_users u on u.id = s.admin_id
    where s.token_hash = ${sha256Hex(sessionToken)} and s.expires_at > now() and u.disabled_at is null`;
  if (!row) return undefined;
  if (row.stale) await sql`update admin_sessions set last_seen_at = now() where id = ${row.session_id}`;
  return { type: "admin", id: row.id, label: row.email, email: row.email };
}

/** Bearer ah_at_… → actor. Lookup is by SHA-256 of a 32-byte random token, so no secret is compared as text. */
export async function actorFromToken(sql: Sql, token: string): Promise<Actor | undefined> {
  if (!token.startsWith(TOKEN_PREFIX)) return undefined;
  const [row] = await sql<{ id: string; admin_id: string; email: string; name: string; stale: boolean }[]>`
    select t.id, t.admin_id, u.email, t.name, coalesce(t.last_used_at < now() - interval '1 minute', true) as stale
    from admin_tokens t join admin_users u on u.id = t.admin_id
    where t.token_hash = ${sha256Hex(token)} and t.revoked_at is null
      and (t.expires_at is null or t.expires_at > now()) and u.disabled_at is null`;
  if (!row) return undefined;
  if (row.stale) await sql`update admin_tokens set last_used_at = now() where id = ${row.id}`;
  return { type: "token", id: row.admin_id, label: `${row.email} (token ${row.name})`, email: row.email };
}

export const createTokenSchema = z.object({
  name: safeText(100),
  expires_at: futureTimestamp.optional(),
});

export interface AdminToken {
  id: string;
  name: string;
  prefix: string;
  created_at: Date;
  last_used_at: Date | null;
  expires_at: Date | null;
  revoked_at: Date | null;
}

/** Returns the token row and the full token, which is never stored and never shown again. */
export async function createToken(sql: Db, adminId: string, input: z.infer<typeof createTokenSchema>) {
  const token = TOKEN_PREFIX + randomToken(32);
  const [row] = await sql<AdminToken[]>`
    insert into admin_tokens (admin_id, name, prefix, token_hash, expires_at)
    values (${adminId}, ${input.name}, ${token.slice(0, 12)}, ${sha256Hex(token)}, ${input.expires_at ?? null})
    returning id, name, prefix, created_at, last_used_at, expires_at, revoked_at`;
  return { ...row!, token };
}

export async function listTokens(sql: Sql, adminId: string, page: { limit: number; offset: number }) {
  return sql<AdminToken[]>`
    select id, name, prefix, created_at, last_used_at, expires_at, revoked_at
    from admin_tokens where admin_id = ${adminId}
    order by created_at desc limit ${page.limit} offset ${page.offset}`;
}

export async function revokeToken(sql: Db, adminId: string, tokenId: string) {
  const [row] = await sql<{ id: string }[]>`
    update admin_tokens set revoked_at = coalesce(revoked_at, now())
    where id = ${tokenId} and admin_id = ${adminId} returning id`;
  if (!row) throw errors.notFound("token");
}

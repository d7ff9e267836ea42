import { z } from "zod";
import type { AppContext } from "../context";
import type { Db, Sql } from "../platform/db";
import { sha256Hex } from "../platform/crypto";
import { errors } from "../http/errors";
import { futureTimestamp, safeText } from "../http/schemas";
import { TokenBuckets } from "../http/tokenBucket";
import { getProject, lockReadyProject } from "../projects/service";
import { deriveChecksumKey, keyPrefix, newKey, parseKey, type KeyKind } from "./format";

export const createKeySchema = z.object({
  name: safeText(100),
  kind: z.enum(["publishable", "secret"]),
  expires_at: futureTimestamp.optional(),
});

export const rotateKeySchema = z.object({
  // How long the old key keeps working; default a day, at most 30 days.
  grace_hours: z.number().int().min(0).max(720).default(24),
});

interface KeyRow {
  id: string;
  name: string;
  kind: KeyKind;
  prefix: string;
  created_at: Date;
  last_used_at: Date | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  replaced_by: string | null;
}

const KEY_COLUMNS = ["id", "name", "kind", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at", "replaced_by"];

/** The list view of a key: never the key itself. */
export function presentKey(k: KeyRow) {
  const now = Date.now();
  const status = k.revoked_at ? "revoked" : k.expires_at && k.expires_at.getTime() <= now ? "expired" : k.replaced_by ? "rotating" : "active";
  return { ...k, status };
}

const checksumKeys = new WeakMap<Buffer, Buffer>();
function checksumKeyOf(masterKey: Buffer) {
  let key = checksumKeys.get(masterKey);
  if (!key) checksumKeys.set(masterKey, (key = deriveChecksumKey(masterKey)));
  return key;
}

async function insertKey(db: Db, masterKey: Buffer, projectId: string, input: { name: string; kind: KeyKind; expires_at?: string | null }) {
  const key = newKey(input.kind, checksumKeyOf(masterKey));
  const [row] = await db<KeyRow[]>`
    insert into api_keys (project_id, name, kind, prefix, key_hash, expires_at)
    values (${projectId}, ${input.name}, ${input.kind}, ${keyPrefix(key)}, ${sha256Hex(key)}, ${input.expires_at ?? null})
    returning ${db(KEY_COLUMNS)}`;
  return { ...presentKey(row!), key };
}

/** Returns the key row and the full key, shown this once. `record` audits in the same transaction. */
export async function createKey(ctx: AppContext, projectId: string, input: z.infer<typeof createKeySchema>, record: (db: Db, keyId: string) => Promise<unknown>) {
  await getProject(ctx, projectId);
  return ctx.sql.begin(async (tx) => {
    await lockReadyProject(tx, projectId, "keys are managed");
    const created = await insertKey(tx, ctx.masterKey, projectId, input);
    await record(tx, created.id);
    return created;
  });
}

export async function listKeys(ctx: AppContext, projectId: string, page: { limit: number; offset: number }) {
  await getProject(ctx, projectId);
  const rows = await ctx.sql<KeyRow[]>`
    select ${ctx.sql(KEY_COLUMNS)} from api_keys where project_id = ${projectId}
    order by created_at desc limit ${page.limit} offset ${page.offset}`;
  return rows.map(presentKey);
}

/** A new key with the same name and kind; the old one keeps working for the grace period, then stops. */
export async function rotateKey(ctx: AppContext, projectId: string, keyId: string, graceHours: number, record: (db: Db, newKeyId: string) => Promise<unknown>) {
  await getProject(ctx, projectId);
  return ctx.sql.begin(async (tx) => {
    await lockReadyProject(tx, projectId, "keys are managed");
    const [old] = await tx<KeyRow[]>`
      select ${tx(KEY_COLUMNS)} from api_keys where id = ${keyId} and project_id = ${projectId} for update`;
    if (!old) throw errors.notFound("key");
    if (presentKey(old).status !== "active") throw errors.conflict(`The key is ${presentKey(old).status}; only active keys can be rotated.`);
    const created = await insertKey(tx, ctx.masterKey, projectId, { name: old.name, kind: old.kind, expires_at: old.expires_at?.toISOString() });
    await tx`
      update api_keys set replaced_by = ${created.id},
        expires_at = least(coalesce(expires_at, 'infinity'), now() + make_interval(hours => ${graceHours}))
      where id = ${keyId}`;
    await record(tx, created.id);
    return created;
  });
}

export async function revokeKey(ctx: AppContext, projectId: string, keyId: string, record: (db: Db) => Promise<unknown>) {
  await getProject(ctx, projectId);
  await ctx.sql.begin(async (tx) => {
    const [row] = await tx`update api_keys set revoked_at = coalesce(revoked_at, now()) where id = ${keyId} and project_id = ${projectId} returning id`;
    if (!row) throw errors.notFound("key");
    await record(tx);
  });
}

export interface VerifiedKey {
  id: string;
  projectId: string;
  kind: KeyKind;
}

/** The project's own /v1 rate limit; null where the server default applies. */
export interface ProjectRateLimit {
  rps: number | null;
  burst: number | null;
}

export type KeyCheck = VerifiedKey & { rateLimit: ProjectRateLimit };

// Verified keys are remembered this long: revocation, expiry and project deletion take effect within
// it on every instance, and a busy app costs one lookup per key per 5 s.
const CACHE_MS = 5_000;
const CACHE_MAX = 10_000;
// Keys the database turned down are remembered apart, so that a flood of them never pushes a working
// key out of the cache, and as briefly, so that a restored project's keys work again within 5 s.
const UNKNOWN_CACHE_MS = 5_000;
const UNKNOWN_CACHE_MAX = 10_000;
const LAST_USED_EVERY_MS = 60_000;
const cache = new Map<string, { key: KeyCheck; until: number }>();
const unknownKeys = new Map<string, number>();
const lastUsedWritten = new Map<string, number>();

/**
 * Requests whose key does not verify, per client address (per process): 20 at once, then one a
 * second, then 429. A lookup of a key that only the legacy checksum vouches for (which anyone can
 * compute) is paid from the same allowance before it is made.
 */
export const INVALID_KEY_LIMIT = { rate: 1, burst: 20 };
// Apart from the /v1 buckets, so that requests from countless addresses cannot push a project's bucket out.
const invalidKeyBuckets = new TokenBuckets();

type KeyContext = Pick<AppContext, "sql" | "masterKey">;

/**
 * The key's project, kind and the project's rate limit, or undefined for a malformed, unknown, revoked or expired key, or one
 * whose project is not ready; 429 instead once the client's address has sent too many such keys.
 * A malformed key or a wrong checksum never reaches the database, nor does a key turned down in the last 5 s.
 * The lookup is by SHA-256 of the key, so no stored secret is compared as text.
 */
export async function verifyKey(ctx: KeyContext, key: string, clientAddress: () => string): Promise<KeyCheck | undefined> {
  const hash = sha256Hex(key);
  const now = Date.now();
  const cached = cache.get(hash);
  if (cached && cached.until > now) return touch(ctx.sql, cached.key, now);
  const shape = (unknownKeys.get(hash) ?? 0) > now ? undefined : parseKey(key, checksumKeyOf(ctx.masterKey));
  if (!shape) return spendInvalidKeyAllowance(clientAddress());
  // Keys made before the checksum was keyed still work; a made-up one costs its lookup here, first.
  if (shape.checksum === "legacy") spendInvalidKeyAllowance(clientAddress());
  const verified = await lookUpKey(ctx.sql, hash);
  if (!verified) {
    if (unknownKeys.size >= UNKNOWN_CACHE_MAX) unknownKeys.delete(unknownKeys.keys().next().value!);
    unknownKeys.set(hash, now + UNKNOWN_CACHE_MS);
    return shape.checksum === "legacy" ? undefined : spendInvalidKeyAllowance(clientAddress());
  }
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
  cache.set(hash, { key: verified, until: now + CACHE_MS });
  return touch(ctx.sql, verified, now);
}

/** Takes one from the address's allowance for invalid keys, or throws 429 when none is left. */
function spendInvalidKeyAllowance(address: string): undefined {
  const taken = invalidKeyBuckets.take([{ key: address, ...INVALID_KEY_LIMIT }]);
  if (!taken.ok) throw errors.invalidKeysRateLimited(Math.max(1, Math.ceil(taken.retryAfterMs / 1000)));
  return undefined;
}

async function lookUpKey(sql: Sql, hash: string): Promise<KeyCheck | undefined> {
  const [row] = await sql<{ id: string; project_id: string; kind: KeyKind; rate_limit_rps: number | null; rate_limit_burst: number | null }[]>`
    select k.id, k.project_id, k.kind, p.rate_limit_rps, p.rate_limit_burst from api_keys k join projects p on p.id = k.project_id
    where k.key_hash = ${hash} and k.revoked_at is null and (k.expires_at is null or k.expires_at > now()) and p.status = 'ready'`;
  return row ? { id: row.id, projectId: row.project_id, kind: row.kind, rateLimit: { rps: row.rate_limit_rps, burst: row.rate_limit_burst } } : undefined;
}

/**
 * Whether the key of this id still works, as verifyKey decides: not revoked, not past its expiry
 * (where a rotated key's grace period ends), its project ready. Asked of the database each time,
 * for credentials that outlive a request (signed URLs), so that a revocation is felt at once.
 */
export async function keyStillValid(sql: Sql, keyId: string | null | undefined): Promise<boolean> {
  if (!keyId) return false;
  const [row] = await sql`
    select 1 from api_keys k join projects p on p.id = k.project_id
    where k.id = ${keyId} and k.revoked_at is null and (k.expires_at is null or k.expires_at > now()) and p.status = 'ready'`;
  return row !== undefined;
}

/**
 * Forgets this process's cached keys of a project, so a delete or a new rate limit takes effect here
 * at once (other instances follow within CACHE_MS).
 */
export function forgetProjectKeys(projectId: string) {
  for (const [hash, entry] of cache) if (entry.key.projectId === projectId) cache.delete(hash);
}

/** last_used_at, written at most once a minute per key (per instance), off the request's path. */
function touch(sql: Sql, key: KeyCheck | undefined, now: number) {
  if (key && now - (lastUsedWritten.get(key.id) ?? 0) >= LAST_USED_EVERY_MS) {
    lastUsedWritten.set(key.id, now);
    if (lastUsedWritten.size > CACHE_MAX) lastUsedWritten.delete(lastUsedWritten.keys().next().value!);
    void sql`update api_keys set last_used_at = now() where id = ${key.id}`.catch(() => {});
  }
  return key;
}

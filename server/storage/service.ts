// Buckets and objects of a project: metadata in the control plane, bytes in the ObjectStore, signed
// URLs for apps. Consistency rules: an object is recorded only after its bytes are complete, and
// the bytes are made visible (commit) and recorded in one step under a per-key lock, so the object
// a key holds is always the one its row describes — whichever of concurrent uploads commits last.
import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { AppContext } from "../context";
import { keyStillValid, type VerifiedKey } from "../keys/service";
import type { Db } from "../platform/db";
import { ApiError, errors } from "../http/errors";
import { lockReadyProject, getProject } from "../projects/service";
import { isBucketName, objectKeyProblem, MAX_KEY_BYTES } from "../engines/storage/names";
import { deriveSigningKey, signGrant, verifyGrant, type UrlGrant } from "../engines/storage/signer";
import {
  InvalidObjectLocationError,
  ObjectKeyConflictError,
  ObjectStoreUnavailableError,
  ObjectTooLargeError,
  StagedUploadGoneError,
  UploadDeadlineError,
  type ArrivedUpload,
  type ObjectLocation,
  type PresignRequest,
  type StagedObject,
} from "../engines/storage/store";
import { resolveRange } from "./range";
import { lockObject, lockObjectShared } from "./locks";
import { deleteIntendedRow, forgetIntent, recordDeleteIntent, recordPutIntent, settleIntent, settleLeftIntentsNow } from "./intents";

export const DEFAULT_BUCKETS = ["private", "uploads"] as const;
const DEFAULT_EXPIRY_S = 600;
const MAX_EXPIRY_S = 7 * 24 * 3600;
export const MAX_LIST_LIMIT = 1000;

// ---- schemas -------------------------------------------------------------------------------------

export const bucketName = z.string().refine(isBucketName, "must be 3–63 characters: lowercase letters, digits, - and _, starting and ending with a letter or digit");

export const objectKey = z.string().superRefine((key, ctx) => {
  const problem = objectKeyProblem(key);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

// type/subtype with optional parameters (RFC 9110 §8.3), printable ASCII only.
const TOKEN = "[A-Za-z0-9!#$%&'*+.^_`|~-]+";
const CONTENT_TYPE = new RegExp(`^${TOKEN}/${TOKEN}(\\s*;\\s*${TOKEN}=(${TOKEN}|"[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]*"))*$`);
export const contentType = z.string().trim().max(255).regex(CONTENT_TYPE, "must be a media type such as image/png");

const expiresIn = z.number().int().min(1).max(MAX_EXPIRY_S, "must be at most 7 days (604800 s)").default(DEFAULT_EXPIRY_S);

export const signUploadSchema = z.object({
  bucket: bucketName,
  key: objectKey,
  content_type: contentType,
  max_bytes: z.number().int().min(0).optional(),
  expires_in: expiresIn,
});

export const signDownloadSchema = z.object({ bucket: bucketName, key: objectKey, expires_in: expiresIn });

export const objectRefSchema = z.object({ bucket: bucketName, key: objectKey });

export const listObjectsSchema = z.object({
  bucket: bucketName,
  prefix: z
    .string()
    .max(MAX_KEY_BYTES)
    .refine((p) => !/[\u0000-\u001f\u007f]/.test(p) && p.isWellFormed(), "must not contain control characters")
    .default(""),
  cursor: z
    .string()
    .max(2000)
    .transform((c, ctx) => {
      const key = Buffer.from(c, "base64url").toString("utf8");
      if (objectKeyProblem(key) || Buffer.from(key).toString("base64url") !== c) {
        ctx.addIssue({ code: "custom", message: "is not a cursor this API gave out" });
        return z.NEVER;
      }
      return key;
    })
    .optional(),
  limit: z.coerce.number().int().min(1).max(MAX_LIST_LIMIT).default(100),
});

export const createBucketSchema = z.object({ name: bucketName, public: z.boolean().default(false) });
export const updateBucketSchema = z.object({ public: z.boolean() });
export const storageSettingsSchema = z.object({ max_upload_bytes: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).nullable() });

// ---- rows ----------------------------------------------------------------------------------------

interface BucketRow {
  name: string;
  public: boolean;
  created_at: Date;
}

interface ObjectRow {
  key: string;
  size: string; // bigint comes back as text
  content_type: string;
  sha256: string | null;
  uploaded_by: string | null;
  created_at: Date;
  updated_at: Date;
}

const OBJECT_COLUMNS = ["key", "size", "content_type", "sha256", "uploaded_by", "created_at", "updated_at"];

export function presentObject(o: ObjectRow) {
  return { key: o.key, size: Number(o.size), content_type: o.content_type, sha256: o.sha256, uploaded_by: o.uploaded_by, created_at: o.created_at, updated_at: o.updated_at };
}

// ---- buckets -------------------------------------------------------------------------------------

/** Inside the transaction that creates a project: its default buckets. */
export async function createDefaultBuckets(db: Db, projectId: string) {
  for (const name of DEFAULT_BUCKETS) {
    await db`insert into storage_buckets (project_id, name) values (${projectId}, ${name}) on conflict do nothing`;
  }
}

export async function listBuckets(ctx: AppContext, projectId: string) {
  await getProject(ctx, projectId);
  const rows = await ctx.sql<(BucketRow & { objects: string; bytes: string })[]>`
    select b.name, b.public, b.created_at, count(o.key) as objects, coalesce(sum(o.size), 0) as bytes
    from storage_buckets b left join storage_objects o on o.project_id = b.project_id and o.bucket = b.name
    where b.project_id = ${projectId}
    group by b.name, b.public, b.created_at order by b.name`;
  return rows.map((b) => ({ name: b.name, public: b.public, created_at: b.created_at, objects: Number(b.objects), bytes: Number(b.bytes) }));
}

export async function createBucket(ctx: AppContext, projectId: string, input: z.infer<typeof createBucketSchema>, record: (db: Db) => Promise<unknown>) {
  await getProject(ctx, projectId);
  return ctx.sql.begin(async (tx) => {
    await lockReadyProject(tx, projectId, "buckets are managed");
    const [bucket] = await tx<BucketRow[]>`
      insert into storage_buckets (project_id, name, public) values (${projectId}, ${input.name}, ${input.public})
      on conflict do nothing returning name, public, created_at`;
    if (!bucket) throw errors.conflict(`A bucket named ${input.name} already exists.`);
    // Files a crash left after an earlier bucket of this name was deleted would otherwise block keys.
    await inStore(ctx.storage.deletePrefix(projectId, input.name));
    await record(tx);
    return bucket;
  });
}

export async function updateBucket(ctx: AppContext, projectId: string, name: string, input: z.infer<typeof updateBucketSchema>, record: (db: Db) => Promise<unknown>) {
  await getProject(ctx, projectId);
  return ctx.sql.begin(async (tx) => {
    await lockReadyProject(tx, projectId, "buckets are managed");
    const [bucket] = await tx<BucketRow[]>`
      update storage_buckets set public = ${input.public} where project_id = ${projectId} and name = ${name}
      returning name, public, created_at`;
    if (!bucket) throw errors.notFound("bucket");
    await record(tx);
    return bucket;
  });
}

/** Deletes a bucket with its objects; refuses (409) a bucket that holds objects unless `force`. */
export async function deleteBucket(ctx: AppContext, projectId: string, name: string, force: boolean, record: (db: Db) => Promise<unknown>) {
  await getProject(ctx, projectId);
  await ctx.sql.begin(async (tx) => {
    await lockReadyProject(tx, projectId, "buckets are managed");
    const [bucket] = await tx`select 1 from storage_buckets where project_id = ${projectId} and name = ${name} for update`;
    if (!bucket) throw errors.notFound("bucket");
    const [object] = await tx`select 1 from storage_objects where project_id = ${projectId} and bucket = ${name} limit 1`;
    if (object && !force) throw errors.conflict(`The bucket ${name} is not empty; delete its objects first or pass force=true.`);
    await tx`delete from storage_buckets where project_id = ${projectId} and name = ${name}`;
    // Inside the transaction: an upload committing into this bucket waits for the row and then finds it gone.
    await inStore(ctx.storage.deletePrefix(projectId, name));
    await record(tx);
  });
}

/** Purge: every object and bucket of the project, bytes and rows. Idempotent (a purge step may run again). */
export async function purgeProjectStorage(ctx: AppContext, db: Db, projectId: string) {
  await ctx.storage.deletePrefix(projectId);
  await db`delete from storage_objects where project_id = ${projectId}`;
  await db`delete from storage_buckets where project_id = ${projectId}`;
}

export async function setStorageSettings(ctx: AppContext, projectId: string, input: z.infer<typeof storageSettingsSchema>, record: (db: Db) => Promise<unknown>) {
  await getProject(ctx, projectId);
  return ctx.sql.begin(async (tx) => {
    await lockReadyProject(tx, projectId, "storage settings are changed");
    await tx`update projects set storage_max_upload_bytes = ${input.max_upload_bytes}, updated_at = now() where id = ${projectId}`;
    await record(tx);
    return storageSettings(ctx, tx, projectId);
  });
}

export async function storageSettings(ctx: AppContext, db: Db, projectId: string) {
  const [row] = await db<{ storage_max_upload_bytes: string | null }[]>`select storage_max_upload_bytes from projects where id = ${projectId}`;
  if (!row) throw errors.notFound("project");
  const own = row.storage_max_upload_bytes === null ? null : Number(row.storage_max_upload_bytes);
  return { max_upload_bytes: own, effective_max_upload_bytes: own ?? ctx.config.storageMaxUpload };
}

// ---- signed URLs ---------------------------------------------------------------------------------

const signingKeys = new WeakMap<Buffer, Buffer>();
function signingKey(ctx: AppContext) {
  let key = signingKeys.get(ctx.masterKey);
  if (!key) signingKeys.set(ctx.masterKey, (key = deriveSigningKey(ctx.masterKey)));
  return key;
}

/** `/v1/storage/object/<project>/<bucket>/<key>`, each key segment percent-encoded. */
export function objectPath(location: ObjectLocation) {
  return `/v1/storage/object/${location.project}/${location.bucket}/${location.key.split("/").map(encodeURIComponent).join("/")}`;
}

function signedUrl(ctx: AppContext, baseUrl: string, grant: UrlGrant) {
  const query = new URLSearchParams({ exp: String(grant.expires) });
  if (grant.method === "PUT") {
    query.set("max", String(grant.maxBytes));
    query.set("ct", grant.contentType!);
  }
  query.set("by", grant.uploadedBy!);
  query.set("sig", signGrant(signingKey(ctx), grant));
  return `${baseUrl}${objectPath(grant)}?${query}`;
}

async function findBucket(db: Db, projectId: string, bucket: string) {
  const [row] = await db<{ public: boolean; storage_max_upload_bytes: string | null }[]>`
    select b.public, p.storage_max_upload_bytes from storage_buckets b join projects p on p.id = b.project_id
    where b.project_id = ${projectId} and b.name = ${bucket}`;
  if (!row) throw errors.notFound("bucket");
  return row;
}

/** A URL the app's client PUTs the object to directly. Secret keys only. */
export async function signUpload(ctx: AppContext, apiKey: VerifiedKey, input: z.infer<typeof signUploadSchema>, baseUrl: string) {
  if (apiKey.kind !== "secret") throw errors.forbidden("A publishable key cannot upload; ask for upload URLs with a secret key.");
  const bucket = await findBucket(ctx.sql, apiKey.projectId, input.bucket);
  const ceiling = bucket.storage_max_upload_bytes === null ? ctx.config.storageMaxUpload : Number(bucket.storage_max_upload_bytes);
  const maxBytes = input.max_bytes ?? ceiling;
  if (maxBytes > ceiling) {
    throw errors.validation([{ code: "custom", path: ["max_bytes"], message: `must be at most ${ceiling} (this project's upload limit)`, input: maxBytes }]);
  }
  const expires = Math.floor(Date.now() / 1000) + input.expires_in;
  const location = { project: apiKey.projectId, bucket: input.bucket, key: input.key };
  let url: string;
  if (ctx.storage.presign) {
    // Straight to S3, into a staging key of this signing's own: the object is checked and recorded
    // when the app completes it or a listing finds it.
    const uploadId = randomUUID();
    url = await presign(ctx, location, { method: "PUT", uploadId, expiresIn: input.expires_in, contentType: input.content_type });
    await ctx.sql`
      insert into storage_pending_uploads (id, project_id, bucket, key, content_type, max_bytes, uploaded_by, expires_at)
      values (${uploadId}, ${location.project}, ${location.bucket}, ${location.key}, ${input.content_type}, ${maxBytes}, ${apiKey.id}, ${new Date(expires * 1000)})`;
  } else {
    url = signedUrl(ctx, baseUrl, { method: "PUT", ...location, expires, maxBytes, contentType: input.content_type, uploadedBy: apiKey.id });
  }
  return {
    url,
    method: "PUT" as const,
    headers: { "content-type": input.content_type },
    max_bytes: maxBytes,
    expires_at: new Date(expires * 1000).toISOString(),
  };
}

/** A URL to GET the object with. Publishable keys only for public buckets. */
export async function signDownload(ctx: AppContext, apiKey: VerifiedKey, input: z.infer<typeof signDownloadSchema>, baseUrl: string) {
  const bucket = await findBucket(ctx.sql, apiKey.projectId, input.bucket);
  if (apiKey.kind !== "secret" && !bucket.public) throw errors.forbidden("A publishable key gets download URLs for public buckets only.");
  const [object] = await ctx.sql<{ content_type: string }[]>`
    select content_type from storage_objects where project_id = ${apiKey.projectId} and bucket = ${input.bucket} and key = ${input.key}`;
  if (!object) throw errors.notFound("object");
  const expires = Math.floor(Date.now() / 1000) + input.expires_in;
  const location = { project: apiKey.projectId, bucket: input.bucket, key: input.key };
  const url = ctx.storage.presign
    ? await presign(ctx, location, { method: "GET", expiresIn: input.expires_in, contentDisposition: contentDisposition(input.key, object.content_type) })
    : signedUrl(ctx, baseUrl, { method: "GET", ...location, expires, uploadedBy: apiKey.id });
  return { url, expires_at: new Date(expires * 1000).toISOString() };
}

/** The query string of a signed URL; anything malformed is a URL that was not signed as it stands. */
const signedQuery = z.object({
  exp: z.string().regex(/^\d{1,12}$/).transform(Number),
  sig: z.string().max(100),
  max: z.string().regex(/^\d{1,16}$/).transform(Number).optional(),
  ct: z.string().max(255).optional(),
  by: z.string().max(64).optional(),
});

/**
 * Checks a signed URL for `method` on `location`, and that the API key that asked for it still
 * works (not revoked, not expired, a rotated key within its grace period): a URL is worth no more
 * than the key it came from. Returns the grant, or throws 403. Every URL signed here comes from an
 * API key (admins upload and download through their session, never a signed storage URL); only a
 * download URL signed before the key was named in it has no `by`, and it runs out within 7 days.
 */
export async function checkSignedUrl(ctx: AppContext, method: "GET" | "PUT", location: ObjectLocation, query: Record<string, string>): Promise<UrlGrant> {
  if (query.sig === undefined) throw errors.signatureRequired();
  const parsed = signedQuery.safeParse(query);
  if (!parsed.success) throw errors.invalidSignature();
  const q = parsed.data;
  const grant: UrlGrant =
    method === "PUT"
      ? { method, ...location, expires: q.exp, maxBytes: q.max, contentType: q.ct, uploadedBy: q.by }
      : { method, ...location, expires: q.exp, uploadedBy: q.by };
  if (method === "PUT" && (q.max === undefined || q.ct === undefined || q.by === undefined)) throw errors.invalidSignature();
  const check = verifyGrant(signingKey(ctx), grant, q.sig);
  if (check === "invalid") throw errors.invalidSignature();
  if (check === "expired") throw errors.signatureExpired();
  // After the signature: only an authentic URL costs a lookup.
  if (grant.uploadedBy !== undefined && !(await keyStillValid(ctx.sql, grant.uploadedBy))) throw errors.signingKeyRevoked();
  return grant;
}

// ---- objects -------------------------------------------------------------------------------------


/**
 * Stores an upload: bytes streamed into staging (never the whole body in memory), then, with the
 * project still ready and the bucket still there, made visible and recorded in one transaction.
 */
export async function storeObject(
  ctx: AppContext,
  location: ObjectLocation,
  body: ReadableStream<Uint8Array>,
  upload: { maxBytes: number; contentType: string; uploadedBy: string | null; deadline?: number; signature?: string; releaseChunks?: boolean },
  record?: (db: Db, object: ReturnType<typeof presentObject>) => Promise<unknown>,
) {
  const [bucket] = await ctx.sql`
    select 1 from storage_buckets b join projects p on p.id = b.project_id
    where b.project_id = ${location.project} and b.name = ${location.bucket} and p.status = 'ready'`;
  if (!bucket) throw errors.notFound("bucket");
  settleLeftIntentsNow(ctx);
  const releaseSlots = takeUploadSlots(location.project, upload.signature);
  let staged: StagedObject;
  try {
    const signal = upload.deadline === undefined ? undefined : AbortSignal.timeout(Math.max(0, upload.deadline - Date.now()));
    staged = await inStore(ctx.storage.put(location, body, { maxBytes: upload.maxBytes, contentType: upload.contentType, signal, releaseChunks: upload.releaseChunks }));
  } finally {
    releaseSlots();
  }
  // fs: the rename is written down first, so a crash or lost commit after it is finished later (intents.ts).
  let intentId: string | undefined;
  try {
    if (staged.version !== undefined) {
      intentId = await recordPutIntent(ctx.sql, location, {
        fileVersion: staged.version,
        size: staged.size,
        contentType: upload.contentType,
        sha256: staged.sha256,
        uploadedBy: upload.uploadedBy,
      });
    }
    return await ctx.sql.begin(async (tx) => {
      await lockObject(tx, location);
      await lockReadyProject(tx, location.project, "objects are stored");
      const [still] = await tx`select 1 from storage_buckets where project_id = ${location.project} and name = ${location.bucket} for share`;
      if (!still) throw errors.notFound("bucket");
      await inStore(staged.commit());
      if (intentId) await forgetIntent(tx, intentId);
      const [row] = await tx<ObjectRow[]>`
        insert into storage_objects (project_id, bucket, key, size, content_type, sha256, uploaded_by, file_version)
        values (${location.project}, ${location.bucket}, ${location.key}, ${staged.size}, ${upload.contentType}, ${staged.sha256},
          -- A key deleted since it signed the URL leaves the field empty rather than failing the upload.
          (select id from api_keys where id = ${upload.uploadedBy}), ${staged.version ?? null})
        on conflict (project_id, bucket, key) do update set
          size = excluded.size, content_type = excluded.content_type, sha256 = excluded.sha256,
          uploaded_by = excluded.uploaded_by, file_version = excluded.file_version, updated_at = now()
        returning ${tx(OBJECT_COLUMNS)}`;
      const object = presentObject(row!);
      await record?.(tx, object);
      return object;
    });
  } catch (err) {
    // Made visible but not recorded (a failure after the rename, or a commit that did not answer)?
    // Then the row follows the bytes, now or when the intent is next settled; otherwise it is dropped.
    if (intentId) await settleIntent(ctx, intentId).catch(() => {});
    throw err;
  } finally {
    // Best effort: what an unreachable S3 keeps in staging its lifecycle rule sweeps (docs/OPERATIONS.md).
    await staged.discard().catch(() => {});
  }
}

// Uploads whose bytes are arriving at once, each holding a temp file of up to its size limit: per
// project, and per signed URL so that one client with one URL cannot take all of its project's (an
// app signing one key several times in a second hands out the same URL: not 1). Per process: the fs
// driver has one (docs/OPERATIONS.md), s3 instances each their own.
export const MAX_UPLOADS_PER_PROJECT = 32;
export const MAX_UPLOADS_PER_URL = 8;
const uploadsInFlight = new Map<string, number>();

/** A place among the uploads in flight of the project (and of the URL), or 429; the function given back frees it. */
function takeUploadSlots(projectId: string, signature?: string) {
  const slots: [string, number][] = [[`project:${projectId}`, MAX_UPLOADS_PER_PROJECT]];
  if (signature !== undefined) slots.push([`url:${signature}`, MAX_UPLOADS_PER_URL]);
  if (slots.some(([key, limit]) => (uploadsInFlight.get(key) ?? 0) >= limit)) throw errors.rateLimited(1);
  for (const [key] of slots) uploadsInFlight.set(key, (uploadsInFlight.get(key) ?? 0) + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    for (const [key] of slots) {
      const left = uploadsInFlight.get(key)! - 1;
      if (left === 0) uploadsInFlight.delete(key);
      else uploadsInFlight.set(key, left);
    }
  };
}

/** How long after its URL expired an upload through AtlasHub may still be sending its bytes. */
export const UPLOAD_FINISH_GRACE_MS = 15 * 60_000;

/** The store's refusals and failures as API errors; anything else stays as it is. */
function storeError(err: unknown) {
  if (err instanceof UploadDeadlineError) return errors.uploadTooSlow();
  if (err instanceof ObjectStoreUnavailableError) return errors.storageUnavailable();
  if (err instanceof ObjectTooLargeError) return errors.payloadTooLarge(err.limit);
  if (err instanceof ObjectKeyConflictError) return errors.objectKeyConflict();
  if (err instanceof InvalidObjectLocationError) return errors.invalidObjectKey(err.message);
  return err;
}

function presign(ctx: AppContext, location: ObjectLocation, request: PresignRequest) {
  return inStore(ctx.storage.presign!(location, request));
}

/** A call to the object store, its refusals and failures (S3 down: 503) as API errors. */
async function inStore<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    throw storeError(err);
  }
}

// A delete whose object is replaced between writing its intent and locking the key starts again.
const DELETE_ATTEMPTS = 3;

/**
 * Deletes an object's row and bytes. The intent written first names the row; a crash or lost commit
 * after the bytes went is finished later (intents.ts), so no row stays without its bytes.
 */
export async function deleteObject(ctx: AppContext, location: ObjectLocation, record?: (db: Db) => Promise<unknown>) {
  settleLeftIntentsNow(ctx);
  for (let attempt = 1; ; attempt++) {
    const intentId = await recordDeleteIntent(ctx.sql, location);
    if (!intentId) throw errors.notFound("object");
    if (await deleteAsIntended(ctx, location, intentId, record)) return;
    if (attempt >= DELETE_ATTEMPTS) throw errors.conflict("The object keeps being replaced; try the delete again.");
  }
}

/** False when an upload replaced the row the intent names (nothing deleted then, the intent dropped). */
async function deleteAsIntended(ctx: AppContext, location: ObjectLocation, intentId: string, record?: (db: Db) => Promise<unknown>) {
  let removing = false;
  try {
    const deleted = await ctx.sql.begin(async (tx) => {
      await lockObject(tx, location);
      await lockReadyProject(tx, location.project, "objects are deleted");
      if (!(await deleteIntendedRow(tx, intentId))) return false;
      // Under the key's lock, before the row's deletion commits: an upload to the same key can only
      // commit after this, so its new file is never the one removed here.
      removing = true;
      await inStore(ctx.storage.delete(location));
      await forgetIntent(tx, intentId);
      await record?.(tx);
      return true;
    });
    if (!deleted) await forgetIntent(ctx.sql, intentId);
    return deleted;
  } catch (err) {
    // Refused before the bytes were touched: nothing happened. After: the delete is finished (the
    // bytes may be gone), now or when the intent is next settled.
    await (removing ? settleIntent(ctx, intentId) : forgetIntent(ctx.sql, intentId)).catch(() => {});
    throw err;
  }
}

/** Keys in byte order after the cursor; `next_cursor` is set when there may be more. */
export async function listObjects(ctx: AppContext, projectId: string, q: z.infer<typeof listObjectsSchema>, options: { publicOnly: boolean }) {
  const bucket = await findBucket(ctx.sql, projectId, q.bucket);
  if (options.publicOnly && !bucket.public) throw errors.forbidden("A publishable key lists public buckets only.");
  settleLeftIntentsNow(ctx);
  await reconcilePendingUploads(ctx, projectId, q.bucket);
  const sql = ctx.sql;
  const rows = await sql<ObjectRow[]>`
    select ${sql(OBJECT_COLUMNS)} from storage_objects
    where project_id = ${projectId} and bucket = ${q.bucket}
      and key >= ${q.prefix} and starts_with(key, ${q.prefix})
      ${q.cursor === undefined ? sql`` : sql`and key > ${q.cursor}`}
    order by key limit ${q.limit + 1}`;
  const items = rows.slice(0, q.limit).map(presentObject);
  const more = rows.length > q.limit;
  return { items, next_cursor: more ? Buffer.from(items.at(-1)!.key).toString("base64url") : null };
}

// ---- uploads that went straight to S3 ----------------------------------------------------------

// A presigned PUT that started before its URL expired may still be arriving; its row is kept this
// much longer before a listing forgets it and removes what it left in staging.
const UPLOAD_GRACE_MS = 3600_000;
// Signings of one key that completing looks at; more is an app signing in a loop.
const MAX_PENDING_PER_KEY = 20;
// A listing (publishable keys list public buckets) looks at this many signed uploads at most, this
// many at a time, and starts no new look after its time budget.
const RECONCILE_BATCH = 20;
const RECONCILE_PARALLEL = 4;
const RECONCILE_BUDGET_MS = 1_000;
// Completing takes the staged bytes it looked at; a client replacing them meanwhile makes it look again.
const COMPLETE_ATTEMPTS = 3;

interface PendingRow {
  id: string;
  content_type: string;
  max_bytes: string;
  uploaded_by: string | null;
  expires_at: Date;
  created_at: Date;
  completed_at: Date | null;
}

const PENDING_COLUMNS = ["id", "content_type", "max_bytes", "uploaded_by", "expires_at", "created_at", "completed_at"];

/**
 * POST /v1/storage/complete (s3 driver): the app says its client finished a presigned PUT. What
 * arrived in staging for the key's signed uploads is checked (size, type) and copied over the key;
 * an upload over the signed size is removed (413) and the key keeps what it held. Completing again
 * with nothing new answers the object recorded.
 */
export async function completeUpload(ctx: AppContext, apiKey: VerifiedKey, input: z.infer<typeof objectRefSchema>) {
  if (apiKey.kind !== "secret") throw errors.forbidden("A publishable key cannot complete uploads; use a secret key.");
  const location = { project: apiKey.projectId, bucket: input.bucket, key: input.key };
  await findBucket(ctx.sql, location.project, location.bucket);
  for (let attempt = 1; ; attempt++) {
    const pending = await ctx.sql<PendingRow[]>`
      select ${ctx.sql(PENDING_COLUMNS)} from storage_pending_uploads
      where project_id = ${location.project} and bucket = ${location.bucket} and key = ${location.key}
      order by created_at desc limit ${MAX_PENDING_PER_KEY}`;
    const arrived = await findArrivedUploads(ctx, location, pending);
    if (arrived.length > 0) {
      try {
        return await recordArrivedUploads(ctx, location, arrived);
      } catch (err) {
        if (err instanceof StagedUploadGoneError && attempt < COMPLETE_ATTEMPTS) continue;
        throw err;
      }
    }
    const [current] = await ctx.sql<ObjectRow[]>`
      select ${ctx.sql(OBJECT_COLUMNS)} from storage_objects where project_id = ${location.project} and bucket = ${location.bucket} and key = ${location.key}`;
    // Nothing new: the object is the answer when the latest signing was recorded already (or all expired),
    // not while that signing's upload is still to come.
    if (current && (pending.length === 0 || pending[0]!.completed_at)) return presentObject(current);
    if (pending.length === 0) throw errors.notFound("upload");
    throw errors.conflict("The object has not arrived yet: PUT it to the signed URL first.");
  }
}

async function findArrivedUploads(ctx: AppContext, location: ObjectLocation, pending: PendingRow[]) {
  const found = await Promise.all(pending.map(async (row) => ({ row, upload: await inStore(ctx.storage.findUpload!(location, row.id)) })));
  return found.filter((f): f is { row: PendingRow; upload: ArrivedUpload } => f.upload !== undefined);
}

/** Records arrived uploads of one key in the order they arrived: the last one is the key's. Answers it. */
async function recordArrivedUploads(ctx: AppContext, location: ObjectLocation, arrived: { row: PendingRow; upload: ArrivedUpload }[]) {
  arrived.sort((a, b) => a.upload.modifiedAt.getTime() - b.upload.modifiedAt.getTime());
  let recorded: ReturnType<typeof presentObject> | undefined;
  let refusal: unknown;
  for (const { row, upload } of arrived) {
    try {
      recorded = await recordArrivedUpload(ctx, location, row, upload);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      refusal = err;
    }
  }
  if (recorded) return recorded;
  throw refusal;
}

/**
 * Checks an upload waiting in staging against its signing and copies it over the key, under the key's
 * lock, in the transaction that records it. One over the signed size, or of another type, is removed
 * from staging and never reaches the key.
 */
async function recordArrivedUpload(ctx: AppContext, location: ObjectLocation, pending: PendingRow, upload: ArrivedUpload) {
  // S3 takes the PUT without asking AtlasHub, so the signing key is checked here, before the bytes
  // reach the key: an upload through the URL of a key revoked meanwhile is never recorded.
  if (!(await keyStillValid(ctx.sql, pending.uploaded_by))) {
    await inStore(upload.discard());
    throw errors.signingKeyRevoked();
  }
  const maxBytes = Number(pending.max_bytes);
  if (upload.size > maxBytes) {
    await inStore(upload.discard());
    throw errors.payloadTooLarge(maxBytes);
  }
  if (upload.contentType !== undefined && normaliseMediaType(upload.contentType) !== normaliseMediaType(pending.content_type)) {
    await inStore(upload.discard());
    throw errors.contentTypeMismatch(pending.content_type);
  }
  const object = await ctx.sql.begin(async (tx) => {
    await lockObject(tx, location);
    await lockReadyProject(tx, location.project, "uploads are completed");
    const [still] = await tx`select 1 from storage_buckets where project_id = ${location.project} and name = ${location.bucket} for share`;
    if (!still) throw errors.notFound("bucket");
    // A copy inside S3 (at most 5 GB, what one PUT can carry) may outlast the control plane's idle limit.
    await tx`set local idle_in_transaction_session_timeout = '15min'`;
    await inStore(upload.commit());
    const [row] = await tx<ObjectRow[]>`
      insert into storage_objects (project_id, bucket, key, size, content_type, sha256, uploaded_by)
      values (${location.project}, ${location.bucket}, ${location.key}, ${upload.size}, ${pending.content_type}, null,
        (select id from api_keys where id = ${pending.uploaded_by}))
      on conflict (project_id, bucket, key) do update set
        size = excluded.size, content_type = excluded.content_type, sha256 = null, uploaded_by = excluded.uploaded_by, file_version = null, updated_at = now()
      returning ${tx(OBJECT_COLUMNS)}`;
    await tx`update storage_pending_uploads set completed_at = now() where id = ${pending.id}`;
    return presentObject(row!);
  });
  // After the commit: a client reusing the URL at this very moment loses that upload (complete then
  // answers 409 or the object recorded here), never the bytes recorded.
  await inStore(upload.discard());
  return object;
}

/**
 * Before a listing (s3 driver): signed uploads nobody completed are looked up in staging; those that
 * arrived are recorded, those whose URL expired (plus a grace for uploads still arriving) are
 * forgotten along with anything left in staging. The least recently checked go first, so signings
 * nobody uses never keep others waiting; best effort (S3 down leaves the listing to the control plane).
 */
async function reconcilePendingUploads(ctx: AppContext, projectId: string, bucket: string) {
  if (!ctx.storage.findUpload) return;
  const rows = await ctx.sql<(PendingRow & { key: string })[]>`
    select key, ${ctx.sql(PENDING_COLUMNS)} from storage_pending_uploads
    where project_id = ${projectId} and bucket = ${bucket}
    order by checked_at nulls first, created_at limit ${RECONCILE_BATCH}`;
  const deadline = Date.now() + RECONCILE_BUDGET_MS;
  const checked: string[] = [];
  let storeDown = false;
  const worker = async () => {
    for (let row = rows.shift(); row && !storeDown && Date.now() < deadline; row = rows.shift()) {
      try {
        await reconcilePendingUpload(ctx, { project: projectId, bucket, key: row.key }, row);
        checked.push(row.id);
      } catch (err) {
        if (!(err instanceof ApiError && err.code === "storage_unavailable")) throw err;
        storeDown = true;
      }
    }
  };
  await Promise.all(Array.from({ length: RECONCILE_PARALLEL }, worker));
  if (checked.length > 0) await ctx.sql`update storage_pending_uploads set checked_at = now() where id = any(${checked}::uuid[])`;
}

async function reconcilePendingUpload(ctx: AppContext, location: ObjectLocation, row: PendingRow) {
  const upload = await inStore(ctx.storage.findUpload!(location, row.id));
  if (upload) {
    await recordArrivedUpload(ctx, location, row, upload).catch((err) => {
      // Too large or of another type (removed), bucket gone, taken by a completion meanwhile: nothing to list.
      if (!(err instanceof ApiError || err instanceof StagedUploadGoneError)) throw err;
    });
  }
  if (row.expires_at.getTime() + UPLOAD_GRACE_MS < Date.now()) {
    await ctx.sql`delete from storage_pending_uploads where id = ${row.id}`;
    if (upload) await inStore(upload.discard());
  }
}

/** Media types compare without case and without spaces around parameters. */
export function normaliseMediaType(value: string | undefined) {
  return (value ?? "").trim().replace(/\s*;\s*/g, ";").toLowerCase();
}

/** How a download is answered: headers, status and the bytes (a streamed Blob or stream), or a 304. */
export interface Download {
  status: 200 | 206 | 304;
  headers: Record<string, string>;
  body: Blob | ReadableStream<Uint8Array> | null;
}

type DownloadRequest = { signed: boolean; range?: string; ifNoneMatch?: string; ifRange?: string };

/**
 * An object's bytes for GET/HEAD. `signed` says a signature was checked; without one only public
 * buckets answer, and an unknown bucket answers like a private one (403), revealing nothing.
 * Headers and bytes are always of one version: the bytes opened are served only when they are the
 * version the row describes.
 */
export async function readObject(ctx: AppContext, location: ObjectLocation, request: DownloadRequest): Promise<Download> {
  const first = await prepareDownload(ctx, ctx.sql, location, request);
  if (first.current) return first.download;
  first.object!.discard();
  // An upload replaced the key between reading the row and opening the file (or the row never named
  // this file: written before versions were recorded, or the files were restored). Both again, while
  // no upload or delete of the key can commit.
  return ctx.sql.begin(async (tx) => {
    await lockObjectShared(tx, location);
    const again = await prepareDownload(ctx, tx, location, request);
    if (again.current) return again.download;
    const object = again.object!;
    if (object.version !== undefined && object.size === Number(again.row.size)) {
      await tx`
        update storage_objects set file_version = ${object.version}
        where project_id = ${location.project} and bucket = ${location.bucket} and key = ${location.key}`;
      return again.download;
    }
    object.discard();
    throw errors.unavailable("The object's stored bytes do not match its recorded size; upload it again.");
  });
}

interface DownloadRow {
  public: boolean;
  size: string | null;
  content_type: string | null;
  sha256: string | null;
  updated_at: Date | null;
  file_version: string | null;
}

/** Reads the row, answers 304 or opens the bytes; `current` says the bytes are the row's version. */
async function prepareDownload(ctx: AppContext, db: Db, location: ObjectLocation, request: DownloadRequest) {
  const [row] = await db<DownloadRow[]>`
    select b.public, o.size, o.content_type, o.sha256, o.updated_at, o.file_version
    from storage_buckets b join projects p on p.id = b.project_id
    left join storage_objects o on o.project_id = b.project_id and o.bucket = b.name and o.key = ${location.key}
    where b.project_id = ${location.project} and b.name = ${location.bucket} and p.status = 'ready'`;
  if (!request.signed && !row?.public) throw errors.signatureRequired();
  if (!row) throw errors.notFound("bucket");
  if (row.size === null) throw errors.notFound("object");
  const size = Number(row.size);
  const etag = row.sha256 ? `"${row.sha256}"` : undefined;
  const headers: Record<string, string> = {
    "content-type": row.content_type!,
    "content-disposition": contentDisposition(location.key, row.content_type!),
    "accept-ranges": "bytes",
    "last-modified": row.updated_at!.toUTCString(),
    "cache-control": request.signed ? "private, no-cache" : "public, no-cache",
    // User content on AtlasHub's own origin: never a page that can run script there.
    "content-security-policy": "default-src 'none'; sandbox",
    ...(etag ? { etag } : {}),
  };
  if (etag && request.ifNoneMatch && request.ifNoneMatch.split(",").some((t) => t.trim() === etag || t.trim() === "*")) {
    return { row, current: true, download: { status: 304 as const, headers, body: null } };
  }
  const rangeHeader = request.ifRange === undefined || request.ifRange === etag ? request.range : undefined;
  const range = resolveRange(rangeHeader, size);
  if (range.kind === "unsatisfiable") throw errors.rangeNotSatisfiable(size);
  const object = await inStore(ctx.storage.get(location, range.kind === "partial" ? range : undefined));
  if (!object) throw errors.notFound("object");
  const current = object.version === undefined ? object.size === size : object.version === row.file_version;
  // Set although a file body carries its own: a HEAD answer has no body to take it from.
  if (range.kind === "partial") {
    headers["content-range"] = `bytes ${range.start}-${range.end}/${size}`;
    headers["content-length"] = String(range.end - range.start + 1);
    return { row, object, current, download: { status: 206 as const, headers, body: object.body } };
  }
  headers["content-length"] = String(size);
  return { row, object, current, download: { status: 200 as const, headers, body: object.body } };
}

// Types a browser may show in place; anything else (HTML, SVG, scripts…) is offered as a download.
const INLINE_TYPES = /^(image\/(png|jpeg|gif|webp|avif|bmp)|video\/[\w.+-]+|audio\/[\w.+-]+|text\/plain|application\/pdf)(;|$)/i;

function contentDisposition(key: string, type: string) {
  const name = key.slice(key.lastIndexOf("/") + 1);
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${INLINE_TYPES.test(type) ? "inline" : "attachment"}; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

/**
 * The object location in a URL path after the route's prefix: `<project>/<bucket>/<key…>`, percent-decoded.
 * Bun resolves literal "../", "%2e%2e/" and "\" in the request target before the app sees it (WHATWG
 * URL parsing), so those arrive as another path; the encoded forms that survive ("%2e%2e%2f", "%5c",
 * Unicode dots, "%00") are decoded here and meet the key rules.
 */
export function parseObjectPath(rest: string): ObjectLocation {
  const first = rest.indexOf("/");
  const second = rest.indexOf("/", first + 1);
  if (first < 0 || second < 0) throw errors.invalidObjectPath();
  const project = rest.slice(0, first);
  const bucket = rest.slice(first + 1, second);
  let key: string;
  try {
    key = decodeURIComponent(rest.slice(second + 1));
  } catch {
    throw errors.invalidObjectKey("is not valid percent-encoded UTF-8");
  }
  if (!/^[a-z0-9]{10}$/.test(project) || !isBucketName(bucket)) throw errors.invalidObjectPath();
  const problem = objectKeyProblem(key);
  if (problem) throw errors.invalidObjectKey(problem);
  return { project, bucket, key };
}

// Storage intents (migration 0015): an upload's rename (fs) or a delete's removal of the bytes comes
// before the commit that changes the object's row, and a crash or a lost control-plane connection in
// between would leave bytes and row out of step. Each step is first written down in a transaction
// of its own and deletes its intent in the transaction that changes the row. An intent left behind is
// settled under the key's lock: finished when the bytes changed (the row follows the bytes, which
// cannot be put back), dropped when they did not.
import type { AppContext } from "../context";
import type { Db } from "../platform/db";
import type { ObjectLocation } from "../engines/storage/store";
import { log } from "../platform/log";
import { lockObject } from "./locks";

export interface PutIntent {
  fileVersion: string;
  size: number;
  contentType: string;
  sha256: string;
  uploadedBy: string | null;
}

interface IntentRow {
  id: string;
  project_id: string;
  bucket: string;
  key: string;
  kind: "put" | "delete";
  file_version: string | null;
}

// Younger intents may belong to a step still under way (it records its intent, then locks the key).
const SETTLE_AFTER_MS = 60_000;
const SETTLE_BATCH = 100;

/** Before an upload's bytes are made visible: what the row is to say once they are. */
export async function recordPutIntent(db: Db, location: ObjectLocation, intent: PutIntent): Promise<string> {
  const [row] = await db<{ id: string }[]>`
    insert into storage_intents (project_id, bucket, key, kind, file_version, size, content_type, sha256, uploaded_by)
    values (${location.project}, ${location.bucket}, ${location.key}, 'put', ${intent.fileVersion}, ${intent.size},
      ${intent.contentType}, ${intent.sha256}, ${intent.uploadedBy})
    returning id`;
  return row!.id;
}

/** Before a delete: which row it deletes. Undefined when the key has no object. */
export async function recordDeleteIntent(db: Db, location: ObjectLocation): Promise<string | undefined> {
  const [row] = await db<{ id: string }[]>`
    insert into storage_intents (project_id, bucket, key, kind, row_updated_at)
    select project_id, bucket, key, 'delete', updated_at from storage_objects
    where project_id = ${location.project} and bucket = ${location.bucket} and key = ${location.key}
    returning id`;
  return row?.id;
}

/** In the delete's own transaction: deletes the row the intent names, if it is still that one. */
export async function deleteIntendedRow(db: Db, intentId: string) {
  const [row] = await db`
    delete from storage_objects o using storage_intents i
    where i.id = ${intentId} and o.project_id = i.project_id and o.bucket = i.bucket and o.key = i.key and o.updated_at = i.row_updated_at
    returning o.key`;
  return row !== undefined;
}

export async function forgetIntent(db: Db, intentId: string) {
  await db`delete from storage_intents where id = ${intentId}`;
}

/** Finishes or drops one intent, under its key's lock: never while its own step is still committing. */
export async function settleIntent(ctx: AppContext, intentId: string) {
  await ctx.sql.begin(async (tx) => {
    const [found] = await tx<IntentRow[]>`select id, project_id, bucket, key, kind, file_version from storage_intents where id = ${intentId}`;
    if (!found) return;
    const location = { project: found.project_id, bucket: found.bucket, key: found.key };
    await lockObject(tx, location);
    const [intent] = await tx<IntentRow[]>`select id, kind, file_version from storage_intents where id = ${intentId} for update`;
    if (!intent) return; // its step committed meanwhile
    if (intent.kind === "put") await finishPut(ctx, tx, location, intent);
    else if (await deleteIntendedRow(tx, intentId)) await ctx.storage.delete(location);
    await forgetIntent(tx, intentId);
  });
}

/** The upload's file is at its key (and nothing replaced it since): its row follows it. */
async function finishPut(ctx: AppContext, tx: Db, location: ObjectLocation, intent: IntentRow) {
  const head = await ctx.storage.head(location);
  if (head?.version !== intent.file_version) return; // never made visible, or replaced since: nothing of it to record
  const [bucket] = await tx`select 1 from storage_buckets where project_id = ${location.project} and name = ${location.bucket} for share`;
  if (!bucket) {
    await ctx.storage.delete(location);
    return;
  }
  await tx`
    insert into storage_objects (project_id, bucket, key, size, content_type, sha256, uploaded_by, file_version)
    select i.project_id, i.bucket, i.key, i.size, i.content_type, i.sha256, (select id from api_keys where id = i.uploaded_by), i.file_version
    from storage_intents i where i.id = ${intent.id}
    on conflict (project_id, bucket, key) do update set
      size = excluded.size, content_type = excluded.content_type, sha256 = excluded.sha256,
      uploaded_by = excluded.uploaded_by, file_version = excluded.file_version, updated_at = now()`;
}

/** Settles the intents that crashed or disconnected steps left (older than a minute). Answers how many. */
export async function settleLeftIntents(ctx: AppContext): Promise<number> {
  const left = await ctx.sql<{ id: string }[]>`
    select id from storage_intents where created_at < now() - ${`${SETTLE_AFTER_MS} milliseconds`}::interval
    order by created_at limit ${SETTLE_BATCH}`;
  for (const { id } of left) await settleIntent(ctx, id);
  return left.length;
}

const lastSettled = new WeakMap<object, number>();

/** At most once a minute per process, from the storage calls: settles left intents in the background. */
export function settleLeftIntentsNow(ctx: AppContext) {
  const last = lastSettled.get(ctx.sql) ?? 0;
  if (Date.now() - last < SETTLE_AFTER_MS) return;
  lastSettled.set(ctx.sql, Date.now());
  settleLeftIntents(ctx).then(
    (n) => n > 0 && log.info("settled storage intents left by a crash or a lost commit", { count: n }),
    (err) => log.warn("settling storage intents failed; tried again later", { error: (err as Error).message }),
  );
}

import type { Db } from "../platform/db";
import type { ObjectLocation } from "../engines/storage/store";

const objectLockKey = (location: ObjectLocation) => `${location.project}/${location.bucket}/${location.key}`;

/** Serialises commits and deletes of one key (any instance): the bytes and the row change together. */
export async function lockObject(db: Db, location: ObjectLocation) {
  await db`select pg_advisory_xact_lock(hashtext('atlashub.object'), hashtext(${objectLockKey(location)}))`;
}

/** Keeps commits and deletes of one key out while a download reads its row and opens its bytes. */
export async function lockObjectShared(db: Db, location: ObjectLocation) {
  await db`select pg_advisory_xact_lock_shared(hashtext('atlashub.object'), hashtext(${objectLockKey(location)}))`;
}

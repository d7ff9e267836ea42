// The databases restores and verifications make beside a project's own: names from the restore's or
// backup's id only (database names are visible to every tenant), and their removal when the project
// is purged (they hold objects of the project's roles, which could not be dropped otherwise).
import type { Db } from "../platform/db";
import type { ObjectStore } from "../engines/storage/store";
import { restoreBucket, scratchDatabaseName } from "./store";

const hex = (id: string) => id.replaceAll("-", "");

export const restoreDatabases = (restoreId: string) => ({
  /** Where a replace restores the dump, before it is swapped in. */
  incoming: `ah_restore_${hex(restoreId)}`,
  /** The replaced database, kept for a rollback. */
  previous: `ah_prev_${hex(restoreId)}`,
  /** The restored database once rolled back, until it is dropped. */
  undone: `ah_undone_${hex(restoreId)}`,
});

/**
 * Drops every restore and verification database of the project, and the copies of files replace
 * restores kept in `backupStore`; idempotent (a purge step may run again).
 */
export async function dropRestoreDatabases(db: Db, projectId: string, backupStore: ObjectStore) {
  const restores = await db<{ id: string }[]>`select id from restores where project_id = ${projectId}`;
  const names = restores.flatMap((r) => Object.values(restoreDatabases(r.id)));
  const backups = await db<{ id: string }[]>`select id from backups where project_id = ${projectId}`;
  names.push(...backups.map((b) => scratchDatabaseName(b.id)));
  for (const name of names) await db`drop database if exists ${db(name)} with (force)`;
  for (const r of restores) await backupStore.deletePrefix(projectId, restoreBucket(r.id));
  await db`update restores set old_dropped_at = now() where project_id = ${projectId} and old_dropped_at is null`;
}

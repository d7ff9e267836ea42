// Who works on a backup or a restore: the process doing it holds a session advisory lock in the
// control plane, on a connection of its own that lives as long as the work. When that process dies
// its connection goes and the lock with it, so a row left unfinished whose lock is free belongs to
// a dead process (on any instance): the reconciler finishes or undoes it.
import postgres from "postgres";
import type { AppContext } from "../context";

export type LockKind = "backup" | "restore";

const LOCK_CLASS: Record<LockKind, string> = { backup: "hashtext('atlashub.backup')", restore: "hashtext('atlashub.restore')" };

export interface HeldLocks {
  release(): Promise<void>;
}

/**
 * Takes the locks in order on one new connection: `wait` ones block until free, the others give up
 * at once (then nothing is held and the answer is undefined).
 */
export async function holdLocks(ctx: Pick<AppContext, "engine" | "config">, locks: { kind: LockKind; id: string; wait?: boolean }[]): Promise<HeldLocks | undefined> {
  const conn = postgres({
    ...ctx.engine.superuser(),
    database: ctx.config.controlDb,
    max: 1,
    connect_timeout: 10,
    idle_timeout: 0,
    onnotice: () => {},
    connection: { application_name: "atlashub-backup-lock" },
  });
  try {
    for (const lock of locks) {
      const cls = conn.unsafe(LOCK_CLASS[lock.kind]);
      const [row] = await (lock.wait
        ? conn<{ ok: boolean }[]>`select pg_advisory_lock(${cls}, hashtext(${lock.id})) is not null as ok`
        : conn<{ ok: boolean }[]>`select pg_try_advisory_lock(${cls}, hashtext(${lock.id})) as ok`);
      if (!row!.ok) {
        await conn.end({ timeout: 1 });
        return undefined;
      }
    }
  } catch (err) {
    await conn.end({ timeout: 1 });
    throw err;
  }
  return { release: () => conn.end({ timeout: 5 }) };
}

/** Runs `use` if no live process holds the lock (its owner died) and returns true; false when one does. */
export async function ifOrphaned(ctx: AppContext, kind: LockKind, id: string, use: () => Promise<void>): Promise<boolean> {
  const conn = await ctx.sql.reserve();
  const cls = conn.unsafe(LOCK_CLASS[kind]);
  try {
    const [got] = await conn<{ ok: boolean }[]>`select pg_try_advisory_lock(${cls}, hashtext(${id})) as ok`;
    if (!got!.ok) return false;
    try {
      await use();
      return true;
    } finally {
      await conn`select pg_advisory_unlock(${cls}, hashtext(${id}))`;
    }
  } finally {
    conn.release();
  }
}

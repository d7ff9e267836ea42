import type { Sql } from "../platform/db";
import { errors } from "./errors";

// Fixed-window counters kept in the control plane, so every instance shares them. Counting is one
// atomic upsert, so parallel requests cannot slip past the limit between a check and a count.

/** Counts one hit for `key` and throws 429 with Retry-After once the window holds more than `limit`. */
export async function countHit(sql: Sql, key: string, limit: number, windowSeconds: number) {
  const [row] = await sql<{ hits: number; retry_after: number }[]>`
    insert into rate_limits as r (key, window_start, hits) values (${key}, now(), 1)
    on conflict (key) do update set
      hits = case when r.window_start < now() - make_interval(secs => ${windowSeconds}) then 1 else r.hits + 1 end,
      window_start = case when r.window_start < now() - make_interval(secs => ${windowSeconds}) then now() else r.window_start end
    returning hits, ceil(extract(epoch from (window_start + make_interval(secs => ${windowSeconds}) - now())))::int as retry_after`;
  if (row!.hits > limit) throw errors.rateLimited(Math.max(1, row!.retry_after));
}

/**
 * One attempt at `key` under exponential backoff: the first `free` attempts go through at once, then
 * each one waits 1 s, 2 s, 4 s … (at most `maxDelaySeconds`) after the one before it; earlier is 429
 * with Retry-After. Counted in one atomic upsert, like countHit. `clearHits` starts the key afresh;
 * a day without attempts does too (prune_rate_limits).
 */
export async function countAttemptWithBackoff(sql: Sql, key: string, free: number, maxDelaySeconds: number) {
  // The exponent stops at 20 (2^20 s is past any cap): an attempt every cap, for weeks, must not overflow it.
  const [row] = await sql<{ allowed: boolean; retry_after: number }[]>`
    insert into rate_limits as r (key, window_start, hits) values (${key}, now(), 1)
    on conflict (key) do update set
      hits = case when r.hits < ${free} or now() >= r.window_start + make_interval(secs => least(power(2, least(r.hits - ${free}, 20)), ${maxDelaySeconds}))
        then r.hits + 1 else r.hits end,
      window_start = case when r.hits < ${free} or now() >= r.window_start + make_interval(secs => least(power(2, least(r.hits - ${free}, 20)), ${maxDelaySeconds}))
        then now() else r.window_start end
    returning window_start = now() as allowed,
      ceil(extract(epoch from (window_start + make_interval(secs => least(power(2, least(greatest(hits - ${free}, 0), 20)), ${maxDelaySeconds})) - now())))::int as retry_after`;
  if (!row!.allowed) throw errors.rateLimited(Math.max(1, row!.retry_after));
}

export async function clearHits(sql: Sql, key: string) {
  await sql`delete from rate_limits where key = ${key}`;
}

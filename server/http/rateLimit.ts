import type { Sql } from "../platform/db";
import { errors } from "./errors";

// Fixed-window counters kept in the control plane, so every instance shares them.

/** Counts one hit for `key`; returns the hits in the current window and the seconds until it ends. */
export async function recordHit(sql: Sql, key: string, windowSeconds: number) {
  const [row] = await sql<{ hits: number; retry_after: number }[]>`
    insert into rate_limits as r (key, window_start, hits) values (${key}, now(), 1)
    on conflict (key) do update set
      hits = case when r.window_start < now() - make_interval(secs => ${windowSeconds}) then 1 else r.hits + 1 end,
      window_start = case when r.window_start < now() - make_interval(secs => ${windowSeconds}) then now() else r.window_start end
    returning hits, ceil(extract(epoch from (window_start + make_interval(secs => ${windowSeconds}) - now())))::int as retry_after`;
  return row!;
}

/** Counts one hit and throws 429 with Retry-After once the window holds more than `limit`. */
export async function countHit(sql: Sql, key: string, limit: number, windowSeconds: number) {
  const { hits, retry_after } = await recordHit(sql, key, windowSeconds);
  if (hits > limit) throw errors.rateLimited(Math.max(1, retry_after));
}

/** Throws 429 when `key` already holds `limit` hits in its current window, without counting one. */
export async function assertUnderLimit(sql: Sql, key: string, limit: number, windowSeconds: number) {
  const [row] = await sql<{ hits: number; retry_after: number }[]>`
    select hits, ceil(extract(epoch from (window_start + make_interval(secs => ${windowSeconds}) - now())))::int as retry_after
    from rate_limits where key = ${key} and window_start >= now() - make_interval(secs => ${windowSeconds})`;
  if (row && row.hits >= limit) throw errors.rateLimited(Math.max(1, row.retry_after));
}

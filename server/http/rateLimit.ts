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

/** Takes back one hit, for attempts that turned out not to count (a successful login). */
export async function forgiveHit(sql: Sql, key: string) {
  await sql`update rate_limits set hits = greatest(hits - 1, 0) where key = ${key}`;
}

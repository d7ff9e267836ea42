import type { Sql } from "../platform/db";
import { errors } from "./errors";

/**
 * Counts one hit for `key` in a fixed window kept in the control plane, so every instance shares it.
 * Throws 429 with Retry-After once the window holds more than `limit` hits.
 */
export async function countHit(sql: Sql, key: string, limit: number, windowSeconds: number) {
  const [row] = await sql<{ hits: number; retry_after: number }[]>`
    insert into rate_limits as r (key, window_start, hits) values (${key}, now(), 1)
    on conflict (key) do update set
      hits = case when r.window_start < now() - make_interval(secs => ${windowSeconds}) then 1 else r.hits + 1 end,
      window_start = case when r.window_start < now() - make_interval(secs => ${windowSeconds}) then now() else r.window_start end
    returning hits, ceil(extract(epoch from (window_start + make_interval(secs => ${windowSeconds}) - now())))::int as retry_after`;
  if (row!.hits > limit) throw errors.rateLimited(Math.max(1, row!.retry_after));
}

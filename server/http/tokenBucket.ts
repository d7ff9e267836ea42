// Token buckets in memory: each bucket holds up to `burst` tokens and refills at `rate` tokens a
// second; a request takes one token from every bucket it names, or from none. Kept per process,
// so N instances behind a load balancer allow N times the rate.

export interface BucketLimit {
  key: string;
  /** Tokens added per second. */
  rate: number;
  /** Most tokens the bucket holds: how many requests may come at once after a quiet spell. */
  burst: number;
}

export type TakeResult = { ok: true } | { ok: false; retryAfterMs: number };

interface Bucket {
  tokens: number;
  at: number;
}

export class TokenBuckets {
  // A Map keeps insertion order; every take re-inserts its buckets, so the first ones are the least
  // recently used. A bucket untouched for burst/rate seconds is full, the same as no bucket at all.
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly maxBuckets = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes one token from each bucket if every one has a token; else takes none and says when to retry. */
  take(limits: BucketLimit[]): TakeResult {
    const now = this.now();
    const filled = limits.map((l) => {
      const b = this.buckets.get(l.key);
      const tokens = b ? Math.min(l.burst, b.tokens + ((now - b.at) * l.rate) / 1000) : l.burst;
      return { limit: l, tokens };
    });
    const short = filled.filter((f) => f.tokens < 1);
    for (const { limit, tokens } of filled) {
      this.buckets.delete(limit.key);
      this.buckets.set(limit.key, { tokens: short.length ? tokens : tokens - 1, at: now });
    }
    while (this.buckets.size > this.maxBuckets) this.buckets.delete(this.buckets.keys().next().value!);
    if (!short.length) return { ok: true };
    return { ok: false, retryAfterMs: Math.max(...short.map((f) => ((1 - f.tokens) * 1000) / f.limit.rate)) };
  }

  get size() {
    return this.buckets.size;
  }
}

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

const TAKEN: TakeResult = Object.freeze({ ok: true });

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
    // Runs on every API request: plain loops, no arrays made.
    let short = false;
    let retryAfterMs = 0;
    for (const l of limits) {
      const tokens = this.tokensOf(l, now);
      if (tokens >= 1) continue;
      short = true;
      retryAfterMs = Math.max(retryAfterMs, ((1 - tokens) * 1000) / l.rate);
    }
    for (const l of limits) {
      const tokens = this.tokensOf(l, now);
      this.buckets.delete(l.key);
      this.buckets.set(l.key, { tokens: short ? tokens : tokens - 1, at: now });
    }
    while (this.buckets.size > this.maxBuckets) this.buckets.delete(this.buckets.keys().next().value!);
    return short ? { ok: false, retryAfterMs } : TAKEN;
  }

  private tokensOf(l: BucketLimit, now: number) {
    const b = this.buckets.get(l.key);
    return b ? Math.min(l.burst, b.tokens + ((now - b.at) * l.rate) / 1000) : l.burst;
  }

  get size() {
    return this.buckets.size;
  }
}

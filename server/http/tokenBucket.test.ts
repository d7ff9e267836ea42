import { describe, expect, it } from "bun:test";
import { TokenBuckets } from "./tokenBucket";

function clock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe("TokenBuckets", () => {
  it("lets a burst through, then refills at the rate", () => {
    const c = clock();
    const buckets = new TokenBuckets(100, c.now);
    const limit = [{ key: "p", rate: 2, burst: 3 }];
    for (let i = 0; i < 3; i++) expect(buckets.take(limit)).toEqual({ ok: true });
    expect(buckets.take(limit)).toEqual({ ok: false, retryAfterMs: 500 });
    c.advance(499);
    expect(buckets.take(limit).ok).toBe(false);
    c.advance(1);
    expect(buckets.take(limit)).toEqual({ ok: true });
    c.advance(60_000);
    for (let i = 0; i < 3; i++) expect(buckets.take(limit).ok).toBe(true); // never more than the burst
    expect(buckets.take(limit).ok).toBe(false);
  });

  it("takes from every bucket or from none, and waits for the emptiest", () => {
    const c = clock();
    const buckets = new TokenBuckets(100, c.now);
    const project = { key: "project", rate: 1, burst: 2 };
    expect(buckets.take([project, { key: "key-a", rate: 1, burst: 2 }]).ok).toBe(true);
    expect(buckets.take([project, { key: "key-b", rate: 1, burst: 2 }]).ok).toBe(true);
    // The project bucket is empty: key-c keeps its tokens.
    expect(buckets.take([project, { key: "key-c", rate: 1, burst: 2 }])).toEqual({ ok: false, retryAfterMs: 1000 });
    c.advance(1000);
    expect(buckets.take([project, { key: "key-c", rate: 1, burst: 2 }]).ok).toBe(true);
    expect(buckets.take([{ key: "key-c", rate: 1, burst: 2 }]).ok).toBe(true);
    expect(buckets.take([{ key: "key-c", rate: 1, burst: 2 }]).ok).toBe(false);
  });

  it("follows a changed limit at once", () => {
    const c = clock();
    const buckets = new TokenBuckets(100, c.now);
    expect(buckets.take([{ key: "p", rate: 10, burst: 10 }]).ok).toBe(true);
    expect(buckets.take([{ key: "p", rate: 1, burst: 1 }]).ok).toBe(true); // capped to the new burst, one token left
    expect(buckets.take([{ key: "p", rate: 1, burst: 1 }]).ok).toBe(false);
  });

  it("keeps at most maxBuckets, dropping the least recently used", () => {
    const c = clock();
    const buckets = new TokenBuckets(3, c.now);
    const one = (key: string) => [{ key, rate: 1, burst: 1 }];
    expect(buckets.take(one("a")).ok).toBe(true);
    for (const key of ["b", "c", "d"]) buckets.take(one(key));
    expect(buckets.size).toBe(3);
    // "a" was dropped, so it starts full again; "d" was kept and is still empty.
    expect(buckets.take(one("a")).ok).toBe(true);
    expect(buckets.take(one("d")).ok).toBe(false);
    expect(buckets.size).toBe(3);
  });
});

// The connection queue that build/patch-postgres.mjs puts into postgres.js (why: build/patches/postgres-queue.js).
import { describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const installed = join(import.meta.dir, "../../node_modules/postgres/src/queue.js");
const { default: Queue } = (await import(installed)) as { default: <T>(initial?: T[]) => { length: number; push(x: T): T; shift(): T | undefined; remove(x: T): T | null } };

describe("postgres.js connection queue (patched)", () => {
  it("is the patched file", () => {
    expect(readFileSync(installed, "utf8")).toBe(readFileSync(join(import.meta.dir, "../../build/patches/postgres-queue.js"), "utf8"));
  });

  it("keeps order and length through the pool's shift-then-push cycle, and removes any member", () => {
    const q = Queue(["a", "b", "c", "d", "e"]);
    for (let i = 0; i < 100_000; i++) q.push(q.shift()!);
    expect(q.length).toBe(5);
    expect([q.shift(), q.shift()]).toEqual(["a", "b"]);
    expect(q.remove("d")).toBe("d");
    expect(q.remove("a")).toBeNull();
    expect([q.shift(), q.shift(), q.shift(), q.shift()]).toEqual(["c", "e", undefined, undefined]);
    expect(q.length).toBe(0);
  });
});

import { describe, expect, it } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { tempDir, waitFor } from "../../test/harness";
import { FsObjectStore, fileSystemProblem } from "./fs";
import { InvalidObjectLocationError, ObjectKeyConflictError, ObjectTooLargeError, UploadDeadlineError } from "./store";

const project = "abcde12345";
const bucket = "uploads";

function newStore() {
  return new FsObjectStore(join(tempDir("fs-store"), "storage"));
}

function streamOf(...chunks: Uint8Array[]) {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const c of chunks) controller.enqueue(c);
      controller.close();
    },
  });
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** Every file under `dir`, relative to it. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true }) as string[]).filter((p) => statSync(join(dir, p)).isFile()).sort();
}

async function bytesOf(body: Blob | ReadableStream<Uint8Array>) {
  return new Uint8Array(await new Response(body).arrayBuffer());
}

describe("FsObjectStore", () => {
  for (const size of [0, 1, 5 * 1024 * 1024]) {
    it(`round-trips ${size} bytes with the same sha256`, async () => {
      const store = newStore();
      const data = new Uint8Array(size).map((_, i) => (i * 31 + 7) % 256);
      const staged = await store.put({ project, bucket, key: "dir/file.bin" }, streamOf(data.subarray(0, size >> 1), data.subarray(size >> 1)), { maxBytes: size });
      expect(staged).toMatchObject({ size, sha256: sha256(data) });
      await staged.commit();
      const got = await store.get({ project, bucket, key: "dir/file.bin" });
      expect(got!.size).toBe(size);
      expect(sha256(await bytesOf(got!.body))).toBe(sha256(data));
      expect(filesUnder(store.root)).toEqual([`${project}/${bucket}/dir/file.bin`]);
      expect(statSync(join(store.root, project, bucket, "dir/file.bin")).mode & 0o777).toBe(0o600);
    });
  }

  it("serves byte ranges", async () => {
    const store = newStore();
    const data = new TextEncoder().encode("0123456789");
    await (await store.put({ project, bucket, key: "digits" }, streamOf(data), { maxBytes: 10 })).commit();
    const range = await store.get({ project, bucket, key: "digits" }, { start: 2, end: 5 });
    expect(range!.size).toBe(10);
    expect(new TextDecoder().decode(await bytesOf(range!.body))).toBe("2345");
  });

  it("serves the version get() opened, even when the key is replaced before the bytes are read", async () => {
    const store = newStore();
    const location = { project, bucket, key: "versioned" };
    const first = await store.put(location, streamOf(new Uint8Array(64 * 1024).fill(0x41)), { maxBytes: 1 << 20 });
    await first.commit();
    const opened = (await store.get(location))!;
    const openedRange = (await store.get(location, { start: 10, end: 19 }))!;
    expect(opened.version).toBe(first.version!);
    const second = await store.put(location, streamOf(new Uint8Array(64 * 1024).fill(0x42)), { maxBytes: 1 << 20 });
    await second.commit();
    expect(second.version).not.toBe(first.version!);
    expect(new Set(await bytesOf(opened.body))).toEqual(new Set([0x41]));
    expect(await bytesOf(openedRange.body)).toEqual(new Uint8Array(10).fill(0x41));
    const now = (await store.get(location))!;
    expect(now.version).toBe(second.version!);
    expect(new Set(await bytesOf(now.body))).toEqual(new Set([0x42]));
    now.discard();
  });

  it("keeps an upload invisible until commit, and discard leaves nothing", async () => {
    const store = newStore();
    const staged = await store.put({ project, bucket, key: "later" }, streamOf(new Uint8Array([1, 2, 3])), { maxBytes: 10 });
    expect(await store.get({ project, bucket, key: "later" })).toBeUndefined();
    expect(await store.head({ project, bucket, key: "later" })).toBeUndefined();
    expect(filesUnder(store.root)).toHaveLength(1); // the temp file
    await staged.discard();
    await staged.discard();
    expect(filesUnder(store.root)).toEqual([]);
  });

  it("stops past maxBytes and keeps nothing", async () => {
    const store = newStore();
    const put = store.put({ project, bucket, key: "big" }, streamOf(new Uint8Array(600), new Uint8Array(600)), { maxBytes: 1000 });
    await expect(put).rejects.toBeInstanceOf(ObjectTooLargeError);
    await put.catch(() => {});
    expect(filesUnder(store.root)).toEqual([]);
  });

  it("accepts exactly maxBytes", async () => {
    const store = newStore();
    const staged = await store.put({ project, bucket, key: "exact" }, streamOf(new Uint8Array(1000)), { maxBytes: 1000 });
    expect(staged.size).toBe(1000);
    await staged.discard();
  });

  it("removes the temp file when the body fails mid-stream", async () => {
    const store = newStore();
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 3) controller.enqueue(new Uint8Array(512 * 1024));
        else controller.error(new Error("client went away"));
      },
    });
    await expect(store.put({ project, bucket, key: "broken" }, body, { maxBytes: 10 * 1024 * 1024 })).rejects.toThrow("client went away");
    await waitFor("the temp file to go", () => filesUnder(store.root).length === 0);
  });

  it("stops an upload whose signal aborts, also while the body sends nothing, and keeps nothing", async () => {
    const store = newStore();
    let cancelled = false;
    const trickle = new ReadableStream<Uint8Array>({
      start: (controller) => controller.enqueue(new Uint8Array(10)), // then nothing more, never closed
      cancel: () => void (cancelled = true),
    });
    const started = performance.now();
    const put = store.put({ project, bucket, key: "slow/one" }, trickle, { maxBytes: 100, signal: AbortSignal.timeout(200) });
    await expect(put).rejects.toBeInstanceOf(UploadDeadlineError);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(cancelled).toBe(true);
    expect(existsSync(join(store.root, project, bucket, "slow"))).toBe(false);
  });

  it("lets the last committed of concurrent uploads to one key win, never a mix", async () => {
    const store = newStore();
    const location = { project, bucket, key: "same/key" };
    // Eight writers, each of a different byte value, interleaving their 64 KiB chunks.
    const writers = Array.from({ length: 8 }, (_, n) => {
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent++ === 32) return controller.close();
          await Bun.sleep(0);
          controller.enqueue(new Uint8Array(64 * 1024).fill(n + 1));
        },
      });
      return store.put(location, body, { maxBytes: 4 * 1024 * 1024 });
    });
    const staged = await Promise.all(writers);
    // Racing commits: the key holds one writer's object, whole.
    await Promise.all(staged.slice(0, 4).map((s) => s.commit()));
    let got = await bytesOf((await store.get(location))!.body);
    expect(got.length).toBe(2 * 1024 * 1024);
    expect(new Set(got).size).toBe(1);
    expect([1, 2, 3, 4]).toContain(got[0]!);
    // Commits one after the other: the last one wins.
    for (const n of [6, 4, 7, 5]) await staged[n]!.commit();
    got = await bytesOf((await store.get(location))!.body);
    expect(got.length).toBe(2 * 1024 * 1024);
    expect(new Set(got)).toEqual(new Set([6]));
    expect(filesUnder(store.root)).toEqual([`${project}/${bucket}/same/key`]);
  });

  it("refuses keys that would sit on top of each other", async () => {
    const store = newStore();
    await (await store.put({ project, bucket, key: "a/b" }, streamOf(new Uint8Array(1)), { maxBytes: 1 })).commit();
    const under = store.put({ project, bucket, key: "a/b/c" }, streamOf(new Uint8Array(1)), { maxBytes: 1 });
    await expect(under).rejects.toBeInstanceOf(ObjectKeyConflictError);
    const over = await store.put({ project, bucket, key: "a" }, streamOf(new Uint8Array(1)), { maxBytes: 1 });
    await expect(over.commit()).rejects.toBeInstanceOf(ObjectKeyConflictError);
    await over.discard();
    await under.catch(() => {});
    expect(await store.get({ project, bucket, key: "a" })).toBeUndefined(); // a directory is not an object
    expect(filesUnder(store.root)).toEqual([`${project}/${bucket}/a/b`]);
  });

  it("leaves no directory behind a failed or discarded upload of a/b that would block the key a", async () => {
    const store = newStore();
    const tooLarge = store.put({ project, bucket, key: "blocked/deep/child" }, streamOf(new Uint8Array(10)), { maxBytes: 1 });
    await expect(tooLarge).rejects.toBeInstanceOf(ObjectTooLargeError);
    expect(existsSync(join(store.root, project, bucket, "blocked"))).toBe(false);
    await (await store.put({ project, bucket, key: "refused/child" }, streamOf(new Uint8Array(1)), { maxBytes: 1 })).discard();
    expect(existsSync(join(store.root, project, bucket, "refused"))).toBe(false);
    for (const key of ["blocked", "refused"]) await (await store.put({ project, bucket, key }, streamOf(new Uint8Array(1)), { maxBytes: 1 })).commit();
    expect(filesUnder(store.root)).toEqual([`${project}/${bucket}/blocked`, `${project}/${bucket}/refused`]);
  });

  it("takes a key over the empty directories a crash left in its place", async () => {
    const store = newStore();
    mkdirSync(join(store.root, project, bucket, "crashed", "below", "deeper"), { recursive: true });
    await (await store.put({ project, bucket, key: "crashed" }, streamOf(new Uint8Array(1)), { maxBytes: 1 })).commit();
    expect(filesUnder(store.root)).toEqual([`${project}/${bucket}/crashed`]);
    expect(statSync(join(store.root, project, bucket, "crashed")).isFile()).toBe(true);
  });

  it("deletes an object and the directories it leaves empty", async () => {
    const store = newStore();
    await (await store.put({ project, bucket, key: "x/y/z" }, streamOf(new Uint8Array(1)), { maxBytes: 1 })).commit();
    await (await store.put({ project, bucket, key: "x/keep" }, streamOf(new Uint8Array(1)), { maxBytes: 1 })).commit();
    await store.delete({ project, bucket, key: "x/y/z" });
    await store.delete({ project, bucket, key: "x/y/z" }); // already gone: no error
    expect(existsSync(join(store.root, project, bucket, "x/y"))).toBe(false);
    expect(filesUnder(store.root)).toEqual([`${project}/${bucket}/x/keep`]);
    await store.delete({ project, bucket, key: "x/keep" });
    expect(existsSync(join(store.root, project, bucket, "x"))).toBe(false);
    expect(existsSync(join(store.root, project, bucket))).toBe(true);
  });

  it("deletes a bucket's or a project's objects by prefix", async () => {
    const store = newStore();
    for (const [b, key] of [["private", "p/1"], ["uploads", "u/1"], ["uploads", "u/2"]] as const) {
      await (await store.put({ project, bucket: b, key }, streamOf(new Uint8Array(1)), { maxBytes: 1 })).commit();
    }
    await (await store.put({ project: "other12345", bucket, key: "kept" }, streamOf(new Uint8Array(1)), { maxBytes: 1 })).commit();
    await store.deletePrefix(project, "uploads");
    expect(filesUnder(store.root)).toEqual([`${project}/private/p/1`, `other12345/${bucket}/kept`].sort());
    await store.deletePrefix(project);
    await store.deletePrefix(project); // idempotent
    expect(filesUnder(store.root)).toEqual([`other12345/${bucket}/kept`]);
  });

  describe("refuses names that could leave the bucket, before touching the disk", () => {
    const bad: [string, { project: string; bucket: string; key: string }][] = [
      ["a ../ key", { project, bucket, key: "../../../escaped" }],
      ["an absolute key", { project, bucket, key: "/tmp/escaped" }],
      ["a backslash key", { project, bucket, key: "..\\escaped" }],
      ["a fullwidth-dot key", { project, bucket, key: "\uff0e\uff0e/escaped" }],
      ["a NUL key", { project, bucket, key: "a\u0000b" }],
      ["a ../ bucket", { project, bucket: "..", key: "escaped" }],
      ["a project id with a slash", { project: "../abcdefg", bucket, key: "escaped" }],
    ];
    for (const [name, location] of bad) {
      it(name, async () => {
        // The store sits deep enough inside `outer` that any escape attempt would still land in it.
        const outer = tempDir("fs-outer");
        const store = new FsObjectStore(join(outer, "x", "y", "storage"));
        await expect(store.put(location, streamOf(new Uint8Array(1)), { maxBytes: 1 })).rejects.toBeInstanceOf(InvalidObjectLocationError);
        await expect(store.get(location)).rejects.toBeInstanceOf(InvalidObjectLocationError);
        await expect(store.delete(location)).rejects.toBeInstanceOf(InvalidObjectLocationError);
        expect(filesUnder(outer)).toEqual([]);
        expect(existsSync("/tmp/escaped")).toBe(false);
      });
    }
  });

  it("recover() removes temp files a crash left, but no objects and no upload of its own in flight", async () => {
    const store = newStore();
    await (await store.put({ project, bucket, key: "kept/object" }, streamOf(new Uint8Array(1)), { maxBytes: 1 })).commit();
    const mine = await store.put({ project, bucket, key: "kept/mine" }, streamOf(new Uint8Array(1)), { maxBytes: 1 });
    const deep = join(store.root, project, bucket, "kept");
    writeFileSync(join(deep, ".ah-tmp-deadbeef0000-0123456789abcdef"), "partial");
    mkdirSync(join(store.root, project, "private"), { recursive: true });
    writeFileSync(join(store.root, project, "private", ".ah-tmp-cafe00000000-0000000000000000"), "partial");
    expect(await store.recover()).toBe(2);
    expect(filesUnder(store.root).filter((f) => !f.includes(".ah-tmp-"))).toEqual([`${project}/${bucket}/kept/object`]);
    await mine.commit(); // this run's temp file survived
    expect(filesUnder(store.root)).toEqual([`${project}/${bucket}/kept/mine`, `${project}/${bucket}/kept/object`]);
  });

  it("kill -9 mid-upload leaves no visible object, and the next start's recover() leaves no temp file", async () => {
    const root = join(tempDir("fs-crash"), "storage");
    const child = Bun.spawn([process.execPath, join(import.meta.dir, "testdata/slowUpload.ts"), root, project, bucket, "crash/victim.bin"], {
      stdout: "pipe",
      stderr: "inherit",
    });
    try {
      const reader = child.stdout.getReader();
      const { value } = await reader.read();
      expect(new TextDecoder().decode(value)).toContain("staging");
      const dir = join(root, project, bucket, "crash");
      await waitFor("bytes in the temp file", () => filesUnder(dir).some((f) => statSync(join(dir, f)).size > 0));
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }
    expect(child.signalCode).toBe("SIGKILL");
    const left = filesUnder(root);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/crash\/\.ah-tmp-[0-9a-f]{12}-[0-9a-f]{16}$/);
    const restarted = new FsObjectStore(root);
    expect(await restarted.get({ project, bucket, key: "crash/victim.bin" })).toBeUndefined();
    expect(await restarted.recover()).toBe(1);
    expect(filesUnder(root)).toEqual([]);
  });

  it("finds nothing wrong with a POSIX file system at start-up, and leaves no probe behind", async () => {
    const store = newStore();
    await store.recover();
    expect(await fileSystemProblem(store.root)).toBeUndefined();
    expect(readdirSync(store.root)).toEqual([]);
  });

  it("check() answers whether the root takes writes", async () => {
    const store = newStore();
    await store.recover();
    expect(await store.check()).toBe(true);
    // Many at once (a busy /health) share one probe instead of racing on its file.
    expect(await Promise.all(Array.from({ length: 50 }, () => store.check()))).toEqual(Array(50).fill(true));
    expect(await store.check()).toBe(true);
    expect(await new FsObjectStore("/proc/atlashub-nowhere").check()).toBe(false);
  });

  it("with releaseChunks, frees each chunk it owns once written, never a buffer shared with other views, and keeps every byte", async () => {
    const store = newStore();
    // 40 MiB in 64 KiB chunks (as a request body arrives): many batches written while others arrive,
    // and two fdatasyncs started on the way. Every fourth chunk is a view into a larger buffer.
    const CHUNK = 64 * 1024;
    const shared = new Uint8Array(CHUNK * 2).map((_, i) => (i * 7) % 251);
    const owned: Uint8Array[] = [];
    const views: Uint8Array[] = [];
    const hash = createHash("sha256");
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 640; i++) {
          const chunk = i % 4 === 3 ? shared.subarray(CHUNK / 2, CHUNK / 2 + CHUNK) : new Uint8Array(CHUNK).fill(i % 256);
          (i % 4 === 3 ? views : owned).push(chunk);
          hash.update(chunk);
          controller.enqueue(chunk);
        }
        controller.close();
      },
    });
    const expected = hash.digest("hex");
    const staged = await store.put({ project, bucket, key: "big.bin" }, stream, { maxBytes: 640 * CHUNK, releaseChunks: true });
    expect(staged).toMatchObject({ size: 640 * CHUNK, sha256: expected });
    await staged.commit();
    expect(sha256(readFileSync(join(store.root, project, bucket, "big.bin")))).toBe(expected);
    expect(owned.every((c) => c.buffer.byteLength === 0)).toBe(true);
    expect(views.every((c) => c.byteLength === CHUNK)).toBe(true);
    expect(shared.byteLength).toBe(CHUNK * 2);
  });

  it("without releaseChunks, leaves the body's chunks as they were", async () => {
    const store = newStore();
    const chunks = Array.from({ length: 40 }, (_, i) => new Uint8Array(64 * 1024).fill(i));
    await (await store.put({ project, bucket, key: "kept.bin" }, streamOf(...chunks), { maxBytes: 40 * 64 * 1024 })).commit();
    expect(chunks.every((c, i) => c.byteLength === 64 * 1024 && c[0] === i)).toBe(true);
  });

  it("removes the temp file when the body fails after several batches were written", async () => {
    const store = newStore();
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 20 * 1024 * 1024) return controller.error(new Error("connection reset"));
        controller.enqueue(new Uint8Array(256 * 1024).fill(sent & 0xff));
        sent += 256 * 1024;
      },
    });
    await expect(store.put({ project, bucket, key: "broken.bin" }, stream, { maxBytes: 1 << 30, releaseChunks: true })).rejects.toThrow("connection reset");
    expect(filesUnder(store.root)).toEqual([]);
  });

  it("keeps what it wrote byte for byte (file on disk equals the upload)", async () => {
    const store = newStore();
    const data = new TextEncoder().encode("hello, disk");
    await (await store.put({ project, bucket, key: "plain.txt" }, streamOf(data), { maxBytes: 100 })).commit();
    expect(readFileSync(join(store.root, project, bucket, "plain.txt"), "utf8")).toBe("hello, disk");
  });
});

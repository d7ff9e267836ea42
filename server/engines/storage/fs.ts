// The fs driver: objects as files under `<root>/<project>/<bucket>/<key>`, root being <data>/storage.
// An upload streams into a temp file beside its final name, is fsynced and only then renamed over
// it: after a crash the key holds the old object or the new one, and the temp file is removed by
// recover() at the next start. A single machine's driver: several instances sharing one storage
// directory (NFS) would remove each other's uploads in flight at start-up; they use s3.
import { randomBytes } from "node:crypto";
import { constants, existsSync, type BigIntStats } from "node:fs";
import { mkdir, open, opendir, readdir, rename, rm, rmdir, stat, unlink, type FileHandle } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { isBucketName, isObjectKey, isProjectId, RESERVED_PREFIX } from "./names";
import {
  InvalidObjectLocationError,
  ObjectKeyConflictError,
  ObjectTooLargeError,
  type ByteRange,
  type ObjectBody,
  type ObjectHead,
  type ObjectLocation,
  type ObjectStore,
  type PutOptions,
  type StagedObject,
  UploadDeadlineError,
} from "./store";

export const TEMP_PREFIX = `${RESERVED_PREFIX}tmp-`;
// Request bodies arrive in small chunks; one write per ~1 MiB keeps syscalls (and thread-pool hops) few.
const WRITE_BATCH_BYTES = 1024 * 1024;
// An fsync of a whole 256 MB upload at its end took ~0.1–0.2 s here, with the disk idle while the
// bytes arrived; flushing every 16 MiB as they come leaves the last fsync little to do.
const SYNC_EVERY_BYTES = 16 * 1024 * 1024;
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
// Bun sends a file body with sendfile() and a Content-Length, but opens it by name only as the
// response goes out, when the key may hold another version. /proc/self/fd/<fd> names the very file
// a download opened and checked, whatever happens to the key. Bun opens that name while rendering the
// response, straight after the handler returns (microtasks only, before any timer); the fd is kept
// open far longer than that, then closed. Without /proc (not Linux) the key's name is used.
const PROC_FD = existsSync("/proc/self/fd") ? "/proc/self/fd" : undefined;
const DOWNLOAD_FD_HOLD_MS = 10_000;

export class FsObjectStore implements ObjectStore {
  readonly driver = "fs";
  /** Marks this process's temp files, so that recover() never removes an upload this process has under way. */
  private readonly runId = randomBytes(6).toString("hex");

  constructor(readonly root: string) {}

  async recover(): Promise<number> {
    await mkdir(this.root, { recursive: true, mode: DIR_MODE });
    const problem = await fileSystemProblem(this.root);
    if (problem) {
      throw new Error(
        `the storage directory ${this.root} is on a file system that ${problem} (exFAT, FAT, NTFS or a case-insensitive APFS/HFS+ do): ` +
          "distinct object keys would meet in one file. The fs storage driver needs a POSIX file system such as ext4, XFS or btrfs; " +
          "move ATLASHUB_DATA_DIR onto one, or use ATLASHUB_STORAGE=s3",
      );
    }
    return removeTempFiles(this.root, (name) => name.startsWith(TEMP_PREFIX) && !name.startsWith(`${TEMP_PREFIX}${this.runId}-`));
  }

  async put(location: ObjectLocation, body: ReadableStream<Uint8Array>, options: PutOptions): Promise<StagedObject> {
    const path = this.objectPath(location);
    const temp = join(dirname(path), `${TEMP_PREFIX}${this.runId}-${randomBytes(8).toString("hex")}`);
    const file = await this.openTemp(temp, location.key);
    let written: { size: number; sha256: string };
    let version: string;
    try {
      written = await writeStream(file, body, { ...options, syncEveryBytes: SYNC_EVERY_BYTES });
      await file.sync();
      // A rename keeps the inode and mtime: this is the identity get() will see once committed.
      version = fileVersion(await file.stat({ bigint: true }));
    } catch (err) {
      await file.close().catch(() => {});
      await this.removeTemp(temp, location);
      throw err;
    }
    await file.close();
    let done = false;
    return {
      ...written,
      version,
      commit: async () => {
        await renameIntoPlace(temp, path, location.key);
        done = true;
        await syncDir(dirname(path));
      },
      discard: async () => {
        if (!done) await this.removeTemp(temp, location);
      },
    };
  }

  /**
   * Removes an upload's temp file and the directories openTemp made for it that are now empty: left
   * behind, the directory "a/" of a failed upload of "a/b" would refuse the key "a" for good.
   */
  private async removeTemp(temp: string, location: ObjectLocation) {
    await rm(temp, { force: true });
    await pruneEmptyDirs(dirname(temp), this.bucketDir(location.project, location.bucket));
  }

  /** Opens the object once: size, version and bytes are all of the file opened here. */
  async get(location: ObjectLocation, range?: ByteRange): Promise<ObjectBody | undefined> {
    const path = this.objectPath(location);
    const handle = await openForReading(path);
    if (!handle) return undefined;
    let stats: BigIntStats;
    try {
      stats = await handle.stat({ bigint: true });
    } catch (err) {
      await handle.close();
      throw err;
    }
    if (!stats.isFile()) {
      await handle.close();
      return undefined;
    }
    const timer = setTimeout(() => void handle.close().catch(() => {}), DOWNLOAD_FD_HOLD_MS);
    timer.unref();
    // A Bun.file body is sent with sendfile() and a Content-Length: no copy through JS memory.
    const file = Bun.file(PROC_FD ? `${PROC_FD}/${handle.fd}` : path);
    return {
      size: Number(stats.size),
      version: fileVersion(stats),
      body: range ? file.slice(range.start, range.end + 1) : file,
      discard: () => {
        clearTimeout(timer);
        void handle.close().catch(() => {});
      },
    };
  }

  async head(location: ObjectLocation): Promise<ObjectHead | undefined> {
    const found = await statFile(this.objectPath(location));
    return found && { size: Number(found.size), modifiedAt: found.mtime, version: fileVersion(found) };
  }

  async delete(location: ObjectLocation): Promise<void> {
    const path = this.objectPath(location);
    try {
      await unlink(path);
    } catch (err) {
      if (!["ENOENT", "EISDIR", "ENOTDIR", "EPERM"].includes(errorCode(err))) throw err;
      return;
    }
    await pruneEmptyDirs(dirname(path), this.bucketDir(location.project, location.bucket));
  }

  async deletePrefix(project: string, bucket?: string): Promise<void> {
    const dir = bucket === undefined ? this.projectDir(project) : this.bucketDir(project, bucket);
    await rm(dir, { recursive: true, force: true, maxRetries: 5 });
  }

  /** Whether the root takes writes. Checks asked for while one runs share it: they would race on the one probe file. */
  check(): Promise<boolean> {
    this.checking ??= this.probe().finally(() => (this.checking = undefined));
    return this.checking;
  }

  private checking?: Promise<boolean>;

  private async probe() {
    const probe = join(this.root, `${RESERVED_PREFIX}health-${this.runId}`);
    try {
      const file = await open(probe, "w", FILE_MODE);
      await file.close();
      await unlink(probe);
      return true;
    } catch {
      return false;
    }
  }

  private projectDir(project: string) {
    if (!isProjectId(project)) throw new InvalidObjectLocationError(`invalid project id`);
    return join(this.root, project);
  }

  private bucketDir(project: string, bucket: string) {
    if (!isBucketName(bucket)) throw new InvalidObjectLocationError(`invalid bucket name`);
    return join(this.projectDir(project), bucket);
  }

  /** The object's file; the key was validated by the caller, and is checked here again along with where it resolves. */
  objectPath(location: ObjectLocation) {
    const dir = this.bucketDir(location.project, location.bucket);
    if (!isObjectKey(location.key)) throw new InvalidObjectLocationError("invalid object key");
    const path = resolve(dir, ...location.key.split("/"));
    if (!path.startsWith(dir + sep)) throw new InvalidObjectLocationError("object key resolves outside its bucket");
    return path;
  }

  /**
   * Creates the key's directory and the temp file in it. A delete pruning empty directories can
   * remove the directory between the two steps, so a vanished directory is made once more.
   */
  private async openTemp(temp: string, key: string): Promise<FileHandle> {
    for (let attempt = 0; ; attempt++) {
      try {
        await mkdir(dirname(temp), { recursive: true, mode: DIR_MODE });
        return await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE);
      } catch (err) {
        const code = errorCode(err);
        if (code === "ENOTDIR" || code === "EEXIST") throw new ObjectKeyConflictError(key);
        if (code !== "ENOENT" || attempt >= 3) throw err;
      }
    }
  }
}

/**
 * What keeps `dir`'s file system from holding every key as its own file: names that differ only in
 * case or in Unicode normalisation meeting in one file, or characters keys may hold refused.
 * Undefined when there is none. Probes in a directory of its own, removed afterwards.
 */
export async function fileSystemProblem(dir: string): Promise<string | undefined> {
  const probe = join(dir, `${RESERVED_PREFIX}probe-${randomBytes(6).toString("hex")}`);
  await mkdir(probe, { mode: DIR_MODE });
  const create = async (name: string) => (await open(join(probe, name), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE)).close();
  try {
    await create("Aa");
    if (await statFile(join(probe, "aA"))) return "folds the case of file names";
    await create("\u00e9"); // é, composed
    if (await statFile(join(probe, "e\u0301"))) return "normalises Unicode file names";
    try {
      await create('k:*?"<>|');
    } catch {
      return 'refuses characters object keys may hold (: * ? " < > |)';
    }
    return undefined;
  } finally {
    await rm(probe, { recursive: true, force: true });
  }
}

export interface WriteStreamOptions {
  maxBytes: number;
  signal?: AbortSignal;
  /** See PutOptions.releaseChunks. */
  releaseChunks?: boolean;
  /**
   * For a file fsynced once the body is in: every this many bytes written, an fdatasync is started
   * (one at a time, on the thread pool) while the body goes on arriving, so that the final fsync only
   * has the tail left to flush instead of the whole file.
   */
  syncEveryBytes?: number;
}

/**
 * Copies the stream into the file, hashing as it goes; stops (and cancels the stream) past
 * `maxBytes`, or when `signal` aborts — also while waiting for a body that sends nothing. One batch
 * is written (on the thread pool) while the next arrives and is hashed; the file is never closed by
 * the caller with a write or sync of this function still running, as every one is awaited before it
 * returns or throws.
 */
export async function writeStream(file: FileHandle, body: ReadableStream<Uint8Array>, options: WriteStreamOptions) {
  const { maxBytes, signal, releaseChunks = false, syncEveryBytes = 0 } = options;
  const hash = new Bun.CryptoHasher("sha256");
  let size = 0;
  let batch: Uint8Array[] = [];
  let batchBytes = 0;
  // What runs in the background: at most one batch being written and one fdatasync. A failure is
  // kept and thrown at the next step (a promise nobody awaits yet must not reject unhandled).
  let writing: Promise<void> | undefined;
  let syncing: Promise<void> | undefined;
  let failure: { err: unknown } | undefined;
  let unsynced = 0;
  const check = () => {
    if (failure) throw failure.err;
  };
  const startSync = () => {
    unsynced = 0;
    syncing = file.datasync().then(
      () => void (syncing = undefined),
      (err) => void ((failure ??= { err }), (syncing = undefined)),
    );
  };
  const flush = async () => {
    await writing;
    check();
    if (batchBytes === 0) return;
    const chunks = batch;
    const bytes = batchBytes;
    batch = [];
    batchBytes = 0;
    writing = writeAll(file, chunks, bytes).then(
      () => {
        writing = undefined;
        if (releaseChunks) for (const chunk of chunks) release(chunk);
        unsynced += bytes;
        if (syncEveryBytes > 0 && unsynced >= syncEveryBytes && !syncing && !failure) startSync();
      },
      (err) => void ((failure ??= { err }), (writing = undefined)),
    );
  };
  const settle = async () => {
    await writing;
    await syncing;
  };
  const reader = body.getReader();
  const stop = () => void reader.cancel().catch(() => {});
  signal?.addEventListener("abort", stop, { once: true });
  try {
    for (;;) {
      if (signal?.aborted) throw new UploadDeadlineError();
      const { done, value: chunk } = await reader.read();
      if (signal?.aborted) throw new UploadDeadlineError();
      check();
      if (done) break;
      size += chunk.byteLength;
      if (size > maxBytes) throw new ObjectTooLargeError(maxBytes);
      hash.update(chunk);
      batch.push(chunk);
      batchBytes += chunk.byteLength;
      if (batchBytes >= WRITE_BATCH_BYTES) await flush();
    }
    await flush();
    await settle();
    check();
  } catch (err) {
    stop();
    await settle();
    throw err;
  } finally {
    signal?.removeEventListener("abort", stop);
  }
  return { size, sha256: hash.digest("hex") };
}

/** Writes all of `chunks` at the file's position; writev may write less than asked (rare for regular files). */
async function writeAll(file: FileHandle, chunks: Uint8Array[], bytes: number) {
  const { bytesWritten } = await file.writev(chunks);
  if (bytesWritten < bytes) await writeRest(file, chunks, bytesWritten);
}

async function writeRest(file: FileHandle, chunks: Uint8Array[], skip: number) {
  for (const chunk of chunks) {
    if (skip >= chunk.byteLength) {
      skip -= chunk.byteLength;
      continue;
    }
    let view = chunk.subarray(skip);
    skip = 0;
    while (view.byteLength > 0) {
      const { bytesWritten } = await file.write(view);
      view = view.subarray(bytesWritten);
    }
  }
}

/**
 * Frees a written chunk's memory now instead of whenever the garbage collector next runs: a request
 * body arrives as one fresh 64 KiB buffer per chunk, and at disk speed the ones waiting for collection
 * made most of an upload's memory (bench/storage.ts). Only a buffer the chunk spans entirely is
 * detached — never one it shares with other views.
 */
function release(chunk: Uint8Array) {
  const buffer = chunk.buffer;
  if (!(buffer instanceof ArrayBuffer) || chunk.byteOffset !== 0 || buffer.byteLength !== chunk.byteLength) return;
  try {
    buffer.transfer(0);
  } catch {
    // Not detachable (e.g. a WebAssembly memory): left to the collector.
  }
}

/**
 * Renames a finished upload onto its key. A directory in the way that holds no file (a crash during
 * an upload of a key below it) is removed and the rename tried once more; one that holds an object is
 * a key conflict.
 */
async function renameIntoPlace(temp: string, path: string, key: string) {
  for (let attempt = 0; ; attempt++) {
    try {
      await rename(temp, path);
      return;
    } catch (err) {
      const code = errorCode(err);
      if (code === "EISDIR" && attempt === 0 && (await removeEmptyTree(path))) continue;
      if (["EISDIR", "ENOTEMPTY", "EEXIST", "ENOTDIR"].includes(code)) throw new ObjectKeyConflictError(key);
      throw err;
    }
  }
}

/** Removes `dir` if it and its subdirectories hold no file; best effort, true when it is gone. */
async function removeEmptyTree(dir: string): Promise<boolean> {
  try {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || !(await removeEmptyTree(join(dir, entry.name)))) return false;
    }
    await rmdir(dir);
    return true;
  } catch {
    return false;
  }
}

/** The rename is durable only once the directory entry is on disk. */
async function syncDir(dir: string) {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Which stored version a file is: a new upload is a new inode, and inode numbers come back only after a file is gone. */
function fileVersion(stats: BigIntStats) {
  return `${stats.ino}-${stats.size}-${stats.mtimeNs}`;
}

async function openForReading(path: string) {
  try {
    return await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if (["ENOENT", "ENOTDIR", "ELOOP"].includes(errorCode(err))) return undefined;
    throw err;
  }
}

async function statFile(path: string) {
  try {
    const found = await stat(path, { bigint: true });
    return found.isFile() ? found : undefined;
  } catch (err) {
    if (["ENOENT", "ENOTDIR"].includes(errorCode(err))) return undefined;
    throw err;
  }
}

/** Removes now-empty directories from `dir` up to (not including) `stop`; another upload's file stops it. */
async function pruneEmptyDirs(dir: string, stop: string) {
  while (dir.startsWith(stop + sep)) {
    try {
      await rmdir(dir);
    } catch {
      return;
    }
    dir = dirname(dir);
  }
}

/** Walks the tree without loading it whole (a bucket can hold millions of files) and removes the files `matches` picks. */
export async function removeTempFiles(root: string, matches: (name: string) => boolean): Promise<number> {
  let removed = 0;
  const pending = [root];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    let entries;
    try {
      entries = await opendir(dir);
    } catch (err) {
      if (errorCode(err) === "ENOENT") continue;
      throw err;
    }
    for await (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) pending.push(path);
      else if (entry.isFile() && matches(entry.name)) {
        await rm(path, { force: true });
        removed++;
      }
    }
  }
  return removed;
}

function errorCode(err: unknown) {
  return (err as NodeJS.ErrnoException).code ?? "";
}

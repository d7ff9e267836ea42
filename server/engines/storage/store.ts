// The ObjectStore: the one interface over where object bytes live (local disk, S3/MinIO). It only
// moves bytes; which objects exist, their content types and checksums live in the control plane
// (server/storage/), so listing never scans the disk or S3. No app imports.

/** Where an object lives: `<project>/<bucket>/<key>`. Callers validate the names (names.ts); drivers check again. */
export interface ObjectLocation {
  project: string;
  bucket: string;
  key: string;
}

/** Inclusive byte range, already checked against the object's size. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * An upload whose bytes are all stored but not yet visible under its key. The caller makes it visible
 * with `commit` (under its own lock, in the same step as recording the metadata, so that the last
 * object committed is also the last one recorded) or drops it with `discard`.
 */
export interface StagedObject {
  size: number;
  sha256: string;
  /** Identity of these bytes once committed, as `get` reports it (fs); absent where the store has none (s3). */
  version?: string;
  /** Replaces whatever the key held, atomically: a reader sees the old object or the new one, never a mix. */
  commit(): Promise<void>;
  /** Removes the staged bytes; safe to call after commit (then it does nothing) and more than once. */
  discard(): Promise<void>;
}

export interface ObjectBody {
  /** Size of the whole object (not of the range). */
  size: number;
  /**
   * Identity of the stored version these bytes are (fs: inode, size, mtime): the body is of exactly
   * that version, whatever replaces the key meanwhile. Absent where the store has none (s3).
   */
  version?: string;
  /**
   * The bytes (of the range when one was asked for), streamed: never the whole object in memory.
   * Start reading (or hand it to the HTTP response) at once: fs keeps the file open for it only briefly.
   */
  body: Blob | ReadableStream<Uint8Array>;
  /** Gives the body up unsent (releases the open file or connection); a body that is sent needs nothing. */
  discard(): void;
}

export interface ObjectHead {
  size: number;
  modifiedAt: Date;
  /** As ObjectBody.version: which stored version is there now (fs); absent where the store has none (s3). */
  version?: string;
}

export interface ObjectStore {
  readonly driver: "fs" | "s3";
  /** Start-up: removes what a crash left behind (partial uploads). Returns how many it removed. */
  recover(): Promise<number>;
  /**
   * Streams `body` into staging; throws ObjectTooLargeError past `maxBytes`, and UploadDeadlineError
   * when `signal` aborts first (nothing is kept then). `contentType` is stored with the object where
   * the store keeps one (S3 serves it on presigned GETs).
   */
  put(location: ObjectLocation, body: ReadableStream<Uint8Array>, options: PutOptions): Promise<StagedObject>;
  /** The object's bytes, or the range of them; undefined when there is no such object. */
  get(location: ObjectLocation, range?: ByteRange): Promise<ObjectBody | undefined>;
  head(location: ObjectLocation): Promise<ObjectHead | undefined>;
  /** Removes one object; no error when it is already gone. */
  delete(location: ObjectLocation): Promise<void>;
  /** Removes every object of a project, or of one of its buckets. */
  deletePrefix(project: string, bucket?: string): Promise<void>;
  /** Whether the store can take writes now (for /health). */
  check(): Promise<boolean>;
  /**
   * A URL of the store itself that clients PUT or GET directly (S3 presigned). Absent on stores whose
   * URLs AtlasHub signs and serves itself (fs: /v1/storage/object/…). A PUT URL never names the
   * object's key: it names a staging place of its own upload id, which `findUpload` looks into.
   */
  presign?(location: ObjectLocation, request: PresignRequest): Promise<string>;
  /** The bytes a client PUT to the presigned URL of `uploadId`, waiting in staging; undefined while none arrived. */
  findUpload?(location: ObjectLocation, uploadId: string): Promise<ArrivedUpload | undefined>;
}

export interface PutOptions {
  maxBytes: number;
  contentType?: string;
  signal?: AbortSignal;
  /**
   * The body's chunks belong to the store alone — nothing else holds or reuses them, as with a
   * request body's — so each one's memory may be freed as soon as it is written.
   */
  releaseChunks?: boolean;
}

export type PresignRequest =
  /** `contentType`: the Content-Type the upload must carry (signed). */
  | { method: "PUT"; expiresIn: number; uploadId: string; contentType: string }
  /** `contentDisposition`: the Content-Disposition the store answers with. */
  | { method: "GET"; expiresIn: number; contentDisposition?: string };

/**
 * An upload that went straight to the store (presigned PUT) and waits in staging, where a client with
 * the URL may still replace it: nothing is checked until AtlasHub looks. The caller checks size and
 * type, then `commit`s under its lock (the bytes it looked at become the key's) or `discard`s.
 */
export interface ArrivedUpload {
  size: number;
  contentType?: string;
  modifiedAt: Date;
  /** Copies the staged bytes over the key; throws StagedUploadGoneError when they vanished meanwhile. */
  commit(): Promise<void>;
  /** Removes the staged bytes; no error when they are gone already. */
  discard(): Promise<void>;
}

/** The staged bytes of an upload were gone when it was committed (another completion took them). */
export class StagedUploadGoneError extends Error {}

export class ObjectTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`object larger than ${limit} bytes`);
  }
}

/** A key that cannot be stored beside another: "a" where "a/b" exists, or "a/b" where "a" is an object (fs driver). */
export class ObjectKeyConflictError extends Error {
  constructor(readonly key: string) {
    super(`key ${key} conflicts with an existing object or prefix`);
  }
}

/** The upload's time ran out before its last byte arrived (a body trickling in to hold a temp file open). */
export class UploadDeadlineError extends Error {
  constructor() {
    super("upload deadline passed");
  }
}

/** The store did not answer in time, or failed or refused AtlasHub itself (S3 down, 5xx, credentials refused). */
export class ObjectStoreUnavailableError extends Error {
  constructor(readonly cause: unknown) {
    super(`object store unavailable: ${(cause as Error)?.message ?? cause}`);
  }
}

/** A name that the caller should have refused: a bug upstream or an attack, never written. */
export class InvalidObjectLocationError extends Error {}

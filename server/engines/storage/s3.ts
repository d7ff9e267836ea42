// The s3 driver: objects in S3 or MinIO, either one bucket per project (`<prefix><project>`, object
// key `<bucket>/<key>`) or one shared bucket (object key `<project>/<bucket>/<key>`; a Pi's MinIO
// prefers few buckets). Apps upload and download with presigned URLs, straight to S3.
//
// Nothing but a copy under the service's key lock ever writes an object's own key. S3 cannot bound
// the size of a presigned PUT, nor how often its URL is used until it expires, so the URL names a
// staging key of its own, `.ah-pending/[<project>/]<bucket>/<upload id>` — one prefix per S3 bucket,
// for a lifecycle rule to sweep, that no project id or bucket name can start with: AtlasHub
// looks at what arrived there (HEAD), checks size and type, and copies exactly that version
// (x-amz-copy-source-if-match) over the key. Uploads that pass through AtlasHub (admin API, CLI) are
// staged in a local temp file first — size, sha256 and the size limit known before S3 sees a byte,
// memory bounded — then PUT to a staging key before the service's transaction, and copied in it.
import { createReadStream } from "node:fs";
import { mkdir, open, rm } from "node:fs/promises";
import { randomBytes, randomUUID } from "node:crypto";
import { join } from "node:path";
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { removeTempFiles, TEMP_PREFIX, writeStream } from "./fs";
import { isBucketName, isObjectKey, isProjectId, RESERVED_PREFIX } from "./names";
import {
  InvalidObjectLocationError,
  ObjectStoreUnavailableError,
  StagedUploadGoneError,
  type ArrivedUpload,
  type ByteRange,
  type ObjectBody,
  type ObjectHead,
  type ObjectLocation,
  type ObjectStore,
  type PresignRequest,
  type PutOptions,
  type StagedObject,
} from "./store";

export interface S3Options {
  /** http(s) URL of S3 or MinIO; unset for AWS S3 itself. */
  endpoint?: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Bucket in the path (MinIO, s3rver) instead of the host name. */
  forcePathStyle: boolean;
  /** One shared bucket for every project; unset: one bucket per project, named bucketPrefix + project id. */
  bucket?: string;
  bucketPrefix: string;
  /** Local directory for uploads that pass through AtlasHub, staged before they go to S3. */
  stagingDir: string;
  /** How long S3 may stay silent in the middle of a request (default 30 s). */
  idleTimeoutMs?: number;
}

// An S3 that accepts connections and never answers must not hang requests (or /health) for good.
const S3_CONNECT_TIMEOUT_MS = 3_000;
/** No byte either way for this long ends a request (an idle timeout: big transfers that progress go on). */
const S3_IDLE_TIMEOUT_MS = 30_000;
const S3_MAX_ATTEMPTS = 2;
const HEALTH_CHECK_TIMEOUT_MS = 2_000;
const STARTUP_CHECK_TIMEOUT_MS = 5_000;

// S3's own limit on a key, which here also holds the project and bucket prefix.
const S3_MAX_KEY_BYTES = 1024;
/** Where uploads wait, at the top of each S3 bucket, before they are checked and copied over their key. */
export const STAGING_PREFIX = `${RESERVED_PREFIX}pending/`;
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class S3ObjectStore implements ObjectStore {
  readonly driver = "s3";
  private readonly client: S3Client;
  private readonly runId = randomBytes(6).toString("hex");
  private readonly bucketsMade = new Set<string>();

  constructor(private readonly options: S3Options) {
    this.client = new S3Client({
      endpoint: options.endpoint,
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey },
      // The SDK would otherwise put a checksum of an empty body into presigned PUT URLs, which the
      // real upload then fails; S3 checks Content-MD5/length on its own.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      // Options of the SDK's own NodeHttpHandler (@smithy/node-http-handler), which it builds from them.
      // Its requestTimeout would bound a whole upload (and only warns by default); socketTimeout is idleness.
      requestHandler: { connectionTimeout: S3_CONNECT_TIMEOUT_MS, socketTimeout: options.idleTimeoutMs ?? S3_IDLE_TIMEOUT_MS },
      maxAttempts: S3_MAX_ATTEMPTS,
    });
    // Outermost, after the SDK's retries: S3 not answering is told apart from its answers about objects.
    this.client.middlewareStack.add(
      (next) => async (args) => {
        try {
          return await next(args);
        } catch (err) {
          throw isUnavailable(err) ? new ObjectStoreUnavailableError(err) : err;
        }
      },
      { step: "initialize", name: "atlashubStoreUnavailable" },
    );
  }

  async recover(): Promise<number> {
    await mkdir(this.options.stagingDir, { recursive: true, mode: 0o700 });
    // S3 unreachable at start-up must not keep AtlasHub down: /health says so, and the bucket is
    // made on first use instead.
    if (this.options.bucket) await this.ensureBucket(this.options.bucket, AbortSignal.timeout(STARTUP_CHECK_TIMEOUT_MS)).catch(() => {});
    return removeTempFiles(this.options.stagingDir, (name) => name.startsWith(TEMP_PREFIX) && !name.startsWith(`${TEMP_PREFIX}${this.runId}-`));
  }

  /** Staged locally, then PUT to a staging key of its own here, before the caller's transaction; commit only copies. */
  async put(location: ObjectLocation, body: ReadableStream<Uint8Array>, options: PutOptions): Promise<StagedObject> {
    const target = this.address(location);
    const staging = this.stagingAddress(location, randomUUID());
    await mkdir(this.options.stagingDir, { recursive: true, mode: 0o700 });
    const temp = join(this.options.stagingDir, `${TEMP_PREFIX}${this.runId}-${randomBytes(8).toString("hex")}`);
    const file = await open(temp, "wx", 0o600);
    let written: { size: number; sha256: string };
    try {
      written = await writeStream(file, body, options);
      await file.close();
      await this.ensureBucket(target.Bucket);
      await this.client.send(new PutObjectCommand({ ...staging, Body: createReadStream(temp), ContentLength: written.size, ContentType: options.contentType }));
    } catch (err) {
      await file.close().catch(() => {});
      await this.deleteKey(staging).catch(() => {});
      throw err;
    } finally {
      await rm(temp, { force: true });
    }
    return {
      ...written,
      commit: () => this.copyStaged(staging, target),
      discard: () => this.deleteKey(staging),
    };
  }

  async findUpload(location: ObjectLocation, uploadId: string): Promise<ArrivedUpload | undefined> {
    const staging = this.stagingAddress(location, uploadId);
    let head;
    try {
      head = await this.client.send(new HeadObjectCommand(staging));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const target = this.address(location);
    return {
      size: head.ContentLength ?? 0,
      contentType: head.ContentType,
      modifiedAt: head.LastModified ?? new Date(0),
      commit: () => this.copyStaged(staging, target, head.ETag),
      discard: () => this.deleteKey(staging),
    };
  }

  /**
   * Copies a staging key over the object's key, inside S3. With `etag`, only the version that was
   * looked at: one a client PUT to the staging key since then fails the copy (412) instead of
   * slipping past the checks. (s3rver ignores the condition; S3, MinIO and Ceph apply it.)
   */
  private async copyStaged(staging: S3Address, target: S3Address, etag?: string) {
    try {
      await this.client.send(
        new CopyObjectCommand({
          ...target,
          CopySource: `${staging.Bucket}/${staging.Key.split("/").map(encodeURIComponent).join("/")}`,
          CopySourceIfMatch: etag,
          MetadataDirective: "COPY",
        }),
      );
    } catch (err) {
      if (isNotFound(err) || isPreconditionFailed(err)) throw new StagedUploadGoneError("the staged upload is gone or was replaced");
      throw err;
    }
  }

  async get(location: ObjectLocation, range?: ByteRange): Promise<ObjectBody | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ ...this.address(location), Range: range ? `bytes=${range.start}-${range.end}` : undefined }));
      const total = res.ContentRange ? Number(res.ContentRange.split("/")[1]) : res.ContentLength!;
      const body = res.Body!.transformToWebStream() as ReadableStream<Uint8Array>;
      return { size: total, body, discard: () => void body.cancel().catch(() => {}) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async head(location: ObjectLocation): Promise<ObjectHead | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand(this.address(location)));
      return { size: res.ContentLength ?? 0, modifiedAt: res.LastModified ?? new Date(0) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async delete(location: ObjectLocation): Promise<void> {
    await this.deleteKey(this.address(location));
  }

  private async deleteKey(address: S3Address) {
    try {
      await this.client.send(new DeleteObjectCommand(address));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async deletePrefix(project: string, bucket?: string): Promise<void> {
    const { Bucket, Prefix } = this.prefix(project, bucket);
    try {
      await this.deleteKeysUnder(Bucket, Prefix);
      await this.deleteKeysUnder(Bucket, this.stagingPrefix(project, bucket));
      if (!this.options.bucket && bucket === undefined) {
        await this.client.send(new DeleteBucketCommand({ Bucket }));
        this.bucketsMade.delete(Bucket);
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Deletes page after page from the start. DeleteObjects answers 200 with the keys it could not
   * delete listed apart: those stop it (they would come back first in every listing, for ever).
   */
  private async deleteKeysUnder(Bucket: string, Prefix: string) {
    for (;;) {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket, Prefix, MaxKeys: 1000 }));
      const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length === 0) break;
      const result = await this.client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: keys, Quiet: true } }));
      const refused = result.Errors ?? [];
      if (refused.length > 0) {
        const first = refused[0]!;
        throw new ObjectStoreUnavailableError(new Error(`S3 did not delete ${refused.length} objects under ${Bucket}/${Prefix}, e.g. ${first.Key}: ${first.Code} ${first.Message ?? ""}`.trim()));
      }
      if (!page.IsTruncated) break;
    }
  }

  async check(): Promise<boolean> {
    const options = { abortSignal: AbortSignal.timeout(HEALTH_CHECK_TIMEOUT_MS) };
    try {
      if (this.options.bucket) await this.client.send(new HeadBucketCommand({ Bucket: this.options.bucket }), options);
      else await this.client.send(new ListBucketsCommand({}), options);
      return true;
    } catch {
      return false;
    }
  }

  async presign(location: ObjectLocation, request: PresignRequest): Promise<string> {
    const target = this.address(location);
    if (request.method === "PUT") {
      await this.ensureBucket(target.Bucket);
      return getSignedUrl(this.client, new PutObjectCommand({ ...this.stagingAddress(location, request.uploadId), ContentType: request.contentType }), {
        expiresIn: request.expiresIn,
        // Content-Type signed too: S3 refuses the upload with any other type.
        signableHeaders: new Set(["content-type"]),
      });
    }
    return getSignedUrl(this.client, new GetObjectCommand({ ...target, ResponseContentDisposition: request.contentDisposition }), { expiresIn: request.expiresIn });
  }

  /** The S3 bucket and key of an object; names are checked here too, as the fs driver does. */
  address(location: ObjectLocation): S3Address {
    if (!isObjectKey(location.key)) throw new InvalidObjectLocationError("invalid object key");
    const { Bucket, Prefix } = this.prefix(location.project, location.bucket);
    const Key = Prefix + location.key;
    if (Buffer.byteLength(Key) > S3_MAX_KEY_BYTES) throw new InvalidObjectLocationError(`is too long for S3 with its bucket prefix (at most ${S3_MAX_KEY_BYTES - Buffer.byteLength(Prefix)} bytes here)`);
    return { Bucket, Key };
  }

  /** Where the upload `uploadId` of an object waits until it is checked and copied over the key. */
  stagingAddress(location: ObjectLocation, uploadId: string): S3Address {
    if (!UPLOAD_ID.test(uploadId)) throw new InvalidObjectLocationError("invalid upload id");
    const { Bucket } = this.address(location);
    return { Bucket, Key: `${this.stagingPrefix(location.project, location.bucket)}${uploadId}` };
  }

  private stagingPrefix(project: string, bucket?: string) {
    return STAGING_PREFIX + this.prefix(project, bucket).Prefix;
  }

  private prefix(project: string, bucket?: string) {
    if (!isProjectId(project)) throw new InvalidObjectLocationError("invalid project id");
    if (bucket !== undefined && !isBucketName(bucket)) throw new InvalidObjectLocationError("invalid bucket name");
    const inside = bucket === undefined ? "" : `${bucket}/`;
    return this.options.bucket
      ? { Bucket: this.options.bucket, Prefix: `${project}/${inside}` }
      : { Bucket: `${this.options.bucketPrefix}${project}`, Prefix: inside };
  }

  /**
   * Creates an S3 bucket the first time this process needs it; one this account has already is fine.
   * BucketAlreadyExists means the name is taken — on AWS by another account, which would then collect
   * every upload (bucket names are global: anyone can create `ah-<project id>` first) — unless the
   * bucket is among this account's own (s3rver answers so for every existing bucket).
   */
  private async ensureBucket(Bucket: string, abortSignal?: AbortSignal) {
    if (this.bucketsMade.has(Bucket)) return;
    try {
      await this.client.send(new CreateBucketCommand({ Bucket }), { abortSignal });
    } catch (err) {
      const name = (err as Error).name;
      if (name === "BucketAlreadyExists") {
        if (!(await this.ownsBucket(Bucket, abortSignal))) throw new BucketNotOwnedError(Bucket);
      } else if (name !== "BucketAlreadyOwnedByYou") throw err;
    }
    this.bucketsMade.add(Bucket);
  }

  /** Whether `Bucket` is one of this account's: ListBuckets lists only those. */
  private async ownsBucket(Bucket: string, abortSignal?: AbortSignal) {
    let ContinuationToken: string | undefined;
    do {
      const page = await this.client.send(new ListBucketsCommand({ Prefix: Bucket, ContinuationToken }), { abortSignal });
      if (page.Buckets?.some((b) => b.Name === Bucket)) return true;
      ContinuationToken = page.ContinuationToken;
    } while (ContinuationToken);
    return false;
  }
}

/** The bucket AtlasHub would use exists and belongs to another account: nothing is sent to it. */
export class BucketNotOwnedError extends ObjectStoreUnavailableError {
  constructor(bucket: string) {
    super(new Error(`the S3 bucket ${bucket} exists and belongs to another account`));
  }
}

interface S3Address {
  Bucket: string;
  Key: string;
}

/** No answer (refused, reset, timed out, aborted), a server error, or AtlasHub's credentials refused. */
function isUnavailable(err: unknown) {
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return status === undefined || status >= 500 || status === 401 || status === 403;
}

function isPreconditionFailed(err: unknown) {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === "PreconditionFailed" || e.$metadata?.httpStatusCode === 412;
}

function isNotFound(err: unknown) {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return ["NoSuchKey", "NotFound", "NoSuchBucket"].includes(e.name ?? "") || e.$metadata?.httpStatusCode === 404;
}

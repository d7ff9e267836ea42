import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash, createHmac, randomBytes, randomUUID } from "node:crypto";
import { readdirSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { ListObjectsV2Command, ListBucketsCommand, S3Client } from "@aws-sdk/client-s3";
import { tempDir } from "../../test/harness";
import { S3RVER_CREDENTIALS, startS3rver } from "../../test/s3rver";
import { BucketNotOwnedError, S3ObjectStore, type S3Options } from "./s3";
import { ObjectStoreUnavailableError, ObjectTooLargeError, StagedUploadGoneError } from "./store";

let s3: Awaited<ReturnType<typeof startS3rver>>;
let raw: S3Client;
beforeAll(async () => {
  s3 = await startS3rver();
  raw = new S3Client({ endpoint: s3.endpoint, region: "us-east-1", forcePathStyle: true, credentials: S3RVER_CREDENTIALS });
});
afterAll(() => s3.close());

const project = "abcde12345";

function newStore(mode: "per-project" | "shared", overrides: Partial<S3Options> = {}) {
  return new S3ObjectStore({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    ...S3RVER_CREDENTIALS,
    bucket: mode === "shared" ? `shared-${randomBytes(4).toString("hex")}` : undefined,
    bucketPrefix: `ah${randomBytes(3).toString("hex")}-`,
    stagingDir: join(tempDir("s3-staging"), "staging"),
    ...overrides,
  });
}

const streamOf = (bytes: Uint8Array | string) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes);
      controller.close();
    },
  });
const sha256 = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");
const bytesOf = async (body: Blob | ReadableStream<Uint8Array>) => new Uint8Array(await new Response(body).arrayBuffer());

async function keysIn(Bucket: string) {
  const page = await raw.send(new ListObjectsV2Command({ Bucket }));
  return (page.Contents ?? []).map((o) => o.Key!).sort();
}

for (const mode of ["per-project", "shared"] as const) {
  describe(`S3ObjectStore (${mode} bucket) against s3rver`, () => {
    const bucketOf = (store: S3ObjectStore) => store.address({ project, bucket: "uploads", key: "x" }).Bucket;

    for (const size of [0, 1, 5 * 1024 * 1024]) {
      it(`round-trips ${size} bytes through put/commit/get with the same sha256`, async () => {
        const store = newStore(mode);
        await store.recover();
        const data = randomBytes(size);
        const staged = await store.put({ project, bucket: "uploads", key: "dir/file.bin" }, streamOf(data), { maxBytes: size, contentType: "application/x-test" });
        expect(staged).toMatchObject({ size, sha256: sha256(data) });
        await staged.commit();
        await staged.discard();
        const got = await store.get({ project, bucket: "uploads", key: "dir/file.bin" });
        expect(got!.size).toBe(size);
        expect(sha256(await bytesOf(got!.body))).toBe(sha256(data));
        expect(await store.head({ project, bucket: "uploads", key: "dir/file.bin" })).toMatchObject({ size });
        expect(await keysIn(bucketOf(store))).toEqual([mode === "shared" ? `${project}/uploads/dir/file.bin` : "uploads/dir/file.bin"]);
      });
    }

    it("serves a byte range with the whole object's size", async () => {
      const store = newStore(mode);
      await (await store.put({ project, bucket: "uploads", key: "digits" }, streamOf("0123456789"), { maxBytes: 10 })).commit();
      const part = await store.get({ project, bucket: "uploads", key: "digits" }, { start: 2, end: 5 });
      expect(part!.size).toBe(10);
      expect(new TextDecoder().decode(await bytesOf(part!.body))).toBe("2345");
    });

    it("answers undefined for a missing object and deletes idempotently", async () => {
      const store = newStore(mode);
      await store.recover();
      expect(await store.get({ project, bucket: "uploads", key: "nope" })).toBeUndefined();
      expect(await store.head({ project, bucket: "uploads", key: "nope" })).toBeUndefined();
      await (await store.put({ project, bucket: "uploads", key: "gone" }, streamOf("x"), { maxBytes: 1 })).commit();
      await store.delete({ project, bucket: "uploads", key: "gone" });
      await store.delete({ project, bucket: "uploads", key: "gone" });
      expect(await store.head({ project, bucket: "uploads", key: "gone" })).toBeUndefined();
    });

    it("stops past maxBytes before anything reaches S3, and keeps no staging file", async () => {
      const store = newStore(mode);
      await store.recover();
      const staging = (store as unknown as { options: S3Options }).options.stagingDir;
      await expect(store.put({ project, bucket: "uploads", key: "big" }, streamOf(new Uint8Array(11)), { maxBytes: 10 })).rejects.toBeInstanceOf(ObjectTooLargeError);
      expect(readdirSync(staging)).toEqual([]);
      const staged = await store.put({ project, bucket: "uploads", key: "dropped" }, streamOf("abc"), { maxBytes: 10 });
      await staged.discard();
      expect(readdirSync(staging)).toEqual([]);
      expect(await store.head({ project, bucket: "uploads", key: "dropped" })).toBeUndefined();
      expect(await keysIn(bucketOf(store))).toEqual([]); // nor its staging copy in S3
    });

    it("deletes a bucket's objects, then a project's", async () => {
      const store = newStore(mode);
      await store.recover();
      for (const [bucket, key] of [["private", "p/1"], ["uploads", "u/1"], ["uploads", "u/2"]] as const) {
        await (await store.put({ project, bucket, key }, streamOf("x"), { maxBytes: 1 })).commit();
      }
      await (await store.put({ project: "other12345", bucket: "uploads", key: "kept" }, streamOf("x"), { maxBytes: 1 })).commit();
      const waiting = { location: { project, bucket: "uploads", key: "u/3" }, uploadId: randomUUID() };
      const url = await store.presign(waiting.location, { method: "PUT", uploadId: waiting.uploadId, expiresIn: 60, contentType: "text/plain" });
      await fetch(url, { method: "PUT", headers: { "content-type": "text/plain" }, body: "staged" });
      expect(await store.findUpload(waiting.location, waiting.uploadId)).toBeDefined();
      await store.deletePrefix(project, "uploads");
      expect(await store.head({ project, bucket: "private", key: "p/1" })).toBeDefined();
      expect(await store.head({ project, bucket: "uploads", key: "u/1" })).toBeUndefined();
      expect(await store.findUpload(waiting.location, waiting.uploadId)).toBeUndefined(); // its staged uploads go too
      await store.deletePrefix(project);
      await store.deletePrefix(project);
      expect(await store.head({ project, bucket: "private", key: "p/1" })).toBeUndefined();
      expect(await store.head({ project: "other12345", bucket: "uploads", key: "kept" })).toBeDefined();
      if (mode === "per-project") {
        const buckets = (await raw.send(new ListBucketsCommand({}))).Buckets!.map((b) => b.Name);
        expect(buckets).not.toContain(bucketOf(store));
      }
    });

    it("uploads through a presigned PUT into staging, commits it over the key, and downloads through a presigned GET", async () => {
      const store = newStore(mode);
      await store.recover();
      const location = { project, bucket: "uploads", key: "presigned/a b+c.txt" };
      const uploadId = randomUUID();
      const put = await store.presign(location, { method: "PUT", uploadId, expiresIn: 600, contentType: "text/plain" });
      expect(new URL(put).origin).toBe(s3.endpoint);
      expect(new URL(put).pathname).toBe(`/${bucketOf(store)}/.ah-pending/${mode === "shared" ? `${project}/` : ""}uploads/${uploadId}`);
      expect(new URL(put).searchParams.get("X-Amz-SignedHeaders")).toBe("content-type;host");
      expect(new URL(put).searchParams.has("x-amz-checksum-crc32")).toBe(false);
      expect(await store.findUpload(location, uploadId)).toBeUndefined();
      const res = await fetch(put, { method: "PUT", headers: { "content-type": "text/plain" }, body: "hello s3" });
      expect(res.status).toBe(200);
      expect(await store.head(location)).toBeUndefined(); // the key itself is never a presigned PUT's target
      const arrived = await store.findUpload(location, uploadId);
      expect(arrived).toMatchObject({ size: 8, contentType: "text/plain", modifiedAt: expect.any(Date) });
      await arrived!.commit();
      await arrived!.discard();
      expect(await store.head(location)).toMatchObject({ size: 8 });
      expect(await store.findUpload(location, uploadId)).toBeUndefined();
      await expect(arrived!.commit()).rejects.toBeInstanceOf(StagedUploadGoneError);
      expect(await keysIn(bucketOf(store))).toEqual([mode === "shared" ? `${project}/uploads/presigned/a b+c.txt` : "uploads/presigned/a b+c.txt"]);
      const get = await store.presign(location, { method: "GET", expiresIn: 60, contentDisposition: 'attachment; filename="a b+c.txt"' });
      const down = await fetch(get);
      expect([down.status, await down.text()]).toEqual([200, "hello s3"]);
      expect(down.headers.get("content-type")).toBe("text/plain");
    });

    it("reports health, and false for an unreachable endpoint", async () => {
      const store = newStore(mode);
      await store.recover();
      expect(await store.check()).toBe(true);
      expect(await newStore(mode, { endpoint: "http://127.0.0.1:1" }).check()).toBe(false);
    });
  });
}

describe("S3ObjectStore when S3 does not answer", () => {
  const sockets: Socket[] = [];
  // Accepts connections and never answers a byte.
  const hole = createServer((socket) => {
    sockets.push(socket);
    socket.on("error", () => {});
  });
  let endpoint: string;
  beforeAll(async () => {
    await new Promise<void>((resolve) => hole.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(hole.address() as { port: number }).port}`;
  });
  afterAll(() => {
    for (const s of sockets) s.destroy();
    hole.close();
  });

  it("answers check() false within its 2 s", async () => {
    const started = performance.now();
    expect(await newStore("shared", { endpoint }).check()).toBe(false);
    expect(performance.now() - started).toBeLessThan(4_000);
  });

  it("fails a call with ObjectStoreUnavailableError once S3 stays silent past the idle timeout", async () => {
    const store = newStore("per-project", { endpoint, idleTimeoutMs: 300 });
    const started = performance.now();
    await expect(store.head({ project, bucket: "uploads", key: "x" })).rejects.toBeInstanceOf(ObjectStoreUnavailableError);
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it("fails with ObjectStoreUnavailableError when nothing listens, and keeps S3's answers about objects as they are", async () => {
    const down = newStore("per-project", { endpoint: "http://127.0.0.1:1" });
    await expect(down.get({ project, bucket: "uploads", key: "x" })).rejects.toBeInstanceOf(ObjectStoreUnavailableError);
    await expect(down.put({ project, bucket: "uploads", key: "x" }, streamOf("x"), { maxBytes: 1 })).rejects.toBeInstanceOf(ObjectStoreUnavailableError);
    expect(await newStore("per-project").get({ project, bucket: "uploads", key: "x" })).toBeUndefined(); // a 404 is an answer
  });
});

describe("S3ObjectStore.deletePrefix when S3 refuses to delete an object", () => {
  // A bucket whose listing always holds one more page and one object that DeleteObjects refuses.
  let deletes = 0;
  const fake = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      const xml = (body: string) => new Response(`<?xml version="1.0" encoding="UTF-8"?>${body}`, { headers: { "content-type": "application/xml" } });
      if (req.method === "GET" && url.searchParams.get("list-type") === "2") {
        return xml(`<ListBucketResult><Name>b</Name><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken><Contents><Key>uploads/stuck</Key><Size>1</Size></Contents></ListBucketResult>`);
      }
      if (req.method === "POST" && url.searchParams.has("delete")) {
        deletes++;
        return xml(`<DeleteResult><Error><Key>uploads/stuck</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error></DeleteResult>`);
      }
      return new Response(null, { status: 404 });
    },
  });
  afterAll(() => fake.stop(true));

  it("fails with the refused key instead of listing and deleting the same page for ever", async () => {
    const store = newStore("per-project", { endpoint: fake.url.origin });
    const deleting = store.deletePrefix(project, "uploads");
    await expect(deleting).rejects.toBeInstanceOf(ObjectStoreUnavailableError);
    await expect(deleting).rejects.toThrow(/uploads\/stuck: AccessDenied/);
    expect(deletes).toBe(1);
  });
});

describe("S3ObjectStore and buckets it does not own", () => {
  // An S3 where every bucket name is taken by another account: CreateBucket answers
  // BucketAlreadyExists (or BucketAlreadyOwnedByYou once `owned`), and ListBuckets lists none of ours.
  let owned = false;
  const fake = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const xml = (status: number, body: string) => new Response(`<?xml version="1.0" encoding="UTF-8"?>${body}`, { status, headers: { "content-type": "application/xml" } });
      if (req.method === "PUT" && new URL(req.url).pathname.split("/").filter(Boolean).length === 1) {
        const code = owned ? "BucketAlreadyOwnedByYou" : "BucketAlreadyExists";
        return xml(409, `<Error><Code>${code}</Code><Message>taken</Message></Error>`);
      }
      if (req.method === "GET" && new URL(req.url).pathname === "/") {
        return xml(200, `<ListAllMyBucketsResult><Owner><ID>us</ID></Owner><Buckets></Buckets></ListAllMyBucketsResult>`);
      }
      return xml(404, `<Error><Code>NoSuchKey</Code><Message>none</Message></Error>`);
    },
  });
  afterAll(() => fake.stop(true));

  it("refuses a bucket another account owns (BucketAlreadyExists, not among its own): nothing is signed for it", async () => {
    owned = false;
    const store = newStore("per-project", { endpoint: fake.url.origin });
    const location = { project, bucket: "uploads", key: "x" };
    const signing = store.presign(location, { method: "PUT", uploadId: randomUUID(), expiresIn: 60, contentType: "text/plain" });
    await expect(signing).rejects.toBeInstanceOf(BucketNotOwnedError);
    await expect(signing).rejects.toBeInstanceOf(ObjectStoreUnavailableError);
    owned = true;
    expect(await store.presign(location, { method: "PUT", uploadId: randomUUID(), expiresIn: 60, contentType: "text/plain" })).toStartWith(fake.url.origin);
  });
});

// s3rver does not check signatures, so the presigned URLs are checked here against AWS Signature
// Version 4 as documented (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html),
// recomputed from scratch.
describe("presigned URLs carry a correct SigV4 query signature", () => {
  const rfc3986 = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const hmac = (key: Buffer | string, data: string) => createHmac("sha256", key).update(data).digest();

  function expectedSignature(url: URL, method: string, headers: Record<string, string>, secret: string) {
    const q = url.searchParams;
    const [accessKey, date, region, service, terminator] = q.get("X-Amz-Credential")!.split("/");
    expect([accessKey, service, terminator]).toEqual([S3RVER_CREDENTIALS.accessKeyId, "s3", "aws4_request"]);
    const signedHeaders = q.get("X-Amz-SignedHeaders")!;
    const canonicalQuery = [...q.entries()]
      .filter(([k]) => k !== "X-Amz-Signature")
      .map(([k, v]) => [rfc3986(k), rfc3986(v)])
      .sort(([a], [b]) => (a! < b! ? -1 : a! > b! ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`)
      .join("&");
    const all: Record<string, string> = { host: url.host, ...headers };
    const canonicalHeaders = signedHeaders.split(";").map((h) => `${h}:${all[h]!.trim()}\n`).join("");
    const canonicalRequest = [method, url.pathname, canonicalQuery, canonicalHeaders, signedHeaders, "UNSIGNED-PAYLOAD"].join("\n");
    const scope = `${date}/${region}/${service}/aws4_request`;
    const stringToSign = ["AWS4-HMAC-SHA256", q.get("X-Amz-Date")!, scope, createHash("sha256").update(canonicalRequest).digest("hex")].join("\n");
    const signingKey = hmac(hmac(hmac(hmac(`AWS4${secret}`, date!), region!), service!), "aws4_request");
    return createHmac("sha256", signingKey).update(stringToSign).digest("hex");
  }

  for (const mode of ["per-project", "shared"] as const) {
    it(`PUT (content type signed) and GET, ${mode} bucket`, async () => {
      const store = newStore(mode, { region: "eu-central-1" });
      const location = { project, bucket: "uploads", key: "sig/ü ñ+(1)*.txt" };
      const put = new URL(await store.presign(location, { method: "PUT", uploadId: randomUUID(), expiresIn: 900, contentType: "image/png" }));
      expect(put.searchParams.get("X-Amz-Algorithm")).toBe("AWS4-HMAC-SHA256");
      expect(put.searchParams.get("X-Amz-Expires")).toBe("900");
      const signature = put.searchParams.get("X-Amz-Signature");
      expect(expectedSignature(put, "PUT", { "content-type": "image/png" }, S3RVER_CREDENTIALS.secretAccessKey)).toBe(signature!);
      // The content type is part of what is signed: another one gives another signature.
      expect(expectedSignature(put, "PUT", { "content-type": "text/html" }, S3RVER_CREDENTIALS.secretAccessKey)).not.toBe(signature!);
      expect(expectedSignature(put, "GET", { "content-type": "image/png" }, S3RVER_CREDENTIALS.secretAccessKey)).not.toBe(signature!);
      expect(expectedSignature(put, "PUT", { "content-type": "image/png" }, "wrong-secret")).not.toBe(signature!);

      const get = new URL(await store.presign(location, { method: "GET", expiresIn: 60, contentDisposition: "inline" }));
      expect(get.searchParams.get("response-content-disposition")).toBe("inline");
      expect(expectedSignature(get, "GET", {}, S3RVER_CREDENTIALS.secretAccessKey)).toBe(get.searchParams.get("X-Amz-Signature")!);
    });
  }
});

import { Hono, type Context, type MiddlewareHandler } from "hono";
import { z } from "zod";
import type { AppContext, AppEnv } from "../context";
import { audit, requireApiKey } from "../http/auth";
import { errors, parseBody } from "../http/errors";
import { getProject } from "../projects/service";
import * as storage from "./service";

const OBJECT_PREFIX = "/v1/storage/object/";
const ADMIN_OBJECTS = /^\/admin\/api\/projects\/[^/]+\/storage\/buckets\/[^/]+\/objects\//;

/** Uploads stream straight to the object store with their own size limit, past the global body limit. */
export function isStreamedUpload(c: Context) {
  return c.req.method === "PUT" && (c.req.path.startsWith(OBJECT_PREFIX) || ADMIN_OBJECTS.test(c.req.path));
}

/** /v1/storage: signed URLs, listing and deleting for apps (x-api-key), and the fs driver's signed-URL endpoint. */
export function storageRoutes(ctx: AppContext) {
  const app = new Hono<AppEnv>();
  const apiKey = requireApiKey(ctx);

  app.post("/signed-upload", apiKey, async (c) => {
    const input = await parseBody(c, storage.signUploadSchema);
    return c.json(await storage.signUpload(ctx, c.get("apiKey"), input, baseUrl(ctx, c)));
  });

  app.post("/signed-download", requireApiKey(ctx, { postOnlyReads: true }), async (c) => {
    const input = await parseBody(c, storage.signDownloadSchema);
    return c.json(await storage.signDownload(ctx, c.get("apiKey"), input, baseUrl(ctx, c)));
  });

  // s3 driver: the client PUT straight to S3; the app tells AtlasHub the object is there.
  app.post("/complete", apiKey, async (c) => {
    const input = await parseBody(c, storage.objectRefSchema);
    return c.json({ bucket: input.bucket, ...(await storage.completeUpload(ctx, c.get("apiKey"), input)) });
  });

  app.get("/list", apiKey, async (c) => {
    const q = storage.listObjectsSchema.parse(c.req.query());
    const key = c.get("apiKey");
    return c.json(await storage.listObjects(ctx, key.projectId, q, { publicOnly: key.kind !== "secret" }));
  });

  app.delete("/object", apiKey, async (c) => {
    const { bucket, key } = await parseBody(c, storage.objectRefSchema);
    await storage.deleteObject(ctx, { project: c.get("apiKey").projectId, bucket, key });
    return c.body(null, 204);
  });

  // The signed URLs of the fs driver: the signature is the credential, so no API key here.
  app.put("/object/*", async (c) => {
    const location = storage.parseObjectPath(rawPathAfter(c, OBJECT_PREFIX));
    const grant = await storage.checkSignedUrl(ctx, "PUT", location, c.req.query());
    const maxBytes = grant.maxBytes!;
    if (Number(c.req.header("content-length") ?? 0) > maxBytes) throw errors.payloadTooLarge(maxBytes);
    if (storage.normaliseMediaType(c.req.header("content-type")) !== storage.normaliseMediaType(grant.contentType)) throw errors.contentTypeMismatch(grant.contentType!);
    const object = await storage.storeObject(ctx, location, requestBody(c), {
      maxBytes,
      contentType: grant.contentType!,
      uploadedBy: grant.uploadedBy!,
      // A URL is checked when the upload starts; its bytes must be in by a while after it expires.
      deadline: grant.expires * 1000 + storage.UPLOAD_FINISH_GRACE_MS,
      signature: c.req.query("sig"),
      releaseChunks: true,
    });
    return c.json({ bucket: location.bucket, ...object });
  });

  app.get("/object/*", async (c) => {
    const location = storage.parseObjectPath(rawPathAfter(c, OBJECT_PREFIX));
    const signed = c.req.query("sig") !== undefined;
    if (signed) await storage.checkSignedUrl(ctx, "GET", location, c.req.query());
    return downloadResponse(await storage.readObject(ctx, location, { signed, ...conditionalHeaders(c) }));
  });

  return app;
}

/**
 * CORS for the signed-URL endpoint, which browsers call directly from the app's origin (PUT with a
 * Content-Type, GET with Range). The signature is the credential, so any origin may use it. Headers
 * are set after the handler, onto its response, so a file body keeps its Content-Length.
 */
export const storageObjectCors = (): MiddlewareHandler =>
  async function storageObjectCors(c, next) {
    if (c.req.header("origin") === undefined) return next();
    if (c.req.method === "OPTIONS") {
      return c.body(null, 204, {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "GET, HEAD, PUT, OPTIONS",
        "Access-Control-Allow-Headers": "content-type, range, if-none-match, if-range, x-request-id",
        "Access-Control-Max-Age": "600",
      });
    }
    await next();
    c.res.headers.set("Access-Control-Allow-Origin", "*");
    c.res.headers.set("Access-Control-Expose-Headers", "ETag, Content-Length, Content-Range, Accept-Ranges, Content-Disposition, X-Request-Id");
  };

const forceQuery = z.object({ force: z.enum(["true", "false"]).optional().transform((v) => v === "true") });

/** /admin/api/projects/:id/storage: buckets and objects for the admin UI and CLI. */
export function storageAdminRoutes(ctx: AppContext) {
  const app = new Hono<AppEnv>();
  const record = (c: Context<AppEnv>, action: string, details: Record<string, unknown>) => (db: Parameters<typeof audit>[0]) =>
    audit(db, c, { action, target: { type: "project", id: c.req.param("id")! }, details });

  app.get("/:id/storage/settings", async (c) => {
    const id = c.req.param("id");
    await getProject(ctx, id);
    return c.json(await storage.storageSettings(ctx, ctx.sql, id));
  });

  app.put("/:id/storage/settings", async (c) => {
    const input = await parseBody(c, storage.storageSettingsSchema);
    return c.json(await storage.setStorageSettings(ctx, c.req.param("id"), input, record(c, "storage.settings.update", input)));
  });

  app.get("/:id/storage/buckets", async (c) => c.json({ items: await storage.listBuckets(ctx, c.req.param("id")) }));

  app.post("/:id/storage/buckets", async (c) => {
    const input = await parseBody(c, storage.createBucketSchema);
    const bucket = await storage.createBucket(ctx, c.req.param("id"), input, record(c, "storage.bucket.create", input));
    return c.json(bucket, 201);
  });

  app.patch("/:id/storage/buckets/:bucket", async (c) => {
    const input = await parseBody(c, storage.updateBucketSchema);
    const { id, bucket } = c.req.param();
    return c.json(await storage.updateBucket(ctx, id, bucket, input, record(c, "storage.bucket.update", { bucket, ...input })));
  });

  app.delete("/:id/storage/buckets/:bucket", async (c) => {
    const { id, bucket } = c.req.param();
    const { force } = forceQuery.parse(c.req.query());
    await storage.deleteBucket(ctx, id, bucket, force, record(c, "storage.bucket.delete", { bucket, force }));
    return c.body(null, 204);
  });

  app.get("/:id/storage/buckets/:bucket/objects", async (c) => {
    const { id, bucket } = c.req.param();
    await getProject(ctx, id);
    const q = storage.listObjectsSchema.parse({ ...c.req.query(), bucket });
    return c.json(await storage.listObjects(ctx, id, q, { publicOnly: false }));
  });

  app.put("/:id/storage/buckets/:bucket/objects/*", async (c) => {
    const location = adminLocation(c);
    const settings = await storage.storageSettings(ctx, ctx.sql, location.project);
    const maxBytes = settings.effective_max_upload_bytes;
    if (Number(c.req.header("content-length") ?? 0) > maxBytes) throw errors.payloadTooLarge(maxBytes);
    const contentType = storage.contentType.parse(c.req.header("content-type") ?? "application/octet-stream");
    const object = await storage.storeObject(ctx, location, requestBody(c), { maxBytes, contentType, uploadedBy: null, releaseChunks: true }, (db, o) =>
      record(c, "storage.object.upload", { bucket: location.bucket, key: location.key, size: o.size })(db),
    );
    return c.json({ bucket: location.bucket, ...object });
  });

  app.get("/:id/storage/buckets/:bucket/objects/*", async (c) => {
    return downloadResponse(await storage.readObject(ctx, adminLocation(c), { signed: true, ...conditionalHeaders(c) }));
  });

  app.delete("/:id/storage/buckets/:bucket/objects/*", async (c) => {
    const location = adminLocation(c);
    await storage.deleteObject(ctx, location, record(c, "storage.object.delete", { bucket: location.bucket, key: location.key }));
    return c.body(null, 204);
  });

  return app;
}

/** The object an admin route names: project id and bucket from the route, the key from the raw path. */
function adminLocation(c: Context<AppEnv>) {
  const { id, bucket } = c.req.param() as { id: string; bucket: string };
  const prefix = `/admin/api/projects/${id}/storage/buckets/${bucket}/objects/`;
  return storage.parseObjectPath(`${id}/${bucket}/${rawPathAfter(c, prefix)}`);
}

/**
 * The still-encoded path after `prefix`: the key is decoded once, by parseObjectPath, so that an
 * encoded "../" or "%2F" reaches the key rules as what it is.
 */
function rawPathAfter(c: Context, prefix: string) {
  const path = new URL(c.req.url).pathname;
  if (!path.startsWith(prefix)) throw errors.routeNotFound();
  return path.slice(prefix.length);
}

/** The request's body as it arrives; its chunks are fresh buffers nothing else holds (storeObject's releaseChunks). */
function requestBody(c: Context): ReadableStream<Uint8Array> {
  return c.req.raw.body ?? new ReadableStream({ start: (controller) => controller.close() });
}

function conditionalHeaders(c: Context) {
  return { range: c.req.header("range"), ifNoneMatch: c.req.header("if-none-match"), ifRange: c.req.header("if-range") };
}

function downloadResponse(download: storage.Download) {
  return new Response(download.body, { status: download.status, headers: download.headers });
}

/** Where apps reach this server: ATLASHUB_PUBLIC_URL, else the request's own scheme and host. */
function baseUrl(ctx: AppContext, c: Context) {
  if (ctx.config.publicUrl) return ctx.config.publicUrl;
  const url = new URL(c.req.url);
  if (ctx.config.trustProxy) {
    const proto = c.req.header("x-forwarded-proto")?.split(",")[0]?.trim();
    const host = c.req.header("x-forwarded-host")?.split(",")[0]?.trim();
    if (proto === "http" || proto === "https") url.protocol = proto;
    if (host && /^[A-Za-z0-9.:\[\]-]+$/.test(host)) url.host = host;
  }
  return url.origin;
}

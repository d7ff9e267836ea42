// `atlashub storage …`: browse a project's buckets and objects from the server's own shell. Talks to
// the control plane and the object store directly, as the admin API does.
import type { AppContext } from "../context";
import { recordAudit } from "../platform/audit";
import type { Db } from "../platform/db";
import * as storage from "./service";

export const storageUsage = `Usage: atlashub storage <subcommand> PROJECT [args] [flags]

  buckets PROJECT                               buckets with their object counts and bytes
  ls PROJECT BUCKET [--prefix P] [--limit N]    objects in key order (at most N, default 1000)
  put PROJECT BUCKET KEY FILE [--content-type T] upload FILE as KEY (default type application/octet-stream)
  get PROJECT BUCKET KEY FILE                   download KEY into FILE
  rm PROJECT BUCKET KEY                         delete an object

Settings flags (--data-dir …) as for serve.`;

export const storageFlags = ["--prefix", "--limit", "--content-type"] as const;

export async function runStorageCommand(ctx: AppContext, sub: string, args: string[], flags: Partial<Record<(typeof storageFlags)[number], string>>) {
  const [project = "", bucket = "", key = "", file = ""] = args;
  const record = (action: string, details: Record<string, unknown>) => (db: Db) =>
    recordAudit(db, { actor: { type: "cli", label: `atlashub storage ${sub}` }, action, target: { type: "project", id: project }, details });
  const location = () => {
    const ref = storage.objectRefSchema.parse({ bucket, key });
    return { project, ...ref };
  };

  switch (sub) {
    case "buckets":
      return (await storage.listBuckets(ctx, project)).map((b) => [b.name.padEnd(24), b.public ? "public " : "private", String(b.objects).padStart(8), `${b.bytes} B`].join("  ")).join("\n");
    case "ls": {
      await storage.listBuckets(ctx, project); // 404 for an unknown project
      const q = storage.listObjectsSchema.parse({ bucket, prefix: flags["--prefix"], limit: flags["--limit"] ?? storage.MAX_LIST_LIMIT });
      const { items, next_cursor } = await storage.listObjects(ctx, project, q, { publicOnly: false });
      const lines = items.map((o) => [String(o.size).padStart(12), o.updated_at.toISOString(), o.content_type.padEnd(24), o.key].join("  "));
      if (next_cursor) lines.push(`… more: narrow with --prefix or raise --limit`);
      return lines.join("\n");
    }
    case "put": {
      if (!file) throw new Error(`put needs PROJECT BUCKET KEY FILE\n\n${storageUsage}`);
      const where = location();
      const settings = await storage.storageSettings(ctx, ctx.sql, project);
      const contentType = storage.contentType.parse(flags["--content-type"] ?? "application/octet-stream");
      const object = await storage.storeObject(ctx, where, Bun.file(file).stream(), { maxBytes: settings.effective_max_upload_bytes, contentType, uploadedBy: null }, (db, o) =>
        record("storage.object.upload", { bucket, key, size: o.size })(db),
      );
      return JSON.stringify({ bucket, ...object }, null, 2);
    }
    case "get": {
      if (!file) throw new Error(`get needs PROJECT BUCKET KEY FILE\n\n${storageUsage}`);
      const download = await storage.readObject(ctx, location(), { signed: true });
      const body = download.body;
      const bytes = body instanceof Blob ? await Bun.write(file, body) : await Bun.write(file, new Response(body));
      return `wrote ${bytes} bytes to ${file}`;
    }
    case "rm":
      await storage.deleteObject(ctx, location(), record("storage.object.delete", { bucket, key }));
      return `deleted ${bucket}/${key}`;
    default:
      throw new Error(`unknown storage subcommand '${sub}'\n\n${storageUsage}`);
  }
}

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret } from "../test/harness";
import { backupBucket, backupObject } from "./store";
import { asStream } from "./parts";

let server: TestServer;
let auth: Record<string, string>;
let project: any;
let owner: postgres.Sql;
const clients = clientTracker();
const files: Record<string, Buffer> = {
  "private/reports/2024.csv": Buffer.from("year,total\n2024,42\n"),
  "uploads/images/photo.bin": randomBytes(300_000),
  "uploads/empty.txt": Buffer.alloc(0),
};

beforeAll(async () => {
  // Small parts, so a dump of a few hundred KB is cut into several.
  server = await startTestServer({ ATLASHUB_BACKUP_PART_BYTES: "65536" });
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "backup-source");
  owner = clients.connect(project.credentials.owner.connection_string);
  await owner`create table items (id bigserial primary key, name text not null, price numeric(10,2), tags text[], meta jsonb, seen timestamptz default now(), blob bytea)`;
  await owner`insert into items (name, price, tags, meta, blob) select 'item ' || g, g * 1.5, array['a', 'b' || g], jsonb_build_object('g', g), decode(md5(g::text), 'hex') from generate_series(1, 3000) g`;
  await owner`create table notes (id int primary key, body text)`;
  await owner`insert into notes select g, repeat(md5(g::text), 20) from generate_series(1, 500) g`;
  await owner`create view cheap_items as select * from items where price < 10`;
  for (const [path, bytes] of Object.entries(files)) {
    const res = await server.fetch(`/admin/api/projects/${project.id}/storage/buckets/${path}`.replace(/buckets\/([^/]+)\//, "buckets/$1/objects/"), {
      method: "PUT",
      headers: { ...auth, "content-type": "application/octet-stream" },
      body: bytes,
    });
    expect(res.status).toBe(200);
  }
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

async function api(method: string, path: string, body?: unknown) {
  const res = await server.fetch(`/admin/api/projects/${project.id}${path}`, body === undefined ? { method, headers: auth } : jsonRequest(method, body, auth));
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Waits for the backup's work (dump, then verification) to end in this process, then reads it through the API. */
async function settled(backupId: string) {
  await server.ctx.backups.settled(backupId);
  return (await api("GET", `/backups/${backupId}`)).body;
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("POST /admin/api/projects/:id/backups", () => {
  let backup: any;

  it("answers 202 with the backup running, then completes and verifies it", async () => {
    const res = await api("POST", "/backups");
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), status: "running" });
    backup = await settled(res.body.id);
    expect({ status: backup.status, failure: backup.failure_reason, verify: backup.verify_error }).toEqual({ status: "verified", failure: null, verify: null });
    expect(backup.verified_at).not.toBeNull();
  }, 90_000);

  it("describes the backup in its manifest: versions, dump, tables, sequences, files", async () => {
    const m = backup.manifest;
    expect(m.format).toBe("atlashub-backup/1");
    expect(m.project).toEqual({ id: project.id, name: "backup-source" });
    expect(m.postgres.server_version).toMatch(/^15\./);
    expect(m.postgres.pg_dump_version).toMatch(/^15\./);
    expect(m.atlashub_version).toBe(server.ctx.version);
    expect(m.dump.parts.length).toBeGreaterThan(1);
    expect(m.dump.parts.every((p: any) => p.bytes <= 65536)).toBe(true);
    expect(m.dump.parts.reduce((n: number, p: any) => n + p.bytes, 0)).toBe(m.dump.bytes);
    expect(backup.bytes.dump).toBe(m.dump.bytes);
    expect(m.database.tables.map((t: any) => [t.schema, t.table, t.rows])).toEqual([
      ["public", "items", 3000],
      ["public", "notes", 500],
    ]);
    expect(m.database.sequences).toEqual([{ schema: "public", name: "items_id_seq", last_value: "3000", is_called: true }]);
    expect(m.files.count).toBe(3);
    expect(m.files.bytes).toBe(Object.values(files).reduce((n, b) => n + b.length, 0));
    expect(m.files.buckets.map((b: any) => b.name)).toEqual(["private", "uploads"]);
  });

  it("streams the dump whose sha256 is the manifest's, through an admin download and a signed URL", async () => {
    const res = await server.fetch(`/admin/api/projects/${project.id}/backups/${backup.id}/download`, { headers: auth });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-disposition")).toMatch(/^attachment; filename="backup-source-.*\.dump"$/);
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(bytes.length).toBe(backup.manifest.dump.bytes);
    expect(sha256(bytes)).toBe(backup.manifest.dump.sha256);
    expect(Buffer.from(bytes.subarray(0, 5)).toString()).toBe("PGDMP");

    const signed = await api("POST", `/backups/${backup.id}/download-url`, { expires_in: 60 });
    expect(signed.status).toBe(200);
    registerSecret(new URL(signed.body.url).searchParams.get("sig")!);
    const viaUrl = await fetch(signed.body.url);
    expect(viaUrl.status).toBe(200);
    expect(sha256(new Uint8Array(await viaUrl.arrayBuffer()))).toBe(backup.manifest.dump.sha256);
  });

  it("refuses a tampered or unsigned download URL", async () => {
    const signed = await api("POST", `/backups/${backup.id}/download-url`, {});
    registerSecret(new URL(signed.body.url).searchParams.get("sig")!);
    const url = new URL(signed.body.url);
    url.searchParams.set("exp", String(Number(url.searchParams.get("exp")) + 1));
    const tampered = await fetch(url);
    expect(tampered.status).toBe(403);
    expect((await tampered.json()).error.code).toBe("invalid_signature");
    const bare = await fetch(url.origin + url.pathname);
    expect(bare.status).toBe(401);
  });

  it("copies every storage object into the backup with its sha256 listed", async () => {
    const store = server.ctx.backups.store;
    const list = await store.get(backupObject.fileList(project.id, backup.id));
    const entries = (await new Response(asStream(list!.body)).text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(entries.map((e) => `${e.bucket}/${e.key}`)).toEqual(Object.keys(files).sort());
    for (const e of entries) {
      const original = files[`${e.bucket}/${e.key}`]!;
      expect(e.sha256).toBe(sha256(original));
      const copy = await store.get(backupObject.file(project.id, backup.id, e.n));
      expect(sha256(new Uint8Array(await new Response(asStream(copy!.body)).arrayBuffer()))).toBe(sha256(original));
    }
    const listBytes = new Uint8Array(await new Response(asStream((await store.get(backupObject.fileList(project.id, backup.id)))!.body)).arrayBuffer());
    expect(sha256(listBytes)).toBe(backup.manifest.files.list.sha256);
  });

  it("lists backups newest first without their manifests", async () => {
    const res = await api("GET", "/backups");
    expect(res.status).toBe(200);
    expect(res.body.items[0]).toMatchObject({ id: backup.id, status: "verified" });
    expect(res.body.items[0].manifest).toBeUndefined();
  });

  it("deletes a backup with its objects", async () => {
    const dir = join(server.ctx.config.dataDir, "backups", project.id, backupBucket(backup.id));
    expect(existsSync(dir)).toBe(true);
    const res = await api("DELETE", `/backups/${backup.id}`);
    expect(res.status).toBe(204);
    expect(existsSync(dir)).toBe(false);
    expect((await api("GET", `/backups/${backup.id}`)).status).toBe(404);
    const [row] = await server.ctx.sql`select count(*)::int as n from backups where id = ${backup.id}`;
    expect(row!.n).toBe(0);
  });
});

describe("errors", () => {
  it("answers 404 for an unknown project or backup and for a malformed backup id", async () => {
    expect((await server.fetch(`/admin/api/projects/zzzzzzzzzz/backups`, { method: "POST", headers: auth })).status).toBe(404);
    expect((await api("GET", "/backups/00000000-0000-0000-0000-000000000000")).status).toBe(404);
    expect((await api("GET", "/backups/not-a-uuid")).status).toBe(404);
    expect((await api("DELETE", "/backups/not-a-uuid")).status).toBe(404);
  });

  it("needs admin credentials", async () => {
    expect((await server.fetch(`/admin/api/projects/${project.id}/backups`, { method: "POST" })).status).toBe(401);
  });
});

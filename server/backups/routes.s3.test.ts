// Backups with the s3 driver (s3rver): the dump's parts, the files and the manifest go to the backup
// bucket, a verified backup restores into a new project with its files, and deleting it empties its prefix.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import postgres from "postgres";
import { adminHeaders, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret } from "../test/harness";
import { S3RVER_CREDENTIALS, startS3rver } from "../test/s3rver";

let s3: Awaited<ReturnType<typeof startS3rver>>;
let raw: S3Client;
let server: TestServer;
let auth: Record<string, string>;
let project: any;
const prefix = `t${randomBytes(3).toString("hex")}-`;
const bytes = randomBytes(200_000);

beforeAll(async () => {
  s3 = await startS3rver();
  raw = new S3Client({ endpoint: s3.endpoint, region: "us-east-1", forcePathStyle: true, credentials: S3RVER_CREDENTIALS });
  server = await startTestServer({
    ATLASHUB_STORAGE: "s3",
    ATLASHUB_S3_ENDPOINT: s3.endpoint,
    ATLASHUB_S3_FORCE_PATH_STYLE: "true",
    ATLASHUB_S3_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    ATLASHUB_S3_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    ATLASHUB_S3_BUCKET_PREFIX: prefix,
    ATLASHUB_BACKUP_PART_BYTES: "65536",
  });
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "backup-s3");
  const owner = postgresOf(project.credentials.owner.connection_string);
  await owner`create table t (id int primary key, b bytea)`;
  await owner`insert into t select g, decode(md5(g::text) || md5((g * 7)::text), 'hex') from generate_series(1, 5000) g`;
  await owner.end();
  const put = await server.fetch(`/admin/api/projects/${project.id}/storage/buckets/uploads/objects/blob.bin`, {
    method: "PUT",
    headers: { ...auth, "content-type": "application/octet-stream" },
    body: bytes,
  });
  expect(put.status).toBe(200);
});
afterAll(async () => {
  await server.stop();
  await s3.close();
});

function postgresOf(dsn: string) {
  return postgres(dsn, { max: 1, onnotice: () => {} });
}

async function keysUnder(Prefix: string) {
  const page = await raw.send(new ListObjectsV2Command({ Bucket: `${prefix}backups`, Prefix }));
  return (page.Contents ?? []).map((o) => o.Key!).sort();
}

describe("backups on S3", () => {
  let backup: any;

  it("writes parts, files, list and manifest into the backup bucket and verifies the backup", async () => {
    const res = await server.fetch(`/admin/api/projects/${project.id}/backups`, { method: "POST", headers: auth });
    expect(res.status).toBe(202);
    const { id } = await res.json();
    await server.ctx.backups.settled(id);
    backup = await (await server.fetch(`/admin/api/projects/${project.id}/backups/${id}`, { headers: auth })).json();
    expect({ status: backup.status, failure: backup.failure_reason, verify: backup.verify_error }).toEqual({ status: "verified", failure: null, verify: null });
    const keys = await keysUnder(`${project.id}/b${id.replaceAll("-", "")}/`);
    const parts = keys.filter((k) => k.includes("/dump/"));
    expect(parts.length).toBe(backup.manifest.dump.parts.length);
    expect(parts.length).toBeGreaterThan(1);
    expect(keys.filter((k) => !k.includes("/dump/")).map((k) => k.split("/").slice(2).join("/"))).toEqual(["files.ndjson", "files/000000000", "manifest.json"]);
  }, 60_000);

  it("streams the dump back with the manifest's sha256", async () => {
    const res = await server.fetch(`/admin/api/projects/${project.id}/backups/${backup.id}/download`, { headers: auth });
    const got = new Uint8Array(await res.arrayBuffer());
    expect(createHash("sha256").update(got).digest("hex")).toBe(backup.manifest.dump.sha256);
  });

  it("restores database and files into a new project", async () => {
    const res = await server.fetch(
      `/admin/api/projects/${project.id}/backups/${backup.id}/restore`,
      jsonRequest("POST", { mode: "new_project", confirm: "backup-s3", name: "backup-s3-copy" }, auth),
    );
    expect(res.status).toBe(202);
    const started = await res.json();
    for (const c of Object.values(started.project.credentials) as { password: string }[]) registerSecret(c.password);
    await server.ctx.backups.settled(started.id);
    const restore = await (await server.fetch(`/admin/api/projects/${started.project.id}/restores/${started.id}`, { headers: auth })).json();
    expect(restore).toMatchObject({ status: "finished", files_restored: 1 });
    const file = await server.fetch(`/admin/api/projects/${started.project.id}/storage/buckets/uploads/objects/blob.bin`, { headers: auth });
    expect(Buffer.from(await file.arrayBuffer()).equals(bytes)).toBe(true);
  }, 60_000);

  it("deletes every key of a deleted backup", async () => {
    const res = await server.fetch(`/admin/api/projects/${project.id}/backups/${backup.id}`, { method: "DELETE", headers: auth });
    expect(res.status).toBe(204);
    expect(await keysUnder(`${project.id}/b${backup.id.replaceAll("-", "")}/`)).toEqual([]);
  });
});

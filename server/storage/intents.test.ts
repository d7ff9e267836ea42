// Bytes and rows stay in step when the transaction that records an upload or a delete fails after
// the bytes changed (a lost commit, a failing step after the rename), and after a crash there: the
// intent written first is settled — the row follows the bytes.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { adminHeaders, createTestProject, startTestServer, type TestServer } from "../test/server";
import { deleteObject, storeObject } from "./service";
import { settleLeftIntents } from "./intents";

let server: TestServer;
let project: { id: string };
let storageRoot: string;

beforeAll(async () => {
  server = await startTestServer();
  project = await createTestProject(server, await adminHeaders(server), "storage-intents");
  storageRoot = join(server.ctx.config.dataDir, "storage");
});
afterAll(() => server.stop());

const at = (key: string) => ({ project: project.id, bucket: "uploads", key });
const bodyOf = (text: string) => new ReadableStream<Uint8Array>({ start: (c) => (c.enqueue(new TextEncoder().encode(text)), c.close()) });
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const upload = { maxBytes: 1000, contentType: "text/plain", uploadedBy: null };
const failingStep = async () => {
  throw new Error("the step after the rename failed");
};
const rowOf = async (key: string) =>
  (await server.ctx.sql`select size, sha256, file_version from storage_objects where project_id = ${project.id} and bucket = 'uploads' and key = ${key}`)[0];
const intents = async () => (await server.ctx.sql`select kind, key from storage_intents where project_id = ${project.id}`).map((r) => `${r.kind} ${r.key}`);
const ageIntents = () => server.ctx.sql`update storage_intents set created_at = now() - interval '2 minutes' where project_id = ${project.id}`;

describe("an upload whose transaction fails after its bytes became visible", () => {
  it("is recorded anyway: the row describes the bytes the key holds, and no intent is left", async () => {
    await storeObject(server.ctx, at("fails/after-rename.txt"), bodyOf("old"), upload);
    await expect(storeObject(server.ctx, at("fails/after-rename.txt"), bodyOf("new bytes"), upload, failingStep)).rejects.toThrow("failed");
    const head = await server.ctx.storage.head(at("fails/after-rename.txt"));
    expect(await rowOf("fails/after-rename.txt")).toEqual({ size: "9", sha256: sha256("new bytes"), file_version: head!.version! });
    expect(await intents()).toEqual([]);
  });
});

describe("a delete whose transaction fails after its bytes went", () => {
  it("is finished anyway: no row is left without its bytes, and no intent", async () => {
    await storeObject(server.ctx, at("fails/delete.txt"), bodyOf("doomed"), upload);
    await expect(deleteObject(server.ctx, at("fails/delete.txt"), failingStep)).rejects.toThrow("failed");
    expect(await rowOf("fails/delete.txt")).toBeUndefined();
    expect(existsSync(join(storageRoot, project.id, "uploads", "fails", "delete.txt"))).toBe(false);
    expect(await intents()).toEqual([]);
  });
});

describe("intents a crash left", () => {
  it("record an upload whose rename happened before the crash, and drop one whose never did", async () => {
    const staged = await server.ctx.storage.put(at("crash/renamed.txt"), bodyOf("made it"), { maxBytes: 100 });
    await staged.commit(); // the process died after this rename, before its commit
    await server.ctx.sql`
      insert into storage_intents (project_id, bucket, key, kind, file_version, size, content_type, sha256)
      values (${project.id}, 'uploads', 'crash/renamed.txt', 'put', ${staged.version!}, 7, 'text/plain', ${sha256("made it")}),
             (${project.id}, 'uploads', 'crash/never.txt', 'put', '1-2-3', 1, 'text/plain', ${sha256("x")})`;
    await ageIntents();
    expect(await settleLeftIntents(server.ctx)).toBe(2);
    expect(await rowOf("crash/renamed.txt")).toEqual({ size: "7", sha256: sha256("made it"), file_version: staged.version! });
    expect(await rowOf("crash/never.txt")).toBeUndefined();
    expect(await intents()).toEqual([]);
  });

  it("finish a delete whose bytes went before the crash, and keep an object uploaded again since", async () => {
    await storeObject(server.ctx, at("crash/deleted.txt"), bodyOf("gone"), upload);
    await storeObject(server.ctx, at("crash/replaced.txt"), bodyOf("first"), upload);
    await server.ctx.sql`
      insert into storage_intents (project_id, bucket, key, kind, row_updated_at)
      select project_id, bucket, key, 'delete', updated_at from storage_objects
      where project_id = ${project.id} and key in ('crash/deleted.txt', 'crash/replaced.txt')`;
    rmSync(join(storageRoot, project.id, "uploads", "crash", "deleted.txt")); // the process died after this
    await storeObject(server.ctx, at("crash/replaced.txt"), bodyOf("second"), upload); // a newer upload, before the settling
    await ageIntents();
    expect(await settleLeftIntents(server.ctx)).toBe(2);
    expect(await rowOf("crash/deleted.txt")).toBeUndefined();
    expect(await rowOf("crash/replaced.txt")).toMatchObject({ sha256: sha256("second") });
    expect(await intents()).toEqual([]);
  });

  it("are left alone while young: their step may still be committing", async () => {
    await server.ctx.sql`
      insert into storage_intents (project_id, bucket, key, kind, file_version, size, content_type)
      values (${project.id}, 'uploads', 'young.txt', 'put', '1-2-3', 1, 'text/plain')`;
    expect(await settleLeftIntents(server.ctx)).toBe(0);
    expect(await intents()).toEqual(["put young.txt"]);
    await server.ctx.sql`delete from storage_intents where project_id = ${project.id}`;
  });
});

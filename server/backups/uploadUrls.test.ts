import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { tempDir } from "../test/harness";
import { pgDumpFile, superuserTo } from "../test/backups";
import { createUploadUrl } from "./uploadUrls";

let server: TestServer;
let auth: Record<string, string>;
let project: any;
let dumpFile: string;

const clients = clientTracker();
let owner: ReturnType<typeof clients.connect>;

beforeAll(async () => {
  server = await startTestServer({ ATLASHUB_BACKUP_VERIFY: "false" });
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "signed-uploads");
  owner = clients.connect(project.credentials.owner.connection_string);
  await owner`create table people (id int primary key, name text not null)`;
  // A dump made elsewhere, of a database of the cluster's superuser.
  const su = clients.connect(process.env.ATLASHUB_TEST_DATABASE_URL!);
  const source = `upload_url_src_${Date.now()}`;
  await su.unsafe(`create database ${source}`);
  const inside = clients.connect(superuserTo(source));
  await inside.unsafe(`create table things (id serial primary key, label text); insert into things (label) select 't' || g from generate_series(1, 50) g;`);
  dumpFile = join(tempDir("upload-url"), "things.dump");
  await pgDumpFile(server, source, dumpFile, "custom");
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

async function signed(path: string, body: unknown = {}) {
  const res = await server.fetch(`/admin/api/projects/${project.id}${path}`, jsonRequest("POST", body, auth));
  return { status: res.status, body: (await res.json()) as any };
}

/** A PUT to a signed URL with no credentials but the URL. */
async function put(url: string, body: BodyInit, headers: Record<string, string> = {}) {
  const res = await fetch(url, { method: "PUT", body, headers });
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
}

/** The URL with one query parameter set to another value (or removed when undefined). */
function withParam(url: string, name: string, value: string | undefined) {
  const u = new URL(url);
  if (value === undefined) u.searchParams.delete(name);
  else u.searchParams.set(name, value);
  return u.toString();
}

const peopleCount = async () => (await owner`select count(*)::int as n from people`)[0]!.n as number;

describe("POST /admin/api/projects/:id/backups/upload-url", () => {
  it("hands out a PUT URL that takes a pg_dump file as a backup without the admin's session, once", async () => {
    const res = await signed("/backups/upload-url", { expires_in: 300 });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ url: expect.stringMatching(/\/backups\/upload\?exp=\d+&max=\d+&nonce=[0-9a-f-]{36}&sig=[\w-]{43}$/), method: "PUT", expires_at: expect.any(String), max_bytes: server.ctx.config.importMaxBytes });
    expect(new Date(res.body.expires_at).getTime() - Date.now()).toBeGreaterThan(290_000);

    const up = await put(res.body.url, Bun.file(dumpFile), { "content-type": "application/octet-stream" });
    expect(up.status).toBe(201);
    expect(up.body).toMatchObject({ status: "completed", trigger: "upload", created_by: expect.stringContaining("(token tests)") });
    expect(up.body.manifest.database.name).toMatch(/^upload_url_src_/);

    const again = await put(res.body.url, Bun.file(dumpFile));
    expect(again.status).toBe(403);
    expect(again.body.error.code).toBe("signed_url_used");

    const nonce = new URL(res.body.url).searchParams.get("nonce");
    const entries = await server.ctx.sql`
      select action, actor_type, actor_label, details from audit_log where details->>'signed_url' = ${nonce} order by id`;
    expect(entries.map((e) => [e.action, e.actor_type])).toEqual([
      ["backup.upload_url", "token"],
      ["backup.upload_url.used", "anonymous"],
      ["backup.upload", "anonymous"],
    ]);
    expect(entries[1]!.actor_label).toMatch(/^signed URL of .*\(token tests\)$/);
    expect(entries[2]!.actor_label).toMatch(/^signed URL of .*\(token tests\)$/);
    expect(entries[2]!.details.backup).toBe(up.body.id);
  }, 60_000);

  it("refuses an expiry past 24 hours (400) and a size past ATLASHUB_IMPORT_MAX_BYTES (422)", async () => {
    expect((await signed("/backups/upload-url", { expires_in: 86_401 })).status).toBe(400);
    expect((await signed("/backups/upload-url", { max_bytes: server.ctx.config.importMaxBytes + 1 })).body.error.code).toBe("unprocessable");
    expect((await signed("/backups/upload-url", { unknown: 1 })).status).toBe(400);
  });

  it("answers 404 for an unknown project and 401 without credentials", async () => {
    const res = await server.fetch(`/admin/api/projects/zzzzzzzzzz/backups/upload-url`, jsonRequest("POST", {}, auth));
    expect(res.status).toBe(404);
    expect((await server.fetch(`/admin/api/projects/${project.id}/backups/upload-url`, jsonRequest("POST", {}))).status).toBe(401);
  });
});

describe("POST /admin/api/projects/:id/tables/:table/import-url", () => {
  it("hands out a PUT URL that imports a CSV with the options it was signed for", async () => {
    await owner`insert into people values (1, 'Old')`;
    const res = await signed("/tables/people/import-url", { mode: "upsert", mapping: { Key: "id", Name: "name" } });
    expect(res.status).toBe(201);
    const url: string = res.body.url;
    expect(url).toContain("/tables/people/import?mode=upsert&mapping=");
    expect(res.body.method).toBe("PUT");
    const up = await put(url, "Key,Name\n1,Ada\n2,Grace\n", { "content-type": "text/csv" });
    expect(up.status).toBe(200);
    expect(up.body).toEqual({ dry_run: false, mode: "upsert", rows: 2, inserted: 1, updated: 1, errors: [] });
    expect(await owner`select id, name from people order by id`).toEqual([
      { id: 1, name: "Ada" },
      { id: 2, name: "Grace" },
    ]);
    expect((await put(url, "Key,Name\n3,Alan\n")).body.error.code).toBe("signed_url_used");
    const [use] = await server.ctx.sql`select actor_type, details from audit_log where action = 'project.table.import' and details->>'signed_url' = ${new URL(url).searchParams.get("nonce")}`;
    expect(use).toMatchObject({ actor_type: "anonymous", details: { table: "people", mode: "upsert", rows: 2 } });
  });

  it("refuses options the import itself refuses (400) and an unknown project (404)", async () => {
    expect((await signed("/tables/people/import-url", { format: "xml" })).status).toBe(400);
    expect((await signed("/tables/people/import-url", { encoding: "ebcdic" })).status).toBe(400);
    expect((await server.fetch(`/admin/api/projects/zzzzzzzzzz/tables/people/import-url`, jsonRequest("POST", {}, auth))).status).toBe(404);
  });
});

describe("PUT to a signed upload URL", () => {
  it("refuses a URL whose signature, expiry, size limit, nonce, options, table or project were changed with 403, spending nothing", async () => {
    const { body } = await signed("/tables/people/import-url", { mode: "insert", max_bytes: 1000 });
    const url: string = body.url;
    const sig = new URL(url).searchParams.get("sig")!;
    const other = await createTestProject(server, auth, "signed-other");
    const tampered = [
      withParam(url, "sig", (sig[0] === "A" ? "B" : "A") + sig.slice(1)),
      withParam(url, "sig", undefined),
      withParam(url, "exp", String(Number(new URL(url).searchParams.get("exp")) + 3600)),
      withParam(url, "max", "100000000"),
      withParam(url, "nonce", crypto.randomUUID()),
      withParam(url, "mode", "upsert"),
      withParam(url, "mode", undefined),
      withParam(url, "dry_run", "true"),
      url.replace("/tables/people/", "/tables/log/"),
      url.replace(project.id, other.id),
    ];
    for (const t of tampered) {
      const res = await put(t, "id,name\n5,Eve\n");
      // Without a sig the request is an admin one: 401 without credentials.
      expect([t, res.status, res.body.error.code]).toEqual([t, t === tampered[1] ? 401 : 403, t === tampered[1] ? "unauthorized" : "invalid_signature"]);
    }
    // The genuine URL is still unused.
    expect((await put(url, "id,name\n5,Eve\n")).status).toBe(200);
  });

  it("records each URL's use in the audit log when it is spent, whatever comes of the upload (a failed import, a dry run, an unknown table), and never its signature", async () => {
    const uses = async (url: string) => {
      const nonce = new URL(url).searchParams.get("nonce");
      return server.ctx.sql`select action, actor_type, actor_label, details from audit_log where details->>'signed_url' = ${nonce} order by id`;
    };
    const failing = (await signed("/tables/people/import-url", {})).body.url as string;
    expect((await put(failing, "id,name\nnot a number,x\n")).status).toBe(422);
    const dry = (await signed("/tables/people/import-url", { dry_run: true })).body.url as string;
    expect((await put(dry, "id,name\n900,x\n")).status).toBe(200);
    const missing = (await signed("/tables/nosuch/import-url", {})).body.url as string;
    expect((await put(missing, "id\n1\n")).status).toBe(400);
    for (const [url, table] of [[failing, "people"], [dry, "people"], [missing, "nosuch"]] as const) {
      const entries = await uses(url);
      expect(entries.map((e) => [e.action, e.actor_type])).toEqual([
        ["project.table.import_url", "token"],
        ["project.table.import_url.used", "anonymous"],
      ]);
      expect(entries[1]!.actor_label).toMatch(/^signed URL of .*\(token tests\)$/);
      expect(entries[1]!.details).toEqual({ signed_url: new URL(url).searchParams.get("nonce"), table });
      expect(JSON.stringify(entries)).not.toContain(new URL(url).searchParams.get("sig")!);
    }
    // A refused signature spends nothing and records no use.
    const unused = (await signed("/tables/people/import-url", {})).body.url as string;
    expect((await put(withParam(unused, "mode", "upsert"), "id,name\n901,x\n")).status).toBe(403);
    expect((await uses(unused)).map((e) => e.action)).toEqual(["project.table.import_url"]);
  });

  it("lets one of several PUTs racing with the same URL through; the others are 403 signed_url_used", async () => {
    const { body } = await signed("/tables/people/import-url", {});
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => put(body.url, `id,name\n${2000 + i},racer\n`)));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 403, 403, 403, 403, 403]);
    expect(answers.filter((a) => a.status === 403).every((a) => a.body.error.code === "signed_url_used")).toBe(true);
    expect((await owner`select count(*)::int as n from people where name = 'racer'`)[0]!.n).toBe(1);
  });

  it("refuses an expired URL with 403 signature_expired", async () => {
    const url = await createUploadUrl(server.ctx, server.url, { purpose: "backup_upload", projectId: project.id, expiresIn: 60, createdBy: null }, async () => {}, Date.now() - 3600_000);
    const res = await put(url.url, Bun.file(dumpFile));
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("signature_expired");
  });

  it("refuses a body past the URL's size limit with 413: at once by its Content-Length (the URL stays unused), or once that many bytes have come", async () => {
    const { body } = await signed("/tables/people/import-url", { max_bytes: 64 });
    const big = "id,name\n" + Array.from({ length: 20 }, (_, i) => `${100 + i},someone\n`).join("");
    const declared = await put(body.url, big);
    expect(declared.status).toBe(413);
    expect(declared.body.error).toMatchObject({ code: "payload_too_large", details: { limit: 64 } });
    const before = await peopleCount();
    // Streamed without a Content-Length: refused when the 65th byte comes, nothing written.
    const { body: second } = await signed("/tables/people/import-url", { max_bytes: 64 });
    const chunks = [big.slice(0, 40), big.slice(40)];
    const stream = new ReadableStream<Uint8Array>({
      pull(ctl) {
        const next = chunks.shift();
        if (next === undefined) ctl.close();
        else ctl.enqueue(new TextEncoder().encode(next));
      },
    });
    const streamed = await put(second.url, stream);
    expect(streamed.status).toBe(413);
    expect(await peopleCount()).toBe(before);
    // The first URL was not spent by its refused Content-Length.
    expect((await put(body.url, "id,name\n7,Zoe\n")).status).toBe(200);
  });
});

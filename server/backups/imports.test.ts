import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { waitFor } from "../test/harness";

let server: TestServer;
let auth: Record<string, string>;
let project: any;
const clients = clientTracker();
let owner: ReturnType<typeof clients.connect>;

beforeAll(async () => {
  server = await startTestServer();
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "import-progress");
  owner = clients.connect(project.credentials.owner.connection_string);
  await owner`create table big (id int primary key, label text not null)`;
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

async function getImport(id: string) {
  const res = await server.fetch(`/admin/api/projects/${project.id}/imports/${id}`, { headers: auth });
  return { status: res.status, body: (await res.json()) as any };
}

function importRequest(table: string, body: BodyInit, query = "", headers: Record<string, string> = {}) {
  return server.fetch(`/admin/api/projects/${project.id}/tables/${table}/import${query}`, { method: "POST", headers: { ...auth, "content-type": "text/csv", ...headers }, body });
}

const rowsCsv = (from: number, to: number) => {
  let text = "";
  for (let i = from; i <= to; i++) text += `${i},row number ${i} with some padding to make it longer\n`;
  return text;
};

describe("GET /admin/api/projects/:id/imports/:import", () => {
  it("shows an import while it runs (bytes and rows received so far), then its result", async () => {
    const id = crypto.randomUUID();
    const encoder = new TextEncoder();
    const first = encoder.encode("id,label\n" + rowsCsv(1, 20_000));
    const second = encoder.encode(rowsCsv(20_001, 40_000));
    // The file's second half is held back until the test has seen the first half arrive.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(ctl) {
        if (sent === 0) ctl.enqueue(first);
        else if (sent === 1) {
          await held;
          ctl.enqueue(second);
        } else ctl.close();
        sent++;
      },
    });
    const pending = importRequest("big", body, "", { "x-import-id": id });

    const running = await waitFor("the first half received", async () => {
      const { status, body } = await getImport(id);
      return status === 200 && body.rows >= 19_000 ? body : undefined;
    });
    expect(running).toMatchObject({ id, project_id: project.id, table: "big", status: "running", phase: "receiving", result: null, error: null, finished_at: null });
    expect(running.bytes).toBeGreaterThanOrEqual(first.byteLength - 65_536);
    expect(running.bytes).toBeLessThanOrEqual(first.byteLength);
    expect(running.options).toMatchObject({ format: "csv", mode: "insert", dry_run: false });
    expect(running.created_by).toContain("(token tests)");
    // The table has nothing yet: all or nothing.
    expect((await owner`select count(*)::int as n from big`)[0]!.n).toBe(0);

    release();
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.headers.get("x-import-id")).toBe(id);
    const result = await res.json();
    expect(result).toEqual({ dry_run: false, mode: "insert", rows: 40_000, inserted: 40_000, updated: 0, errors: [] });

    const done = await getImport(id);
    expect(done.body).toMatchObject({ status: "succeeded", phase: null, rows: 40_000, bytes: first.byteLength + second.byteLength, result, error: null });
    expect(done.body.finished_at).not.toBeNull();
  }, 60_000);

  it("keeps a failed import's error as the API answered it, and a dry run's result", async () => {
    const failing = await importRequest("big", "id,label\n1,duplicate of an imported row\n");
    expect(failing.status).toBe(422);
    const failedId = failing.headers.get("x-import-id")!;
    expect(failedId).toMatch(/^[0-9a-f-]{36}$/);
    const failed = await getImport(failedId);
    expect(failed.body).toMatchObject({ status: "failed", rows: 1, result: null, error: { code: "import_failed", details: { rows: 1, errors: [{ row: 1, line: 2 }] } } });

    const dry = await importRequest("big", "id,label\n50001,new\n50002,\n", "?dry_run=true");
    expect(dry.status).toBe(200);
    const tracked = await getImport(dry.headers.get("x-import-id")!);
    expect(tracked.body).toMatchObject({ status: "succeeded", options: { dry_run: true }, result: { dry_run: true, rows: 2, inserted: 0, errors: [{ row: 2, line: 3 }] } });
  });

  it("takes the client's X-Import-Id once (409 import_id_taken after), 400 when it is not a UUID", async () => {
    const id = crypto.randomUUID();
    expect((await importRequest("big", "id,label\n60001,a\n", "", { "x-import-id": id })).status).toBe(200);
    const again = await importRequest("big", "id,label\n60002,b\n", "", { "x-import-id": id });
    expect(again.status).toBe(409);
    expect(((await again.json()) as any).error.code).toBe("import_id_taken");
    expect((await owner`select count(*)::int as n from big where id = 60002`)[0]!.n).toBe(0);
    expect((await importRequest("big", "id,label\n60003,c\n", "", { "x-import-id": "not-a-uuid" })).status).toBe(400);
  });

  it("follows an import sent to a signed URL by the import_id its URL was given", async () => {
    const issued = await server.fetch(`/admin/api/projects/${project.id}/tables/big/import-url`, jsonRequest("POST", { mode: "upsert" }, auth));
    const { url, import_id } = (await issued.json()) as any;
    expect(import_id).toMatch(/^[0-9a-f-]{36}$/);
    const res = await fetch(url, { method: "PUT", body: "id,label\n1,changed\n70001,new\n" });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-import-id")).toBe(import_id);
    expect((await getImport(import_id)).body).toMatchObject({ status: "succeeded", options: { mode: "upsert" }, result: { inserted: 1, updated: 1 }, created_by: expect.stringContaining("(token tests)") });
  });

  it("shows an import whose process stopped answering as interrupted", async () => {
    const id = crypto.randomUUID();
    await server.ctx.sql`
      insert into table_imports (id, project_id, table_name, options, status, updated_at)
      values (${id}, ${project.id}, 'big', '{}', 'running', now() - interval '1 minute')`;
    expect((await getImport(id)).body.status).toBe("interrupted");
  });

  it("answers 404 for an unknown import or one of another project", async () => {
    expect((await getImport(crypto.randomUUID())).status).toBe(404);
    expect((await getImport("nope")).status).toBe(404);
    const other = await createTestProject(server, auth, "import-progress-other");
    const [mine] = await server.ctx.sql`select id from table_imports where project_id = ${project.id} limit 1`;
    expect((await server.fetch(`/admin/api/projects/${other.id}/imports/${mine!.id}`, { headers: auth })).status).toBe(404);
  });
});

describe("GET /admin/api/projects/:id/imports", () => {
  it("lists the project's imports, newest first", async () => {
    const res = await server.fetch(`/admin/api/projects/${project.id}/imports?limit=3`, { headers: auth });
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body).toMatchObject({ limit: 3, offset: 0 });
    expect(body.items).toHaveLength(3);
    const started = body.items.map((i: any) => new Date(i.started_at).getTime());
    expect([...started].sort((a, b) => b - a)).toEqual(started);
  });

  it("keeps a project's newest 100 finished imports", async () => {
    await server.ctx.sql`
      insert into table_imports (id, project_id, table_name, options, status, started_at, finished_at)
      select gen_random_uuid(), ${project.id}, 'big', '{}', 'succeeded', now() - interval '1 day' - g * interval '1 second', now() - interval '1 day'
      from generate_series(1, 150) g`;
    expect((await importRequest("big", "id,label\n80001,a\n")).status).toBe(200);
    const [{ n }] = (await server.ctx.sql`select count(*)::int as n from table_imports where project_id = ${project.id} and status <> 'running'`) as any;
    expect(n).toBe(100);
  });
});

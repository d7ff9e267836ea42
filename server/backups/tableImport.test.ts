import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import postgres from "postgres";
import { adminHeaders, clientTracker, createTestProject, startTestServer, type TestServer } from "../test/server";
import { csvTracker, jsonArrayToLines, parseHeader } from "./importScan";

let server: TestServer;
let auth: Record<string, string>;
let project: any;
let owner: postgres.Sql;
const clients = clientTracker();

beforeAll(async () => {
  server = await startTestServer({ ATLASHUB_IMPORT_MAX_BYTES: String(200 * 1024 * 1024) });
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "import-into");
  owner = clients.connect(project.credentials.owner.connection_string);
  await owner`create table people (id int primary key, name text not null, email text unique, born date, score numeric(6,2) check (score >= 0), tags text[], meta jsonb, created timestamptz default '2020-01-01')`;
  await owner`create table log (id bigserial primary key, at timestamptz not null default now(), msg text)`;
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

async function importInto(table: string, body: BodyInit, query = "") {
  const res = await server.fetch(`/admin/api/projects/${project.id}/tables/${table}/import${query}`, { method: "POST", headers: { ...auth, "content-type": "text/csv" }, body });
  return { status: res.status, body: await res.json() };
}

const count = async (table: string) => (await owner.unsafe(`select count(*)::int as n from ${table}`))[0]!.n as number;

describe("POST /admin/api/projects/:id/tables/:table/import (CSV)", () => {
  it("inserts every row of a CSV whose header names the columns, in one go", async () => {
    const csv = 'id,name,email,born,score,tags,meta\n1,Ada,ada@x.io,1815-12-10,99.5,"{a,b}","{""k"": 1}"\n2,"Grace, H.",grace@x.io,,10,,\n';
    const res = await importInto("people", csv);
    expect(res).toEqual({ status: 200, body: { dry_run: false, mode: "insert", rows: 2, inserted: 2, updated: 0, errors: [] } });
    expect(await owner`select id, name, born::text, score::text, tags, meta, created::date::text from people order by id`).toEqual([
      { id: 1, name: "Ada", born: "1815-12-10", score: "99.50", tags: ["a", "b"], meta: { k: 1 }, created: "2020-01-01" },
      { id: 2, name: "Grace, H.", born: null, score: "10.00", tags: null, meta: null, created: "2020-01-01" },
    ]);
  });

  it("maps file columns to table columns, skips the ones mapped to null, and upserts on the primary key", async () => {
    const csv = "\ufeffKey,Full name,Ignored\n1,Ada Lovelace,x\n3,Alan,y\n";
    const mapping = encodeURIComponent(JSON.stringify({ Key: "id", "Full name": "name", Ignored: null }));
    const res = await importInto("people", csv, `?mode=upsert&mapping=${mapping}`);
    expect(res.body).toMatchObject({ rows: 2, inserted: 1, updated: 1, errors: [] });
    expect(await owner`select id, name, email from people order by id`).toEqual([
      { id: 1, name: "Ada Lovelace", email: "ada@x.io" },
      { id: 2, name: "Grace, H.", email: "grace@x.io" },
      { id: 3, name: "Alan", email: null },
    ]);
  });

  it("upserts on chosen unique columns", async () => {
    const res = await importInto("people", "id,name,email\n9,Grace Hopper,grace@x.io\n", "?mode=upsert&on_conflict=email");
    expect(res.body).toMatchObject({ inserted: 0, updated: 1 });
    expect((await owner`select id, name from people where email = 'grace@x.io'`)[0]).toEqual({ id: 9, name: "Grace Hopper" });
  });

  it("dry run: reports each failing row with its line (a quoted line break counted) and writes nothing", async () => {
    const before = await count("people");
    const csv = [
      "id,name,score,born",
      '10,"two\nlines",1,2000-01-01', // lines 2–3
      "11,ok,-5,2000-01-01", // line 4: check constraint
      "12,,1,2000-01-01", // line 5: unquoted empty is null: not null
      "13,ok,abc,2000-01-01", // line 6: not a number
      "14,ok,1,2000-02-30", // line 7: not a date
      "15,fine,1,2000-01-01",
    ].join("\n");
    const res = await importInto("people", csv, "?dry_run=true");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ dry_run: true, rows: 6, inserted: 0 });
    expect(res.body.errors.map((e: any) => [e.row, e.line])).toEqual([
      [2, 4],
      [3, 5],
      [4, 6],
      [5, 7],
    ]);
    expect(res.body.errors[0].message).toContain("people_score_check");
    expect(res.body.errors[1].message).toContain('null value in column "name"');
    expect(res.body.errors[2].message).toContain('invalid input syntax for type numeric: "abc"');
    expect(await count("people")).toBe(before);
  });

  it("is all or nothing: one bad row fails the import with 422 and no row is written", async () => {
    const before = await count("people");
    const res = await importInto("people", "id,name\n20,ok\n1,duplicate\n21,ok\n");
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("import_failed");
    expect(res.body.error.details.errors).toEqual([{ row: 2, line: 3, message: expect.stringContaining("people_pkey") }]);
    expect(await count("people")).toBe(before);
    expect((await owner`select count(*)::int as n from pg_class where relname like '_atlashub_import_%'`)[0]!.n).toBe(0);
  });

  it("answers 422 import_malformed with the line for a wrong column count, an unclosed quote or bad bytes", async () => {
    const extra = await importInto("people", "id,name\n30,a\n31,b,extra\n");
    expect(extra.status).toBe(422);
    expect(extra.body.error).toMatchObject({ code: "import_malformed", details: { line: 3 } });
    expect(extra.body.error.message).toContain("extra data after last expected column");
    const quote = await importInto("people", 'id,name\n30,"never closed\n');
    expect(quote.body.error.code).toBe("import_malformed");
    const bytes = await importInto("people", new Uint8Array([...Buffer.from("id,name\n30,"), 0xff, 0xfe, 0x0a]));
    expect(bytes.body.error).toMatchObject({ code: "import_malformed", details: { line: 2 } });
    const latin1 = await importInto("people", new Uint8Array([...Buffer.from("id,name\n40,Jos"), 0xe9, 0x0a]), "?encoding=latin1");
    expect(latin1.body).toMatchObject({ inserted: 1 });
    expect((await owner`select name from people where id = 40`)[0]!.name).toBe("José");
  });

  it("answers 400/422 for bad options and 404 for an unknown project", async () => {
    expect((await importInto("people", "id\n1\n", "?mode=merge")).status).toBe(400);
    expect((await importInto("people", "id\n1\n", "?mapping=notjson")).status).toBe(400);
    expect((await importInto("people", "x,y\n1,2\n")).body.error.code).toBe("unprocessable");
    expect((await importInto("nope", "id\n1\n")).body.error.code).toBe("unknown_table");
    expect((await importInto("log", "msg\nhi\n", "?mode=upsert&on_conflict=msg")).status).toBe(422);
    const res = await server.fetch(`/admin/api/projects/zzzzzzzzzz/tables/people/import`, { method: "POST", headers: auth, body: "id\n1\n" });
    expect(res.status).toBe(404);
  });
});

describe("POST …/import (NDJSON and JSON)", () => {
  it("imports NDJSON, blank lines skipped, absent keys left to their defaults", async () => {
    const ndjson = '{"msg": "a"}\n\n{"msg": "b", "at": "2024-05-01T00:00:00Z"}\n';
    const res = await importInto("log", ndjson, "?format=ndjson");
    expect(res.body).toMatchObject({ rows: 2, inserted: 2, errors: [] });
    expect(await owner`select msg, at is not null as has_at from log order by id`).toEqual([
      { msg: "a", has_at: true },
      { msg: "b", has_at: true },
    ]);
  });

  it("imports a pretty-printed JSON array with nested values into jsonb", async () => {
    const json = JSON.stringify([{ id: 50, name: "J", meta: { deep: [1, { x: "y\nz" }] } }, { id: 51, name: "K" }], null, 2);
    const res = await importInto("people", json, "?format=json");
    expect(res.body).toMatchObject({ rows: 2, inserted: 2 });
    expect((await owner`select meta from people where id = 50`)[0]!.meta).toEqual({ deep: [1, { x: "y\nz" }] });
  });

  it("reports documents that are not objects or not JSON, by line", async () => {
    const res = await importInto("log", '{"msg": "ok"}\n[1,2]\n{"msg": oops}\n', "?format=ndjson&dry_run=true");
    expect(res.body.errors).toEqual([
      { row: 2, line: 2, message: "a array, not an object" },
      { row: 3, line: 3, message: expect.stringContaining("not JSON") },
    ]);
    const bad = await importInto("log", '{"msg": "a"}', "?format=json");
    expect(bad.body.error.code).toBe("import_malformed");
  });
});

describe("a large CSV", () => {
  it("imports 1,000,000 rows streamed, in one transaction (memory: server/e2e/import-memory.test.ts)", async () => {
    await owner`create table big (id int primary key, name text, amount numeric)`;
    const res = await server.fetch(`/admin/api/projects/${project.id}/tables/big/import`, {
      method: "POST",
      headers: { ...auth, "content-type": "text/csv" },
      body: csvRows(1_000_000),
      duplex: "half",
    } as RequestInit);
    expect(await res.json()).toMatchObject({ rows: 1_000_000, inserted: 1_000_000, errors: [] });
    expect(await count("big")).toBe(1_000_000);
  }, 180_000);
});

/** A CSV of `rows` generated as it is read: nobody holds all of it. */
export function csvRows(rows: number) {
  let i = 0;
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i === 0) controller.enqueue(encoder.encode("id,name,amount\n"));
      if (i >= rows) return controller.close();
      let chunk = "";
      for (let k = 0; k < 5000 && i < rows; k++, i++) chunk += `${i},name ${i},${i % 1000}.25\n`;
      controller.enqueue(encoder.encode(chunk));
    },
  });
}

describe("import scanners", () => {
  it("parses a header with quotes, commas and a BOM", () => {
    expect(parseHeader('a,"b, c","d ""e""",f\r')).toEqual(["a", "b, c", 'd "e"', "f"]);
  });

  it("knows the line of each record after quoted line breaks", async () => {
    const tracker = csvTracker();
    const text = 'h1,h2\n1,"x\ny\nz"\n2,b\n3,"p\nq"\n4,d\n';
    await new Response(new Blob([text]).stream().pipeThrough(tracker.stream)).text();
    expect([1, 2, 3, 4].map(tracker.lineOf)).toEqual([2, 5, 6, 8]);
    expect(tracker.header()).toEqual(["h1", "h2"]);
  });

  it("turns a JSON array into one element per line", async () => {
    const out = await new Response(new Blob(['\ufeff [ {"a": "x,\\"]"},\n  [1, 2],\n 3 ] \n']).stream().pipeThrough(jsonArrayToLines())).text();
    expect(out.split("\n").map((l) => l.trim())).toEqual(['{"a": "x,\\"]"}', "[1, 2]", "3", ""]);
  });
});

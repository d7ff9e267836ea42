import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret } from "../test/harness";

let server: TestServer;
let key: string;
let otherKey: string;
const clients = clientTracker();

async function keyFor(auth: Record<string, string>, projectId: string, kind = "secret") {
  const res = await server.fetch(`/admin/api/projects/${projectId}/keys`, jsonRequest("POST", { name: "data", kind }, auth));
  const body = await res.json();
  registerSecret(body.key);
  return body.key as string;
}

beforeAll(async () => {
  server = await startTestServer();
  const auth = await adminHeaders(server);
  const p = await createTestProject(server, auth, "data-a");
  const owner = clients.connect(p.credentials.owner.connection_string);
  await owner`create table "Odd Items" (id serial primary key, "Label" text, qty int, tags text[], at timestamptz default '2026-01-01T00:00:00Z')`;
  await owner`insert into "Odd Items" ("Label", qty, tags) select 'item ' || g, g, array['t' || g] from generate_series(1, 30) g`;
  await owner`insert into "Odd Items" ("Label", qty) values (null, null)`;
  key = await keyFor(auth, p.id);
  const other = await createTestProject(server, auth, "data-b");
  otherKey = await keyFor(auth, other.id);
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

const get = async (path: string, headers: Record<string, string> = {}) => {
  const res = await server.fetch(`/v1/db${path}`, { headers: { "x-api-key": key, ...headers } });
  return { status: res.status, headers: res.headers, body: await res.json() };
};
const table = "/" + encodeURIComponent("Odd Items");

describe("GET /v1/db", () => {
  it("lists tables with columns, types and primary key", async () => {
    const { body } = await get("/tables");
    expect(body.items).toEqual([
      expect.objectContaining({ name: "Odd Items", kind: "table", primary_key: ["id"], columns: expect.arrayContaining([{ name: "Label", type: "text", nullable: true }]) }),
    ]);
  });

  it("reads rows with select, filters, order, limit and offset", async () => {
    const r = await get(`${table}?select=id,Label&qty=gte.10&qty=lt.20&order=qty.desc&limit=3&offset=1`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual([{ id: 18, Label: "item 18" }, { id: 17, Label: "item 17" }, { id: 16, Label: "item 16" }]);
    expect((await get(`${table}?select=id&Label=is.null`)).body).toEqual([{ id: 31 }]);
    expect((await get(`${table}?select=id&Label=in.(item 2,"item 3")&order=id`)).body).toEqual([{ id: 2 }, { id: 3 }]);
    expect((await get(`${table}?select=id&Label=like.item 2*&order=id&limit=2`)).body).toEqual([{ id: 2 }, { id: 20 }]);
    expect((await get(`${table}?select=tags,at&id=eq.1`)).body).toEqual([{ tags: ["t1"], at: "2026-01-01T00:00:00+00:00" }]);
  });

  it("answers Prefer: count=exact with Content-Range", async () => {
    const r = await get(`${table}?select=id&limit=10&offset=5`, { prefer: "count=exact" });
    expect(r.headers.get("content-range")).toBe("5-14/31");
    expect(r.body).toHaveLength(10);
  });

  it("defaults to 100 rows and caps at 1000", async () => {
    expect((await get(`${table}?select=id`)).body).toHaveLength(31);
    expect((await get(`${table}?limit=1001`)).status).toBe(400);
  });

  it("names what it does not know, with 400", async () => {
    expect((await get("/ghosts")).body.error).toMatchObject({ code: "unknown_table", details: { table: "ghosts" } });
    expect((await get(`${table}?nope=eq.1`)).body.error).toMatchObject({ code: "unknown_column", details: { column: "nope" } });
    expect((await get(`${table}?qty=approx.1`)).body.error.code).toBe("unknown_operator");
    expect((await get(`${table}?qty=eq.notanumber`)).status).toBe(400);
  });

  it("only shows a key its own project's data", async () => {
    const r = await get(table, { "x-api-key": otherKey });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe("unknown_table");
    expect((await get("/tables", { "x-api-key": otherKey })).body.items).toEqual([]);
  });

  it("needs a key", async () => {
    const res = await server.fetch(`/v1/db${table}`);
    expect(res.status).toBe(401);
  });
});

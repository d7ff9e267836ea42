import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import postgres from "postgres";
import { adminHeaders, clientTracker, createTestProject, startTestServer, type TestServer } from "../test/server";
import { inlineParameters } from "./tables";

let server: TestServer;
let auth: Record<string, string>;
let project: any;
let owner: postgres.Sql;
const clients = clientTracker();

beforeAll(async () => {
  server = await startTestServer();
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "export-src");
  owner = clients.connect(project.credentials.owner.connection_string);
  await owner`create table orders (id bigint primary key, customer text, total numeric(10,2), paid boolean, note text, data bytea, "odd ""name"", $1" int)`;
  await owner`insert into orders select g, 'c' || (g % 7), g * 1.25, g % 3 = 0, case when g = 5 then E'line one\nline "two", three' end, case when g = 1 then '\\x00ff'::bytea end, g from generate_series(1, 2500) g`;
  await owner`alter table orders enable row level security`;
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

const exportOf = (table: string, query = "") => server.fetch(`/admin/api/projects/${project.id}/tables/${table}/export${query}`, { headers: auth });

describe("GET /admin/api/projects/:id/tables/:table/export", () => {
  it("streams CSV with a header, quoting what needs it, every row in primary-key order", async () => {
    const res = await exportOf("orders");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(res.headers.get("content-disposition")).toBe('attachment; filename="orders.csv"');
    const text = await res.text();
    const lines = text.split("\n");
    expect(lines[0]).toBe('id,customer,total,paid,note,data,"odd ""name"", $1"');
    expect(lines[1]).toBe("1,c1,1.25,f,,\\x00ff,1");
    expect(text).toContain('5,c5,6.25,f,"line one\nline ""two"", three",,5');
    expect(text.trim().split("\n").length).toBe(2500 + 1 + 1); // the note of row 5 holds a line break
  });

  it("applies /v1/db filters and select, also inside COPY (values quoted by Postgres)", async () => {
    const res = await exportOf("orders", "?select=id,customer&customer=in.(c1,c2)&id=lt.20&paid=is.false&note=is.null");
    const text = await res.text();
    expect(text).toBe("id,customer\n1,c1\n2,c2\n8,c1\n16,c2\n");
    const quote = await exportOf("orders", `?select=id&customer=eq.${encodeURIComponent("c1' or '1'='1")}`);
    expect(await quote.text()).toBe("id\n");
  });

  it("streams JSON and NDJSON with the /v1/db value forms", async () => {
    const json = await (await exportOf("orders", "?format=json&id=lte.2")).json();
    expect(json).toEqual([
      { id: 1, customer: "c1", total: 1.25, paid: false, note: null, data: "AP8=", 'odd "name", $1': 1 },
      { id: 2, customer: "c2", total: 2.5, paid: false, note: null, data: null, 'odd "name", $1': 2 },
    ]);
    const all = await (await exportOf("orders", "?format=json")).json();
    expect(all.length).toBe(2500);
    const ndjson = await (await exportOf("orders", "?format=ndjson&select=id&id=gt.2497")).text();
    expect(ndjson).toBe('{"id":2498}\n{"id":2499}\n{"id":2500}\n');
    const none = await (await exportOf("orders", "?format=json&id=lt.0")).json();
    expect(none).toEqual([]);
  });

  it("answers 400 for an unknown table, column or format, never 500", async () => {
    expect((await (await exportOf("nope")).json()).error.code).toBe("unknown_table");
    expect((await (await exportOf("orders", "?select=nope")).json()).error.code).toBe("unknown_column");
    expect((await exportOf("orders", "?format=xml")).status).toBe(400);
    expect((await exportOf("orders", "?id=eq.notanumber")).status).toBe(400);
  });

  it("records the export in the audit log", async () => {
    const [row] = await server.ctx.sql`select details from audit_log where action = 'project.table.export' order by id desc limit 1`;
    expect(row!.details).toMatchObject({ table: "orders" });
  });
});

describe("inlineParameters", () => {
  it("replaces $n outside double-quoted identifiers only", () => {
    expect(inlineParameters(`select "a$1" from t where "x""$2" = $1 and b in ($2, $10)`, ["'A'", "'B'", "", "", "", "", "", "", "", "'J'"])).toBe(
      `select "a$1" from t where "x""$2" = 'A' and b in ('B', 'J')`,
    );
  });
});

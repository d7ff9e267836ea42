import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { appendToSuiteLog, registerSecret } from "../test/harness";
import { setLogSink } from "../platform/log";

let server: TestServer;
let key: string;
let otherKey: string;
let owner: ReturnType<typeof clients.connect>;
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
  owner = clients.connect(p.credentials.owner.connection_string);
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

  it("looks a row up by its primary key with the same answers as any read", async () => {
    expect((await get(`${table}?select=id,Label&id=eq.3`)).body).toEqual([{ id: 3, Label: "item 3" }]);
    for (const qs of ["id=eq.999", "id=eq.3&offset=1", "id=eq.3&limit=0", "id=eq.3&qty=eq.4"]) expect((await get(`${table}?${qs}`)).body).toEqual([]);
    expect((await get(`${table}?id=eq.3`, { prefer: "count=exact" })).headers.get("content-range")).toBe("0-0/1");
    expect((await get(`${table}?id=eq.999`, { prefer: "count=exact" })).headers.get("content-range")).toBe("*/0");
    expect((await get(`${table}?id=eq.x`)).body.error.code).toBe("invalid_input");
  });

  it("still limits a lookup by key on a table whose inheritance children repeat the key", async () => {
    await owner`create table parent (id int primary key, v text)`;
    await owner`create table child () inherits (parent)`;
    await owner`insert into parent values (1, 'p')`;
    await owner`insert into child values (1, 'c')`;
    const values = async (qs: string) => ((await get(`/parent?select=v&id=eq.1&${qs}`)).body as { v: string }[]).map((r) => r.v).sort();
    expect(await values("")).toEqual(["c", "p"]);
    expect(await values("limit=1")).toHaveLength(1);
    expect(await values("offset=1")).toHaveLength(1);
    expect(await values("offset=2")).toEqual([]);
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

  it("sees a table or column created a moment ago, without waiting for the schema cache", async () => {
    expect((await get("/tables")).status).toBe(200); // the cache is fresh now
    const auth = await adminHeaders(server);
    const list = await (await server.fetch("/admin/api/projects?limit=1000", { headers: auth })).json();
    const project = list.items.find((x: { name: string }) => x.name === "data-a");
    const creds = (await (await server.fetch(`/admin/api/projects/${project.id}/credentials/reveal`, { method: "POST", headers: auth })).json()).credentials;
    await clients.connect(creds.owner.connection_string)`create table fresh (id int, note text)`;
    expect(await get("/fresh?select=id,note")).toMatchObject({ status: 200, body: [] });
  });

  it("follows a column dropped or renamed a moment ago, without waiting for the schema cache", async () => {
    const auth = await adminHeaders(server);
    const list = await (await server.fetch("/admin/api/projects?limit=1000", { headers: auth })).json();
    const project = list.items.find((x: { name: string }) => x.name === "data-a");
    const creds = (await (await server.fetch(`/admin/api/projects/${project.id}/credentials/reveal`, { method: "POST", headers: auth })).json()).credentials;
    const owner = clients.connect(creds.owner.connection_string);
    await owner`create table shifting (id int primary key, old_name text, gone text)`;
    await owner`insert into shifting values (1, 'a', 'b')`;
    expect((await get("/shifting?select=id,old_name,gone")).body).toEqual([{ id: 1, old_name: "a", gone: "b" }]); // now cached
    await owner`alter table shifting rename column old_name to new_name`;
    await owner`alter table shifting drop column gone`;
    expect(await get("/shifting")).toMatchObject({ status: 200, body: [{ id: 1, new_name: "a" }] });
    expect((await get("/shifting?select=id,gone")).body.error).toMatchObject({ code: "unknown_column", details: { column: "gone" } });
    await owner`drop table shifting`;
    expect((await get("/shifting")).body.error).toMatchObject({ code: "unknown_table", details: { table: "shifting" } });
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

describe("writes to /v1/db", () => {
  const send = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await server.fetch(`/v1/db${path}`, body === undefined ? { method, headers: { "x-api-key": key, ...headers } } : jsonRequest(method, body, { "x-api-key": key, ...headers }));
    return { status: res.status, body: await res.json() };
  };
  const notes = "/notes";

  beforeAll(async () => {
    const auth = await adminHeaders(server);
    const p = await (await server.fetch("/admin/api/projects?limit=1000", { headers: auth })).json();
    const project = p.items.find((x: { name: string }) => x.name === "data-a");
    const creds = (await (await server.fetch(`/admin/api/projects/${project.id}/credentials/reveal`, { method: "POST", headers: auth })).json()).credentials;
    const owner = clients.connect(creds.owner.connection_string);
    await owner`create table notes (id int primary key, body text not null, n int check (n >= 0), meta jsonb)`;
  });

  it("inserts one row or many, returning the count or the rows", async () => {
    expect(await send("POST", notes, { id: 1, body: "one", meta: { a: 1 } })).toEqual({ status: 201, body: { count: 1 } });
    const many = await send("POST", notes, [{ id: 2, body: "two" }, { id: 3, body: "three", n: 3 }], { prefer: "return=representation" });
    expect(many).toEqual({ status: 201, body: [{ id: 2, body: "two", n: null, meta: null }, { id: 3, body: "three", n: 3, meta: null }] });
    expect((await get(`${notes}?id=eq.1`)).body).toEqual([{ id: 1, body: "one", n: null, meta: { a: 1 } }]);
  });

  it("upserts with Prefer: resolution=merge-duplicates, or skips with ignore-duplicates", async () => {
    const merged = await send("POST", `${notes}?on_conflict=id`, { id: 1, body: "uno" }, { prefer: "resolution=merge-duplicates,return=representation" });
    expect(merged.body).toEqual([{ id: 1, body: "uno", n: null, meta: { a: 1 } }]);
    const ignored = await send("POST", notes, { id: 1, body: "ignored" }, { prefer: "resolution=ignore-duplicates" });
    expect(ignored.body).toEqual({ count: 0 });
  });

  it("updates and deletes only with a filter (422 otherwise)", async () => {
    expect((await send("PATCH", notes, { body: "all" })).status).toBe(422);
    expect((await send("DELETE", notes)).body.error.code).toBe("filter_required");
    expect(await send("PATCH", `${notes}?id=eq.2`, { body: "deux" }, { prefer: "return=representation" })).toEqual({ status: 200, body: [{ id: 2, body: "deux", n: null, meta: null }] });
    expect(await send("DELETE", `${notes}?id=in.(2,3)`)).toEqual({ status: 200, body: { count: 2 } });
  });

  it("maps constraint errors to clear API errors", async () => {
    expect((await send("POST", notes, { id: 1, body: "dup" })).body.error).toMatchObject({ code: "unique_violation", details: { constraint: "notes_pkey" } });
    expect((await send("POST", notes, { id: 9 })).body.error).toMatchObject({ code: "not_null_violation", details: { column: "body" } });
    expect((await send("POST", notes, { id: 9, body: "x", n: -1 })).status).toBe(400);
    expect((await send("POST", notes, { id: "nine", body: "x" })).status).toBe(400);
    expect((await send("POST", notes, { id: 9, body: "x", nope: 1 })).body.error.code).toBe("unknown_column");
    expect((await send("POST", notes, [])).status).toBe(400);
    expect((await send("POST", notes, Array.from({ length: 1001 }, (_, i) => ({ id: 100 + i, body: "x" })))).status).toBe(400);
  });

  it("refuses writes with a publishable key", async () => {
    const auth = await adminHeaders(server);
    const p = await (await server.fetch("/admin/api/projects?limit=1000", { headers: auth })).json();
    const project = p.items.find((x: { name: string }) => x.name === "data-a");
    const pk = await keyFor(auth, project.id, "publishable");
    const res = await server.fetch(`/v1/db${notes}`, jsonRequest("POST", { id: 50, body: "x" }, { "x-api-key": pk }));
    expect(res.status).toBe(403);
    expect((await server.fetch(`/v1/db${notes}?id=eq.1`, { headers: { "x-api-key": pk } })).status).toBe(200);
  });
});

describe("what every /v1/db and /rest/v1 answer carries", () => {
  const origin = { origin: "https://app.example" };

  it("echoes the request id, sends nosniff and writes one access-log line without the query or the key", async () => {
    const lines: string[] = [];
    setLogSink((line) => {
      lines.push(line);
      appendToSuiteLog(line);
    });
    try {
      for (const [path, status] of [[`${table}?id=eq.1`, 200], [`${table}?nope=eq.1`, 400], ["/a/b", 404]] as const) {
        const res = await server.fetch(`/v1/db${path}`, { headers: { "x-api-key": key, "x-request-id": `env-${status}` } });
        expect(res.status).toBe(status);
        expect(res.headers.get("x-request-id")).toBe(`env-${status}`);
        expect(res.headers.get("x-content-type-options")).toBe("nosniff");
        expect(res.headers.get("access-control-allow-origin")).toBeNull();
      }
    } finally {
      setLogSink(appendToSuiteLog);
    }
    const logged = lines.filter((l) => l.includes('"env-')).map((l) => JSON.parse(l));
    expect(logged.map((l) => [l.method, l.path, l.status])).toEqual([["GET", "/v1/db/Odd%20Items", 200], ["GET", "/v1/db/Odd%20Items", 400], ["GET", "/v1/db/a/b", 404]]);
    expect(lines.join("\n")).not.toContain(key);
  });

  it("answers browsers with CORS headers, errors too, and preflights without a key", async () => {
    const ok = await server.fetch(`/v1/db${table}?id=eq.1`, { headers: { "x-api-key": key, ...origin } });
    expect(ok.headers.get("access-control-allow-origin")).toBe("*");
    expect(ok.headers.get("access-control-expose-headers")).toContain("Content-Range");
    const refused = await server.fetch(`/rest/v1/items`, { headers: origin });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("access-control-allow-origin")).toBe("*");
    const preflight = await server.fetch(`/v1/db${table}`, { method: "OPTIONS", headers: { ...origin, "access-control-request-method": "PATCH" } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-methods")).toContain("PATCH");
    expect(preflight.headers.get("access-control-allow-headers")).toContain("prefer");
    // Not a browser: OPTIONS is just another method, and needs a key like any.
    expect((await server.fetch(`/v1/db${table}`, { method: "OPTIONS" })).status).toBe(401);
  });

  it("answers 404 to other paths and methods once the key is checked, 401 before", async () => {
    for (const path of ["/v1/db", "/v1/db/a/b", "/rest/v1"]) expect((await server.fetch(path)).status).toBe(401);
    const put = await server.fetch(`/v1/db${table}`, jsonRequest("PUT", { id: 1 }, { "x-api-key": key }));
    expect(put.status).toBe(404);
    expect((await put.json()).error.code).toBe("route_not_found");
    const rest = await server.fetch("/rest/v1/a/b", { headers: { apikey: key } });
    expect(rest.status).toBe(404);
    expect(await rest.json()).toMatchObject({ code: "route_not_found", message: expect.any(String), hint: null });
  });

  it("answers HEAD like GET without a body", async () => {
    const res = await server.fetch(`/v1/db${table}?id=eq.1`, { method: "HEAD", headers: { "x-api-key": key } });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBeTruthy();
    expect(await res.text()).toBe("");
  });

  it("refuses a body past the limit sent without a length (chunked) with 413", async () => {
    const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 20) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const res = await server.fetch("/v1/db/notes", {
      method: "POST",
      headers: { "x-api-key": key, "content-type": "application/json", connection: "close" },
      body,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
    expect((await res.json()).error.code).toBe("payload_too_large");
  });
});

// /rest/v1 driven by the real clients from npm: an app written for Supabase, pointed at AtlasHub.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { PostgrestClient } from "@supabase/postgrest-js";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret } from "../test/harness";

let server: TestServer;
let supabase: SupabaseClient;
let readOnly: SupabaseClient;
let other: SupabaseClient;
let secretKey: string;
const clients = clientTracker();

async function keyFor(auth: Record<string, string>, projectId: string, kind: "secret" | "publishable") {
  const res = await server.fetch(`/admin/api/projects/${projectId}/keys`, jsonRequest("POST", { name: "supabase-js", kind }, auth));
  const { key } = (await res.json()) as { key: string };
  registerSecret(key);
  return key;
}
const connect = (key: string) => createClient(server.url, key, { auth: { persistSession: false, autoRefreshToken: false } });

beforeAll(async () => {
  server = await startTestServer();
  const auth = await adminHeaders(server);
  const p = await createTestProject(server, auth, "supabase-js-a");
  const owner = clients.connect(p.credentials.owner.connection_string);
  await owner`create table countries (id int primary key, name text not null, "Capital City" text, population int, continent text)`;
  await owner`create table cities (id serial primary key, country_id int not null references countries (id), name text unique not null)`;
  await owner`insert into countries values
    (1, 'France', 'Paris', 68, 'Europe'), (2, 'Japan', 'Tokyo', 125, 'Asia'), (3, 'Chile', 'Santiago', 19, 'America'),
    (4, 'Iceland', 'Reykjavík', null, 'Europe'), (5, 'Kenya', 'Nairobi', 54, 'Africa')`;
  secretKey = await keyFor(auth, p.id, "secret");
  supabase = connect(secretKey);
  readOnly = connect(await keyFor(auth, p.id, "publishable"));
  const b = await createTestProject(server, auth, "supabase-js-b");
  other = connect(await keyFor(auth, b.id, "secret"));
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

const names = (data: unknown) => (data as { name: string }[]).map((r) => r.name);

describe("supabase-js reads through /rest/v1", () => {
  it("selects all or some columns, including quoted mixed-case names", async () => {
    const all = await supabase.from("countries").select().order("id");
    expect(all).toMatchObject({ error: null, status: 200 });
    expect(all.data![0]).toEqual({ id: 1, name: "France", "Capital City": "Paris", population: 68, continent: "Europe" });
    const some = await supabase.from("countries").select('name, "Capital City"').eq("id", 2);
    expect(some.data).toEqual([{ name: "Japan", "Capital City": "Tokyo" }]);
  });

  it("filters with eq, neq, gt, gte, lt, lte, like, ilike, in, is and not", async () => {
    const q = () => supabase.from("countries").select("name").order("id");
    expect(names((await q().eq("continent", "Europe")).data)).toEqual(["France", "Iceland"]);
    expect(names((await q().neq("continent", "Europe")).data)).toEqual(["Japan", "Chile", "Kenya"]);
    expect(names((await q().gt("population", 54)).data)).toEqual(["France", "Japan"]);
    expect(names((await q().gte("population", 54).lt("population", 100)).data)).toEqual(["France", "Kenya"]);
    expect(names((await q().lte("population", 19)).data)).toEqual(["Chile"]);
    expect(names((await q().like("name", "%an%")).data)).toEqual(["France", "Japan", "Iceland"]);
    expect(names((await q().ilike("name", "k%")).data)).toEqual(["Kenya"]);
    expect(names((await q().in("name", ["Chile", "Kenya", "Nowhere, Really"])).data)).toEqual(["Chile", "Kenya"]);
    expect(names((await q().is("population", null)).data)).toEqual(["Iceland"]);
    expect(names((await q().not("population", "is", null).not("continent", "in", "(Europe,Asia)")).data)).toEqual(["Chile", "Kenya"]);
    expect(names((await q().match({ continent: "Europe", name: "France" })).data)).toEqual(["France"]);
    expect(names((await q().filter("id", "gte", 4)).data)).toEqual(["Iceland", "Kenya"]);
    expect(names((await q().or("continent.eq.Asia,and(population.lt.20,name.like.C*)")).data)).toEqual(["Japan", "Chile"]);
    expect(names((await q().or('name.in.(Kenya,"Chile, Republic of"),population.is.null').eq("continent", "Europe")).data)).toEqual(["Iceland"]);
    expect(names((await q().not("continent", "in", "(Europe,Asia)").or("population.gt.50,name.eq.Chile")).data)).toEqual(["Chile", "Kenya"]);
  });

  it("orders (with nulls first or last), limits and pages with range", async () => {
    const byPop = await supabase.from("countries").select("name").order("population", { ascending: false, nullsFirst: true });
    expect(names(byPop.data)).toEqual(["Iceland", "Japan", "France", "Kenya", "Chile"]);
    const nullsLast = await supabase.from("countries").select("name").order("population", { ascending: true, nullsFirst: false }).limit(2);
    expect(names(nullsLast.data)).toEqual(["Chile", "Kenya"]);
    const page = await supabase.from("countries").select("name").order("continent").order("name", { ascending: false }).range(1, 3);
    expect(names(page.data)).toEqual(["Chile", "Japan", "Iceland"]);
  });

  it("counts with count: 'exact', with rows or with head: true", async () => {
    const counted = await supabase.from("countries").select("id", { count: "exact" }).eq("continent", "Europe").range(0, 0);
    expect(counted).toMatchObject({ error: null, count: 2, data: [{ id: 1 }] });
    const head = await supabase.from("countries").select("*", { count: "exact", head: true });
    expect(head).toMatchObject({ error: null, count: 5, data: null, status: 200 });
  });

  it("returns one object with .single() and .maybeSingle(), and PGRST116 when there is not exactly one", async () => {
    expect(await supabase.from("countries").select("name").eq("id", 3).single()).toMatchObject({ error: null, data: { name: "Chile" } });
    const none = await supabase.from("countries").select("name").eq("id", 99).single();
    expect(none).toMatchObject({ data: null, status: 406, error: { code: "PGRST116" } });
    expect((await supabase.from("countries").select("name").eq("continent", "Europe").single()).error?.code).toBe("PGRST116");
    expect(await supabase.from("countries").select("name").eq("id", 99).maybeSingle()).toMatchObject({ error: null, data: null });
    expect(await supabase.from("countries").select("name").eq("id", 5).maybeSingle()).toMatchObject({ error: null, data: { name: "Kenya" } });
    expect((await supabase.from("countries").select("name").eq("continent", "Europe").maybeSingle()).error?.code).toBe("PGRST116");
  });

  it("answers errors in PostgREST's shape: code, message, details, hint", async () => {
    const missing = await supabase.from("nowhere").select();
    expect(missing.status).toBe(404);
    expect(missing.error).toEqual({ code: "PGRST205", message: expect.stringContaining("nowhere"), details: expect.any(String), hint: null });
    expect((await supabase.from("countries").select("nope")).error).toMatchObject({ code: "42703", message: expect.stringContaining("nope") });
    expect((await supabase.from("countries").select("name").filter("id", "approx", 1)).error?.code).toBe("PGRST100");
    expect((await supabase.from("countries").select("cities(*)")).error?.code).toBe("PGRST100");
    expect((await supabase.from("countries").select().or("id.eq.1,id.eq.2,and(")).error?.code).toBe("PGRST100");
    expect((await supabase.schema("private").from("countries").select()).error?.code).toBe("PGRST106");
  });

  it("keeps each project's key to its own project", async () => {
    expect((await other.from("countries").select()).error?.code).toBe("PGRST205");
  });

  it("works with the bare postgrest-js client and the apikey header", async () => {
    const rest = new PostgrestClient(`${server.url}/rest/v1`, { headers: { apikey: secretKey } });
    expect(await rest.from("countries").select("name").eq("id", 1).single()).toMatchObject({ error: null, data: { name: "France" } });
  });

  it("allows browsers on any origin (CORS preflight)", async () => {
    const res = await server.fetch("/rest/v1/countries", {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "apikey,content-type,prefer" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("access-control-allow-headers")).toContain("apikey");
  });
});

describe("supabase-js writes through /rest/v1", () => {
  it("inserts one row (no body back) or many, returning them with .select()", async () => {
    const one = await supabase.from("cities").insert({ country_id: 1, name: "Lyon" });
    expect(one).toMatchObject({ error: null, data: null, status: 201 });
    const many = await supabase.from("cities").insert([{ country_id: 2, name: "Osaka" }, { country_id: 2, name: "Kyoto" }]).select();
    expect(many.error).toBeNull();
    expect(names(many.data)).toEqual(["Osaka", "Kyoto"]);
    const single = await supabase.from("cities").insert({ country_id: 3, name: "Valparaíso" }).select("name").single();
    expect(single.data).toEqual({ name: "Valparaíso" });
    expect((await supabase.from("cities").insert({ country_id: 3, name: "Arica" }).select("nope")).error?.code).toBe("42703");
  });

  it("upserts on the primary key or on_conflict columns, or ignores duplicates", async () => {
    const merged = await supabase.from("countries").upsert({ id: 4, name: "Iceland", population: 0 }).select().single();
    expect(merged.data).toMatchObject({ id: 4, population: 0, continent: "Europe" });
    const byName = await supabase.from("cities").upsert({ country_id: 1, name: "Lyon" }, { onConflict: "name" }).select();
    expect(byName.data).toHaveLength(1);
    const ignored = await supabase.from("countries").upsert({ id: 1, name: "Ignored" }, { ignoreDuplicates: true }).select();
    expect(ignored.data).toEqual([]);
    expect((await supabase.from("countries").select("name").eq("id", 1).single()).data).toEqual({ name: "France" });
  });

  it("updates and deletes with filters, with count: 'exact'", async () => {
    const updated = await supabase.from("countries").update({ population: 20 }).eq("name", "Chile").select("id, population");
    expect(updated).toMatchObject({ error: null, status: 200, data: [{ id: 3, population: 20 }] });
    const quiet = await supabase.from("countries").update({ population: 69 }, { count: "exact" }).eq("id", 1);
    expect(quiet).toMatchObject({ error: null, status: 204, count: 1 });
    const deleted = await supabase.from("cities").delete({ count: "exact" }).in("name", ["Osaka", "Kyoto"]);
    expect(deleted).toMatchObject({ error: null, count: 2 });
  });

  it("reports constraint errors with Postgres' codes", async () => {
    const dup = await supabase.from("countries").insert({ id: 1, name: "France again" });
    expect(dup).toMatchObject({ status: 409, error: { code: "23505", hint: null } });
    expect((await supabase.from("cities").insert({ country_id: 99, name: "Atlantis" })).error?.code).toBe("23503");
    expect((await supabase.from("countries").insert({ id: 9 })).error?.code).toBe("23502");
    expect((await supabase.from("countries").insert({ id: "nine", name: "x" })).error?.code).toBe("22P02");
  });

  it("refuses writes with a publishable key, and filterless updates", async () => {
    const res = await readOnly.from("countries").insert({ id: 10, name: "Nope" });
    expect(res.status).toBe(403);
    expect(res.error?.code).toBe("forbidden");
    expect((await readOnly.from("countries").select("id").eq("id", 1)).data).toEqual([{ id: 1 }]);
    expect((await supabase.from("countries").update({ population: 1 })).status).toBe(422);
  });
});

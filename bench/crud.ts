// /v1/db against its floor, in one run with one load generator (bench/load.ts, 50 connections):
//   (a) floor: a bare Hono route, same runtime, running `select * from items where id = $1` with the
//       same driver and pool size, no auth;
//   (b) GET /v1/db/items?id=eq.N with an API key;
//   (c) POST /v1/db/items, one row per request, after (c0) its floor: the same insert on a bare route.
// Usage: node_modules/.bin/bun bench/crud.ts [--seconds 10] [--connections 50] [--rounds 3]
import { Hono } from "hono";
import postgres from "postgres";
import { randomBytes } from "node:crypto";
import { createAdmin, createToken } from "../server/admin/service";
import { withBenchAtlasHub } from "./setup";

const arg = (name: string, fallback: number) => {
  const at = Bun.argv.indexOf(name);
  return at > 0 ? Number(Bun.argv[at + 1]) : fallback;
};
const seconds = arg("--seconds", 10);
// (a) and (b) alternate for this many rounds and the median ratio is reported: on a shared machine
// one pair can land on a busy moment, and the median of alternating pairs is steadier than one pair.
const rounds = arg("--rounds", 3);
const connections = arg("--connections", 50);
const ROWS = 10_000;

await withBenchAtlasHub(async (atlashub) => {
  const admin = await createAdmin(atlashub.ctx.sql, "bench@example.com", randomBytes(16).toString("hex"));
  const { token } = await createToken(atlashub.ctx.sql, admin.id, { name: "bench" });
  const adminHeaders = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const created: any = await (await fetch(`${atlashub.url}/admin/api/projects`, { method: "POST", headers: adminHeaders, body: JSON.stringify({ name: "crud-bench" }) })).json();
  const owner = postgres(created.credentials.owner.connection_string, { max: 1, onnotice: () => {} });
  await owner`create table items (id bigserial primary key, name text not null, qty int not null default 0)`;
  await owner`insert into items (name, qty) select 'item ' || g, g from generate_series(1, ${ROWS}) g`;
  await owner.end();
  const key: string = ((await (await fetch(`${atlashub.url}/admin/api/projects/${created.id}/keys`, { method: "POST", headers: adminHeaders, body: JSON.stringify({ name: "bench", kind: "secret" }) })).json()) as any).key;

  // The floor: same driver, same pool size (5), same role, same query; no auth, no parsing.
  const app = postgres(created.credentials.app.connection_string, { max: 5, onnotice: () => {} });
  const floor = new Hono();
  floor.get("/items/:id", async (c) => c.json(await app`select * from items where id = ${c.req.param("id")}`));
  // The floor of (c): the same insert, no auth, no parsing; each commit waits for its WAL flush as (c)'s do.
  floor.post("/items", async (c) => {
    const row = (await c.req.json()) as { name: string; qty: number };
    return c.json((await app`insert into items (name, qty) values (${row.name}, ${row.qty}) returning id`)[0], 201);
  });
  const floorServer = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: floor.fetch });

  // load.ts puts a running number where {n} stands: ids 1…ROWS and beyond (those answer []).
  const pairs: { a: Result; b: Result }[] = [];
  for (let round = 0; round < rounds; round++) {
    pairs.push({
      a: await load({ url: `http://127.0.0.1:${floorServer.port}/items/{n}` }),
      b: await load({ url: `${atlashub.url}/v1/db/items?id=eq.{n}`, headers: { "x-api-key": key } }),
    });
  }
  const insert = { method: "POST", body: JSON.stringify({ name: "new", qty: 1 }) };
  const c0 = await load({ url: `http://127.0.0.1:${floorServer.port}/items`, headers: { "content-type": "application/json" }, ...insert });
  const c = await load({ url: `${atlashub.url}/v1/db/items`, headers: { "x-api-key": key, "content-type": "application/json" }, ...insert });
  floorServer.stop(true);
  await app.end();

  const line = (label: string, r: Result) =>
    console.log(`${label.padEnd(44)} ${String(r.rps).padStart(6)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  errors ${r.errors}`);
  console.log(`${connections} connections, ${seconds} s each, ${ROWS} rows, ${rounds} rounds of (a) then (b)`);
  pairs.forEach(({ a, b }, i) => {
    line(`(a) floor: Hono + postgres.js, no auth  #${i + 1}`, a);
    line(`(b) GET /v1/db/items?id=eq.N with a key #${i + 1}`, b);
  });
  line("(c0) floor of (c): the same insert, bare", c0);
  line("(c) POST /v1/db/items, one row", c);
  const ratios = pairs.map(({ a, b }) => b.rps / a.rps).sort((x, y) => x - y);
  console.log(`ratio (b)/(a) per round: ${ratios.map((r) => r.toFixed(2)).join(" ")}; median ${ratios[Math.floor(ratios.length / 2)]!.toFixed(2)}`);
  console.log("targets: (b) ≥ 0.7×(a) and ≥ 5000 req/s; (c) ≥ 2000 req/s; p99 < 15 ms");
  // The rate limiter runs on every request, with a limit the load never reaches.
}, { ATLASHUB_API_RATE_LIMIT: "1000000", ATLASHUB_API_RATE_BURST: "1000000" });

type Result = { requests: number; rps: number; p50: number; p99: number; errors: number };

async function load(spec: { url: string; method?: string; headers?: Record<string, string>; body?: string }): Promise<Result> {
  const proc = Bun.spawn([process.execPath, "bench/load.ts", JSON.stringify({ ...spec, connections, seconds })], { stdout: "pipe", stderr: "inherit" });
  const out = await new Response(proc.stdout).text();
  await proc.exited;
  return JSON.parse(out) as Result;
}

// Project provisioning through the HTTP API: creates N projects one after another (POST
// /admin/api/projects, each a database + 3 roles + grants + vector), then soft-deletes and purges them
// all, and counts the backends in use along the way. Floor: a bare `CREATE DATABASE … TEMPLATE
// template0` + 3 `CREATE ROLE … LOGIN PASSWORD` on the same cluster with the same driver, run N/10
// times interleaved with the creates (one after every 10th), so both see the same cluster size and
// the same disk: CREATE DATABASE is mostly WAL and fsync, and its cost drifts over a run. Usage:
//   node_modules/.bin/bun bench/provision.ts [--n 200] [--no-purge]
import postgres from "postgres";
import { randomBytes } from "node:crypto";
import type { PgConnectionInfo } from "../server/engines/postgres/engine";
import { withBenchAtlasHub } from "./setup";
import { createAdmin, createToken } from "../server/admin/service";

const at = Bun.argv.indexOf("--n");
const n = at > 0 ? Number(Bun.argv[at + 1]) : 200;
const purge = !Bun.argv.includes("--no-purge");
if (!Number.isInteger(n) || n < 10) throw new Error("--n must be an integer ≥ 10");
const tenth = Math.ceil(n / 10);

await withBenchAtlasHub(async (atlashub, su) => {
  const admin = await createAdmin(atlashub.ctx.sql, "bench@example.com", randomBytes(16).toString("hex"));
  const { token } = await createToken(atlashub.ctx.sql, admin.id, { name: "bench" });
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const api = async (method: string, path: string, body: unknown, expected: number) => {
    const started = performance.now();
    const res = await fetch(`${atlashub.url}/admin/api/projects${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    const ms = performance.now() - started;
    if (res.status !== expected) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 500)}`);
    return { ms, body: JSON.parse(text) };
  };

  // Our own observer connection; it leaves itself and the floor's connection out of the counts.
  const observer = postgres({ ...su, database: "postgres", max: 1, onnotice: () => {} });
  const backends = async () => {
    const rows = await observer<{ who: string; count: number }[]>`
      select coalesce(nullif(application_name, ''), '(none)') || ' @ ' || coalesce(datname, '-') as who, count(*)::int as count
      from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid() and application_name <> 'bench-floor'
      group by 1 order by 2 desc, 1`;
    const [{ max }] = (await observer`select current_setting('max_connections')::int as max`) as unknown as [{ max: number }];
    const total = rows.reduce((s, r) => s + r.count, 0);
    return `${total} client backends of max_connections ${max} (${rows.map((r) => `${r.who}: ${r.count}`).join(", ") || "none"})`;
  };

  console.log(`N = ${n}, pgvector ${atlashub.ctx.extensions.vector ? "installed" : "NOT installed (projects get no vector extension)"}, sequential, one request at a time`);
  console.log(`backends before:           ${await backends()}`);

  const floor = floorRunner(su);
  const created: { id: string; name: string }[] = [];
  const createMs: number[] = [];
  const floorMs: number[] = [];
  const pairRatios: number[] = [];
  let createWall = 0;
  for (let i = 0; i < n; i++) {
    const name = `bench-${String(i).padStart(5, "0")}`;
    const { ms, body } = await api("POST", "", { name }, 201);
    if (body.status !== "ready") throw new Error(`${name}: status ${body.status}`);
    created.push({ id: body.id, name });
    createMs.push(ms);
    createWall += ms;
    if (i % 10 === 9) {
      floorMs.push(await floor.run());
      pairRatios.push(ms / floorMs.at(-1)!); // this create against the floor run right after it
    }
  }
  const backendsCreated = await backends();
  await floor.dropAll(); // untimed, before the deletes so that they and the backend counts see only projects

  const deleteMs: number[] = [];
  for (const p of created) deleteMs.push((await api("DELETE", `/${p.id}`, undefined, 200)).ms);
  const backendsDeleted = await backends();

  const purgeMs: number[] = [];
  if (purge) for (const p of created) purgeMs.push((await api("DELETE", `/${p.id}?purge=true`, { confirm: p.name }, 200)).ms);
  const backendsPurged = purge ? await backends() : undefined;

  const first = stats(createMs.slice(0, tenth));
  const last = stats(createMs.slice(-tenth));
  const all = stats(createMs);
  const fl = stats(floorMs);
  const half = Math.ceil(floorMs.length / 2);
  const flFirst = stats(floorMs.slice(0, half));
  const flLast = stats(floorMs.slice(half));
  const mark = (ok: boolean) => (ok ? "ok" : "MISSED");
  console.log();
  console.log(`create, all ${n}:          ${fmt(all)}   (${(createWall / 1000).toFixed(1)} s of creates)`);
  console.log(`  target p50 < 250 ms: ${mark(all.p50 < 250)}; p99 < 1000 ms: ${mark(all.p99 < 1000)}`);
  console.log(`create, first ${tenth}:        ${fmt(first)}`);
  console.log(`create, last ${tenth}:         ${fmt(last)}`);
  console.log(`  ratio last-p50/first-p50: ${(last.p50 / first.p50).toFixed(2)}  (target ≤ 1.5: ${mark(last.p50 / first.p50 <= 1.5)})`);
  console.log(`floor (bare CREATE DATABASE + 3 CREATE ROLE), ${floorMs.length} runs: ${fmt(fl)}`);
  console.log(`  floor first half: p50 ${Math.round(flFirst.p50)} ms, second half: p50 ${Math.round(flLast.p50)} ms (ratio ${(flLast.p50 / flFirst.p50).toFixed(2)}: Postgres's own drift over the run)`);
  console.log(`  last/first ratio net of that drift: ${(last.p50 / first.p50 / (flLast.p50 / flFirst.p50)).toFixed(2)}`);
  console.log(`  ratio atlashub create p50 / floor p50: ${(all.p50 / fl.p50).toFixed(2)}; median of ${pairRatios.length} adjacent pairs (create, then floor): ${stats(pairRatios).p50.toFixed(2)}`);
  console.log(`soft delete, all ${n}:     ${fmt(stats(deleteMs))}`);
  if (purge) console.log(`purge, all ${n}:           ${fmt(stats(purgeMs))}`);
  console.log(`backends after creating:   ${backendsCreated}`);
  console.log(`backends after deleting:   ${backendsDeleted}`);
  if (backendsPurged) console.log(`backends after purging:    ${backendsPurged}`);

  await observer.end();
});

/** The floor: what Postgres itself needs for a project's database and roles, nothing else. */
function floorRunner(su: PgConnectionInfo) {
  const sql = postgres({ ...su, database: "postgres", max: 1, onnotice: () => {}, connection: { application_name: "bench-floor" } });
  const ids: string[] = [];
  return {
    async run() {
      await sql`select 1`; // connected before the clock starts
      const id = `floor${String(ids.length).padStart(5, "0")}`;
      ids.push(id);
      const started = performance.now();
      await sql`create database ${sql(`p_${id}`)} template template0`;
      for (const kind of ["owner", "app", "ro"]) {
        await sql.unsafe(`create role "p_${id}_${kind}" login password '${randomBytes(24).toString("base64url")}'`);
      }
      return performance.now() - started;
    },
    async dropAll() {
      for (const id of ids) {
        await sql`drop database ${sql(`p_${id}`)}`;
        for (const kind of ["owner", "app", "ro"]) await sql.unsafe(`drop role "p_${id}_${kind}"`);
      }
      await sql.end();
    },
  };
}

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
  return { p50: pct(50), p95: pct(95), p99: pct(99), max: sorted[sorted.length - 1]! };
}

function fmt(s: ReturnType<typeof stats>) {
  const r = (v: number) => `${Math.round(v)}`.padStart(4);
  return `p50 ${r(s.p50)} ms  p95 ${r(s.p95)} ms  p99 ${r(s.p99)} ms  max ${r(s.max)} ms`;
}

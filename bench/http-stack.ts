// GET /health through the whole AtlasHub stack vs a bare Hono route running the same query with
// the same driver: the ratio is the cost of our middleware and health logic. Usage:
//   node_modules/.bin/bun bench/http-stack.ts [--seconds 10] [--connections 50]
import { Hono } from "hono";
import postgres from "postgres";
import { withBenchAtlasHub } from "./setup";

const arg = (name: string, fallback: number) => {
  const at = Bun.argv.indexOf(name);
  return at > 0 ? Number(Bun.argv[at + 1]) : fallback;
};
const seconds = arg("--seconds", 10);
const connections = arg("--connections", 50);

await withBenchAtlasHub(async (atlashub, su) => {
  const sql = postgres({ ...su, database: atlashub.ctx.config.controlDb, max: 5, onnotice: () => {} });
  const floor = new Hono();
  floor.get("/health", async (c) => {
    const [row] = await sql`select current_setting('server_version') as version`;
    return c.json({ status: "ok", version: row!.version });
  });
  const floorServer = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: floor.fetch });

  const baseline = await load(`http://127.0.0.1:${floorServer.port}/health`);
  const ours = await load(`${atlashub.url}/health`);
  console.log(`floor  (bare Hono + postgres.js): ${fmt(baseline)}`);
  console.log(`atlashub GET /health:             ${fmt(ours)}`);
  console.log(`ratio atlashub/floor: ${(ours.rps / baseline.rps).toFixed(2)} of the floor's throughput, p99 ${ours.p99} ms vs ${baseline.p99} ms`);

  floorServer.stop(true);
  await sql.end();
});

async function load(target: string) {
  const proc = Bun.spawn(["node_modules/.bin/autocannon", "--json", "-c", String(connections), "-d", String(seconds), target], { stdout: "pipe", stderr: "ignore" });
  const result = JSON.parse(await new Response(proc.stdout).text());
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${target}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { rps: result.requests.average as number, p99: result.latency.p99 as number };
}

function fmt(r: { rps: number; p99: number }) {
  return `${Math.round(r.rps)} req/s, p99 ${r.p99} ms`;
}

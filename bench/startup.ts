// Start-up time of the compiled binary (native engine) to /health 200: the first start (initdb) and
// later starts, against the floor of starting the same cluster's `postgres` directly and waiting
// until it answers `select 1`. Usage (after npm run build):
//   node_modules/.bin/bun bench/startup.ts [--runs 5]
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { decryptSecret } from "../server/platform/crypto";

const runsAt = Bun.argv.indexOf("--runs");
const runs = runsAt > 0 ? Number(Bun.argv[runsAt + 1]) : 5;
const binary = join(import.meta.dir, "../build/out/atlashub-linux-x64");
const root = mkdtempSync(join(tmpdir(), "atlashub-bench."));
chmodSync(root, 0o755);
const dataDir = join(root, "data");
const port = 56000 + Math.floor(Math.random() * 1000);
const pgPort = port + 1000;
const env = { PATH: process.env.PATH!, ATLASHUB_DATA_DIR: dataDir, ATLASHUB_PORT: String(port), ATLASHUB_PG_PORT: String(pgPort), ATLASHUB_LOG_LEVEL: "warn" };

try {
  const first = await timeAtlasHubStart();
  const later: number[] = [];
  for (let i = 0; i < runs; i++) later.push(await timeAtlasHubStart());
  const floor: number[] = [];
  for (let i = 0; i < runs; i++) floor.push(await timePostgresStart());
  console.log(`first start (initdb, migrations): ${first} ms`);
  console.log(`later starts, median of ${runs}:      ${median(later)} ms  (all: ${later.join(", ")})`);
  console.log(`floor: bare postgres start, median:  ${median(floor)} ms  (all: ${floor.join(", ")})`);
  console.log(`ratio later start / floor: ${(median(later) / median(floor)).toFixed(2)}`);
} finally {
  rmSync(root, { recursive: true, force: true });
}

async function timeAtlasHubStart() {
  const started = performance.now();
  const proc = Bun.spawn([binary, "serve"], { env, stdout: "ignore", stderr: "inherit" });
  while (!(await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.status === 200).catch(() => false))) await Bun.sleep(5);
  const ms = Math.round(performance.now() - started);
  proc.kill("SIGTERM");
  await proc.exited;
  return ms;
}

async function timePostgresStart() {
  const password = decryptSecret(Buffer.from(readFileSync(join(dataDir, "master.key"), "utf8").trim(), "hex"), readFileSync(join(dataDir, "pg-superuser.secret"), "utf8").trim());
  const started = performance.now();
  const owner = statSync(join(dataDir, "pg")); // as root, run Postgres as the cluster's owner, as atlashub does
  const identity = process.getuid?.() === 0 ? { uid: owner.uid, gid: owner.gid } : {};
  const proc = Bun.spawn(["/usr/lib/postgresql/15/bin/postgres", "-D", join(dataDir, "pg")], { ...identity, cwd: "/", stdout: "ignore", stderr: "ignore" });
  const sql = postgres({ host: "127.0.0.1", port: pgPort, user: "postgres", password, database: "postgres", max: 1, connect_timeout: 1, onnotice: () => {} });
  while (!(await sql`select 1`.then(() => true).catch(() => false))) await Bun.sleep(5);
  const ms = Math.round(performance.now() - started);
  await sql.end();
  proc.kill("SIGINT");
  await proc.exited;
  return ms;
}

function median(values: number[]) {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

// Object storage through the fs driver's signed URLs: a 256 MB file uploaded (PUT) and downloaded
// (GET) with curl in its own process, against `cp` of the same file on the same disk in the same
// run. The server is the compiled binary (build/out/, `npm run build` first) in its own process, as
// users run it. Prints MB/s, the ratio to cp (targets: upload ≥ 0.7×, download ≥ 0.8×) and the peak
// RSS growth of the AtlasHub process (target < 32 MB).
//   node_modules/.bin/bun bench/storage.ts [--mb 256] [--runs 5] [--binary build/out/atlashub-linux-x64]
//
// Each run does, in this order: cp, upload, download, `cp` + fdatasync of the copy (a reference
// with the upload's durability: the upload is fsynced before it is renamed into place, a plain cp
// leaves its bytes in the page cache), and the same curl upload to a bare Bun.serve handler in a
// process of its own that only counts the bytes (the ceiling of an HTTP upload into Bun here, before
// any hashing or writing). The ratios are taken per run (each transfer against the cp of
// its own run, moments apart: the machine is shared, and cp alone ranged 0.6–3.8 GB/s here) and their
// median printed. Peak RSS is exact, not sampled: the kernel's high-water mark of the AtlasHub process
// (VmHWM), reset before each transfer by writing 5 to /proc/<pid>/clear_refs, minus its resident size
// (VmRSS) at that moment. The first upload after start is shown apart from the later ones: it also
// pages in code of the binary used for the first time and grows the allocator's heap once.
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { createAdmin, createToken } from "../server/admin/service";
import { NativeEngine } from "../server/engines/postgres/native";

const { values } = parseArgs({
  options: {
    mb: { type: "string", default: "256" },
    runs: { type: "string", default: "5" },
    binary: { type: "string", default: resolve(import.meta.dir, "../build/out/atlashub-linux-x64") },
  },
});
const MB = Number(values.mb);
const RUNS = Number(values.runs);
const SIZE = MB * 1024 * 1024;

/** A file of SIZE pseudo-random bytes, written 1 MiB at a time. */
function makeSource(dir: string) {
  const path = join(dir, "source.bin");
  const block = randomBytes(1024 * 1024);
  const hash = createHash("sha256");
  const fd = openSync(path, "w");
  for (let i = 0; i < MB; i++) {
    block.writeUInt32BE(i, 0);
    writeSync(fd, block);
    hash.update(block);
  }
  closeSync(fd);
  return { path, sha256: hash.digest("hex") };
}

async function run(cmd: string[]) {
  const started = performance.now();
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`${cmd[0]} exited ${code}: ${err}`);
  return { ms: performance.now() - started, out };
}

async function freePort() {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as { port: number };
  await new Promise((ok) => server.close(ok));
  return port;
}

/** VmRSS and VmHWM of a process, in bytes. */
function memoryOf(pid: number) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)![1]) * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}

/** How far the process's peak resident size rose above where it stood when `work` started. */
async function peakGrowth<T>(pid: number, work: () => Promise<T>) {
  writeFileSync(`/proc/${pid}/clear_refs`, "5");
  const before = memoryOf(pid).rss;
  const result = await work();
  return { result, growth: memoryOf(pid).peak - before };
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: number[]) => sorted(xs)[Math.floor(xs.length / 2)]!;
const mbps = (ms: number) => SIZE / 1024 / 1024 / (ms / 1000);
const range = (xs: number[], digits = 0) => `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;
const mib = (n: number) => (n / 1024 / 1024).toFixed(1);

// The bare handler: reads the body to the end and answers its size; its port on standard output.
const BARE_SERVER = `
const server = Bun.serve({ port: 0, hostname: "127.0.0.1", maxRequestBodySize: 2 ** 40, async fetch(req) {
  let size = 0;
  for await (const chunk of req.body) size += chunk.byteLength;
  return new Response(String(size));
} });
console.log(server.port);`;

const root = mkdtempSync(join(tmpdir(), "atlashub-bench."));
chmodSync(root, 0o755);
const pgPort = 55000 + Math.floor(Math.random() * 5000);
const cluster = new NativeEngine({ dataDir: join(root, "pg"), listen: "127.0.0.1", port: pgPort, masterKey: randomBytes(32), attach: false, initialise: true });
let hub: ReturnType<typeof Bun.spawn> | undefined;
let bare: ReturnType<typeof Bun.spawn> | undefined;
const log = join(root, "atlashub.log");
try {
  await cluster.start();
  const su = cluster.superuser();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  hub = Bun.spawn([values.binary!, "serve"], {
    cwd: root,
    env: {
      PATH: process.env.PATH!,
      ATLASHUB_DATA_DIR: join(root, "data"),
      ATLASHUB_PORT: String(port),
      ATLASHUB_PG_ENGINE: "external",
      ATLASHUB_DATABASE_URL: `postgres://${su.user}:${encodeURIComponent(su.password)}@${su.host}:${su.port}/postgres`,
      ATLASHUB_MASTER_KEY: randomBytes(32).toString("hex"),
      ATLASHUB_LOG_LEVEL: "warn",
    },
    stdin: "ignore",
    stdout: Bun.file(log),
    stderr: Bun.file(log),
  });
  const pid = hub.pid;
  for (let i = 0; ; i++) {
    if (hub.exitCode !== null) throw new Error(`atlashub exited with ${hub.exitCode}:\n${readFileSync(log, "utf8")}`);
    const ok = await fetch(`${url}/health`).then((r) => r.ok, () => false);
    if (ok) break;
    if (i > 600) throw new Error(`atlashub did not become healthy:\n${readFileSync(log, "utf8")}`);
    await Bun.sleep(50);
  }

  const bareProc = (bare = Bun.spawn([process.execPath, "-e", BARE_SERVER], { stdout: "pipe", stderr: "inherit" }));
  const { value: portLine } = await bareProc.stdout.getReader().read();
  const bareUrl = `http://127.0.0.1:${Number(new TextDecoder().decode(portLine).trim())}/`;

  const control = postgres({ host: su.host, port: su.port, user: su.user, password: su.password, database: "atlashub", max: 1, onnotice: () => {} });
  const admin = await createAdmin(control, "bench@example.com", randomBytes(16).toString("hex"));
  const { token } = await createToken(control, admin.id, { name: "bench" });
  await control.end();
  const adminHeaders = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const post = async (path: string, headers: Record<string, string>, body: unknown, method = "POST") => {
    const res = await fetch(`${url}${path}`, { method, headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
    const json = (await res.json()) as any;
    if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const project = await post("/admin/api/projects", adminHeaders, { name: "storage-bench" });
  await post(`/admin/api/projects/${project.id}/storage/settings`, adminHeaders, { max_upload_bytes: SIZE }, "PUT");
  const { key } = await post(`/admin/api/projects/${project.id}/keys`, adminHeaders, { name: "bench", kind: "secret" });

  // Files on the same file system as the server's storage directory.
  const work = mkdtempSync(join(root, "files."));
  const source = makeSource(work);
  const ms = { cp: [] as number[], cpSync: [] as number[], up: [] as number[], down: [] as number[], bare: [] as number[] };
  const upRss: number[] = [];
  const downRss: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const copy = join(work, `cp-${i}.bin`);
    ms.cp.push((await run(["cp", source.path, copy])).ms);
    rmSync(copy);

    const up = await post("/v1/storage/signed-upload", { "x-api-key": key }, { bucket: "uploads", key: `bench/${i}.bin`, content_type: "application/octet-stream" });
    const uploaded = await peakGrowth(pid, () =>
      run(["curl", "-sS", "--fail-with-body", "-X", "PUT", "-H", "content-type: application/octet-stream", "-H", "expect:", "-T", source.path, up.url]),
    );
    if (JSON.parse(uploaded.result.out).sha256 !== source.sha256) throw new Error("uploaded object's sha256 differs from the source");
    ms.up.push(uploaded.result.ms);
    upRss.push(uploaded.growth);

    const down = await post("/v1/storage/signed-download", { "x-api-key": key }, { bucket: "uploads", key: `bench/${i}.bin` });
    const target = join(work, `down-${i}.bin`);
    const downloaded = await peakGrowth(pid, () => run(["curl", "-sS", "--fail", "-o", target, down.url]));
    if (statSync(target).size !== SIZE) throw new Error("downloaded file has the wrong size");
    rmSync(target);
    ms.down.push(downloaded.result.ms);
    downRss.push(downloaded.growth);

    // cp, then fdatasync of the copy (coreutils `sync -d FILE`): the durability the upload has.
    ms.cpSync.push((await run(["cp", source.path, copy])).ms + (await run(["sync", "-d", copy])).ms);
    rmSync(copy);

    const counted = await run(["curl", "-sS", "--fail", "-X", "PUT", "-H", "expect:", "-T", source.path, bareUrl]);
    if (Number(counted.out) !== SIZE) throw new Error("the bare handler counted the wrong size");
    ms.bare.push(counted.ms);
  }

  const perRun = (xs: number[]) => xs.map((x, i) => ms.cp[i]! / x);
  const ratio = (xs: number[]) => `${median(perRun(xs)).toFixed(2)}× cp (runs ${range(perRun(xs), 2)})`;
  const line = (name: string, xs: number[], rest = "") => console.log(`${name.padEnd(36)} ${mbps(median(xs)).toFixed(0).padStart(5)} MB/s (${range(xs.map(mbps))})  ${rest}`);
  console.log(`${MB} MB, ${RUNS} runs, medians (range), curl as the client in its own process, ${values.binary} as the server`);
  console.log(`load average at the end: ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`);
  line("cp (baseline)", ms.cp);
  line("upload: PUT on a signed URL", ms.up, `${ratio(ms.up)}, target ≥ 0.7`);
  line("download: GET on a signed URL", ms.down, `${ratio(ms.down)}, target ≥ 0.8`);
  line("cp + fdatasync (reference)", ms.cpSync, `${ratio(ms.cpSync)}; upload ${median(ms.up.map((x, i) => ms.cpSync[i]! / x)).toFixed(2)}× of it`);
  line("bare Bun handler counting (ceiling)", ms.bare, `${ratio(ms.bare)}; upload ${median(ms.up.map((x, i) => ms.bare[i]! / x)).toFixed(2)}× of it`);
  const later = upRss.slice(1);
  console.log(
    `peak RSS growth of AtlasHub (target < 32 MB): upload first ${mib(upRss[0]!)} MB, later ${later.length ? `max ${mib(Math.max(...later))} MB (median ${mib(median(later))})` : "-"}; ` +
      `download max ${mib(Math.max(...downRss))} MB`,
  );
} finally {
  bare?.kill();
  if (hub) {
    hub.kill("SIGTERM");
    await hub.exited;
  }
  await cluster.stop();
  rmSync(root, { recursive: true, force: true });
}

// Object storage through the fs driver's signed URLs: a 256 MB file uploaded (PUT) and downloaded
// (GET) with curl in its own process, against `cp` of the same file on the same disk in the same
// run. Prints MB/s, the ratio to cp (targets: upload ≥ 0.7×, download ≥ 0.8×) and the peak RSS
// growth of the AtlasHub process (target < 32 MB).
//   node_modules/.bin/bun bench/storage.ts [--mb 256] [--runs 3]
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, openSync, closeSync, writeSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createAdmin, createToken } from "../server/admin/service";
import { withBenchAtlasHub } from "./setup";

const { values } = parseArgs({ options: { mb: { type: "string", default: "256" }, runs: { type: "string", default: "3" } } });
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

/** Peak RSS of this process above where it stood when `work` started. */
async function peakRssGrowth<T>(work: () => Promise<T>) {
  Bun.gc(true);
  const base = process.memoryUsage.rss();
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
  try {
    const result = await work();
    return { result, growth: Math.max(peak, process.memoryUsage.rss()) - base };
  } finally {
    clearInterval(timer);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mbps = (ms: number) => SIZE / 1024 / 1024 / (ms / 1000);

await withBenchAtlasHub(async (atlashub) => {
  const work = mkdtempSync(join(atlashub.ctx.config.dataDir, "..", "bench-files."));
  try {
    const admin = await createAdmin(atlashub.ctx.sql, "bench@example.com", randomBytes(16).toString("hex"));
    const { token } = await createToken(atlashub.ctx.sql, admin.id, { name: "bench" });
    const adminHeaders = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const post = async (path: string, headers: Record<string, string>, body: unknown, method = "POST") =>
      (await (await fetch(`${atlashub.url}${path}`, { method, headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) })).json()) as any;
    const project = await post("/admin/api/projects", adminHeaders, { name: "storage-bench" });
    await post(`/admin/api/projects/${project.id}/storage/settings`, adminHeaders, { max_upload_bytes: SIZE }, "PUT");
    const { key } = await post(`/admin/api/projects/${project.id}/keys`, adminHeaders, { name: "bench", kind: "secret" });

    const source = makeSource(work);
    const copies = { cp: [] as number[], up: [] as number[], down: [] as number[] };
    let upRss = 0;
    let downRss = 0;
    for (let i = 0; i < RUNS; i++) {
      copies.cp.push((await run(["cp", source.path, join(work, `cp-${i}.bin`)])).ms);
      rmSync(join(work, `cp-${i}.bin`));

      const up = await post("/v1/storage/signed-upload", { "x-api-key": key }, { bucket: "uploads", key: `bench/${i}.bin`, content_type: "application/octet-stream" });
      const uploaded = await peakRssGrowth(() =>
        run(["curl", "-sS", "--fail-with-body", "-X", "PUT", "-H", "content-type: application/octet-stream", "-H", "expect:", "-T", source.path, up.url]),
      );
      const meta = JSON.parse(uploaded.result.out);
      if (meta.sha256 !== source.sha256) throw new Error("uploaded object's sha256 differs from the source");
      copies.up.push(uploaded.result.ms);
      upRss = Math.max(upRss, uploaded.growth);

      const down = await post("/v1/storage/signed-download", { "x-api-key": key }, { bucket: "uploads", key: `bench/${i}.bin` });
      const target = join(work, `down-${i}.bin`);
      const downloaded = await peakRssGrowth(() => run(["curl", "-sS", "--fail", "-o", target, down.url]));
      if (statSync(target).size !== SIZE) throw new Error("downloaded file has the wrong size");
      rmSync(target);
      copies.down.push(downloaded.result.ms);
      downRss = Math.max(downRss, downloaded.growth);
    }

    const cp = median(copies.cp);
    const up = median(copies.up);
    const down = median(copies.down);
    const line = (name: string, ms: number, target: number) =>
      console.log(`${name.padEnd(34)} ${mbps(ms).toFixed(0).padStart(6)} MB/s   ${(mbps(ms) / mbps(cp)).toFixed(2)}× cp (target ≥ ${target})`);
    console.log(`${MB} MB, median of ${RUNS} runs, curl as the client (its own process)`);
    console.log(`${"cp (baseline)".padEnd(34)} ${mbps(cp).toFixed(0).padStart(6)} MB/s`);
    line("upload: PUT on a signed URL", up, 0.7);
    line("download: GET on a signed URL", down, 0.8);
    const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
    console.log(`peak RSS growth of AtlasHub: upload ${mib(upRss)} MB, download ${mib(downRss)} MB (target < 32 MB)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

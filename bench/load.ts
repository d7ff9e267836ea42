// A small HTTP load generator in Bun, run as its own process so it does not share the server's
// event loop: `bun bench/load.ts '<json spec>'` → one JSON line {requests, rps, p50, p99, errors}.
// spec: {url, method?, headers?, body?, connections, seconds}; "{n}" in the url becomes a running
// number. Only ever aimed at 127.0.0.1.
const spec = JSON.parse(Bun.argv[2]!) as { url: string; method?: string; headers?: Record<string, string>; body?: string; connections: number; seconds: number };
if (!/^http:\/\/127\.0\.0\.1:\d+\//.test(spec.url)) throw new Error("load.ts only targets 127.0.0.1");

const latencies: number[] = [];
let errors = 0;
let counter = 0;
const deadline = performance.now() + spec.seconds * 1000;

async function worker() {
  while (performance.now() < deadline) {
    const started = performance.now();
    const res = await fetch(spec.url.replace("{n}", String(++counter)), { method: spec.method ?? "GET", headers: spec.headers, body: spec.body });
    const text = await res.text();
    latencies.push(performance.now() - started);
    if (res.status >= 400 && errors++ < 2 && process.env.LOAD_DEBUG) console.error(res.status, text.slice(0, 300));
  }
}

const began = performance.now();
await Promise.all(Array.from({ length: spec.connections }, worker));
const elapsed = (performance.now() - began) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]! * 10) / 10;
console.log(JSON.stringify({ requests: latencies.length, rps: Math.round(latencies.length / elapsed), p50: pct(50), p99: pct(99), errors }));
export {};

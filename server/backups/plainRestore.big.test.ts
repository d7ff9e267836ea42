// A plain .sql dump far larger than what a restore may hold in memory: uploaded, scanned and restored
// with the process's resident memory sampled all along. ATLASHUB_TEST_PLAIN_MB sets its size (250 MB).
// Measured: +101 MB peak RSS for 120 MB, +109 MB for 300 MB — what the heap and the drivers settle at, not the script.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret } from "../test/harness";

const MB = 1024 * 1024;
const TARGET_BYTES = Number(process.env.ATLASHUB_TEST_PLAIN_MB ?? 250) * MB;
const PAYLOAD = "0123456789abcdef\\tx\\\\y".repeat(8);

let server: TestServer;
let auth: Record<string, string>;
let project: any;
const clients = clientTracker();

beforeAll(async () => {
  server = await startTestServer({ ATLASHUB_BACKUP_VERIFY: "false" });
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "plain-big");
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

/** The script, made as it is read: 5,000 INSERT statements, then one COPY of rows up to TARGET_BYTES. */
function bigScript() {
  const encoder = new TextEncoder();
  let bytes = 0;
  let stage = 0;
  let row = 0;
  const script = {
    rows: 0,
    stream: new ReadableStream<Uint8Array>({
      pull(controller) {
        let text = "";
        if (stage === 0) {
          text = "CREATE TABLE public.big (id bigint PRIMARY KEY, payload text, n integer);\nCREATE TABLE public.small (id integer, note text);\n";
          for (let i = 0; i < 5000; i++) text += `INSERT INTO public.small VALUES (${i}, 'note ${i}; with a '';'' inside');\n`;
          text += "COPY public.big (id, payload, n) FROM stdin;\n";
          stage = 1;
        } else if (stage === 1) {
          for (let i = 0; i < 2000; i++, row++) text += `${row}\t${PAYLOAD}\t${row % 1000}\n`;
          if (bytes + text.length >= TARGET_BYTES) {
            text += "\\.\nSELECT 1;\n";
            script.rows = row;
            stage = 2;
          }
        } else return controller.close();
        bytes += text.length;
        controller.enqueue(encoder.encode(text));
      },
    }),
  };
  return script;
}

/** Samples this process's resident memory (the server runs in it) until stopped; answers the peak. */
function sampleRss() {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  return () => {
    clearInterval(timer);
    return Math.max(peak, process.memoryUsage().rss);
  };
}

describe("a plain .sql dump of 250 MB", () => {
  it("uploads and restores into a new project with bounded memory", async () => {
    Bun.gc(true);
    const before = process.memoryUsage().rss;
    const stop = sampleRss();
    const script = bigScript();
    const started = Date.now();
    const res = await server.fetch(`/admin/api/projects/${project.id}/backups/upload`, { method: "PUT", headers: { ...auth, "content-type": "application/octet-stream" }, body: script.stream, duplex: "half" } as RequestInit);
    const uploaded = (await res.json()) as any;
    expect(res.status).toBe(201);
    expect(uploaded.manifest.dump).toMatchObject({ format: "plain" });
    expect(uploaded.manifest.dump.bytes).toBeGreaterThan(TARGET_BYTES);
    const uploadedAt = Date.now();

    const started2 = await server.fetch(`/admin/api/projects/${project.id}/backups/${uploaded.id}/restore`, jsonRequest("POST", { mode: "new_project", confirm: "plain-big", name: "plain-big-copy" }, auth));
    expect(started2.status).toBe(202);
    const body = (await started2.json()) as any;
    for (const c of Object.values(body.project.credentials) as { password: string }[]) registerSecret(c.password);
    await server.ctx.backups.settled(body.id);
    const peak = stop();
    const done = (await (await server.fetch(`/admin/api/projects/${body.project.id}/restores/${body.id}`, { headers: auth })).json()) as any;
    expect(done).toMatchObject({ status: "finished", failure_reason: null });

    const copy = clients.connect(body.project.credentials.owner.connection_string);
    const [big] = await copy`select count(*)::int as rows, sum(n)::bigint as total, count(*) filter (where payload = ${PAYLOAD.replaceAll("\\t", "\t").replaceAll("\\\\", "\\")})::int as exact from big`;
    expect(big!.rows).toBe(script.rows);
    expect(big!.exact).toBe(script.rows);
    expect((await copy`select count(*)::int as n from small where note like '%'';''%'`)[0]!.n).toBe(5000);

    const growth = (peak - before) / MB;
    console.log(
      `plain restore: ${(uploaded.manifest.dump.bytes / MB).toFixed(0)} MB script, ${script.rows} COPY rows; upload+scan ${((uploadedAt - started) / 1000).toFixed(1)} s, restore ${((Date.now() - uploadedAt) / 1000).toFixed(1)} s; RSS ${(before / MB).toFixed(0)} MB before, peak ${(peak / MB).toFixed(0)} MB (+${growth.toFixed(0)} MB)`,
    );
    // Bounded: far less than the script, whatever its size (the reader holds a statement or 256 KB of COPY data at a time).
    expect(growth).toBeLessThan(Math.min(160, (TARGET_BYTES / MB) * 0.75));
  }, 300_000);
});

// A plain .sql dump far larger than what a restore may hold in memory, against the compiled binary in
// its own process: uploaded (stored, then read through once), then restored into a new project, with
// the AtlasHub process's peak memory (VmHWM, reset before each) measured. The script is read as a
// stream — a statement, or 256 KB of COPY data, at a time — so the peak must not grow with its size.
// ATLASHUB_TEST_PLAIN_MB sets the size (300 MB). Measured growth for 60 / 250 / 500 MB scripts:
// upload and read-through 85 / 106 / 119 MB (of which storing the parts alone, as for any uploaded
// dump, 29 / 60 / 69 MB: the heap settling, not the file); restore 17 / 5 / 47 MB.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import postgres from "postgres";
import { registerSecret, waitFor } from "../test/harness";
import { peakGrowth, spawnAtlasHub, stopAtlasHubsAfterTests, type AtlasHubProcess } from "../test/binary";
import { binaryTestSetup } from "../test/binaryProject";

stopAtlasHubsAfterTests();

const MB = 1024 * 1024;
const SIZE = Number(process.env.ATLASHUB_TEST_PLAIN_MB ?? 300) * MB;
const MAX_UPLOAD_GROWTH = 160 * MB;
const MAX_RESTORE_GROWTH = 96 * MB;
// Backslash escapes of COPY's text format: a tab and a backslash in every row.
const PAYLOAD = "0123456789abcdef\\tx\\\\y".repeat(8);

const { env, dataDir, post, url, ...setup } = binaryTestSetup("plain-memory", { ATLASHUB_BACKUP_VERIFY: "false" });
let hub: AtlasHubProcess;
let control: postgres.Sql;
let headers: Record<string, string>;
let project: { id: string };

beforeAll(async () => {
  hub = spawnAtlasHub({ dataDir, env, lifetime: "file" });
  await hub.waitHealthy(200, 30_000);
  control = setup.controlPlane();
  headers = await setup.adminHeaders(control);
  project = await post("/admin/api/projects", headers, { name: "plain-big" });
  for (const c of Object.values((project as any).credentials) as { password: string }[]) registerSecret(c.password);
});
afterAll(async () => {
  await control?.end();
});

/** The script, made as the upload pulls it: 5,000 INSERT statements, then one COPY of rows up to SIZE. */
function bigScript() {
  const encoder = new TextEncoder();
  let bytes = 0;
  let stage = 0;
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
          for (let i = 0; i < 2000; i++, script.rows++) text += `${script.rows}\t${PAYLOAD}\t${script.rows % 1000}\n`;
          if (bytes + text.length >= SIZE) {
            text += "\\.\nSELECT 1;\n";
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

describe(`a plain .sql dump of ${SIZE / MB} MB (compiled binary)`, () => {
  it("uploads and restores into a new project while the server's peak memory grows by far less than the script", async () => {
    const script = bigScript();
    const upload = await peakGrowth(hub.pid, async () => {
      const started = Date.now();
      const res = await fetch(url(`/admin/api/projects/${project.id}/backups/upload`), {
        method: "PUT",
        headers: { ...headers, "content-type": "application/octet-stream" },
        body: script.stream,
        duplex: "half",
      } as RequestInit);
      const body = (await res.json()) as any;
      expect(res.status).toBe(201);
      return { backup: body, seconds: (Date.now() - started) / 1000 };
    });
    expect(upload.result.backup.manifest.dump).toMatchObject({ format: "plain" });
    expect(upload.result.backup.manifest.dump.bytes).toBeGreaterThanOrEqual(SIZE);

    const restore = await peakGrowth(hub.pid, async () => {
      const started = Date.now();
      const answer = await post(`/admin/api/projects/${project.id}/backups/${upload.result.backup.id}/restore`, headers, { mode: "new_project", confirm: "plain-big", name: "plain-big-copy" });
      for (const c of Object.values(answer.project.credentials) as { password: string }[]) registerSecret(c.password);
      await waitFor("the restore", async () => (await control`select status from restores where id = ${answer.id}`)[0]!.status !== "restoring", 300_000);
      return { answer, seconds: (Date.now() - started) / 1000 };
    });
    const [row] = await control`select status, failure_reason from restores where id = ${restore.result.answer.id}`;
    expect(row).toEqual({ status: "finished", failure_reason: null });

    const copy = postgres(restore.result.answer.project.credentials.owner.connection_string, { max: 1, onnotice: () => {} });
    try {
      const exact = PAYLOAD.replaceAll("\\t", "\t").replaceAll("\\\\", "\\");
      const [big] = await copy`select count(*)::int as rows, count(*) filter (where payload = ${exact})::int as exact from big`;
      expect(big).toEqual({ rows: script.rows, exact: script.rows });
      expect((await copy`select count(*)::int as n from small where note like '%'';''%'`)[0]!.n).toBe(5000);
    } finally {
      await copy.end();
    }
    const mb = (n: number) => (n / MB).toFixed(1);
    console.log(
      `plain .sql of ${mb(upload.result.backup.manifest.dump.bytes)} MB (${script.rows} COPY rows): AtlasHub peak memory growth upload+scan ${mb(upload.growth)} MB in ${upload.result.seconds.toFixed(1)} s, restore ${mb(restore.growth)} MB in ${restore.result.seconds.toFixed(1)} s`,
    );
    expect(upload.growth).toBeLessThan(Math.min(MAX_UPLOAD_GROWTH, SIZE / 2));
    expect(restore.growth).toBeLessThan(Math.min(MAX_RESTORE_GROWTH, SIZE / 2));
  }, 600_000);
});

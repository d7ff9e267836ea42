// `atlashub backup …` from the compiled binary, beside a running serve (external engine): a backup
// with its progress on standard error, the list, a download whose sha256 is the manifest's, a
// restore into a new project whose credentials are printed once.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { registerSecret, tempDir } from "../test/harness";
import { spawnAtlasHub, stopAtlasHubsAfterTests, type AtlasHubProcess } from "../test/binary";
import { binaryTestSetup } from "../test/binaryProject";

stopAtlasHubsAfterTests();

const { env, dataDir, ...setup } = binaryTestSetup("backup-cli");
let serve: AtlasHubProcess;
let control: postgres.Sql;
let project: { id: string };

beforeAll(async () => {
  serve = spawnAtlasHub({ dataDir, env, lifetime: "file" });
  await serve.waitHealthy(200, 30_000);
  control = setup.controlPlane(1);
  const headers = await setup.adminHeaders(control);
  const created = await setup.post("/admin/api/projects", headers, { name: "cli-backups" });
  for (const c of Object.values(created.credentials) as { password: string }[]) registerSecret(c.password);
  project = created;
  const owner = postgres(created.credentials.owner.connection_string, { max: 1, onnotice: () => {} });
  await owner`create table t (id int primary key)`;
  await owner`insert into t select generate_series(1, 100)`;
  await owner.end();
});
afterAll(async () => {
  await control?.end();
  await serve.stop();
});

async function cli(...args: string[]) {
  const h = spawnAtlasHub({ dataDir, env, args: ["backup", ...args], stdoutIsResult: true });
  const code = await h.exited;
  return { code, out: h.lines("stdout").join("\n"), err: h.lines("stderr").join("\n") };
}

describe("atlashub backup", () => {
  let backup: any;

  it("backs up a project with its progress on standard error and the backup as JSON on standard output", async () => {
    const res = await cli("create", project.id);
    expect(res.code).toBe(0);
    backup = JSON.parse(res.out);
    expect(backup).toMatchObject({ project_id: project.id, status: "verified", created_by: "atlashub backup create" });
    expect(res.err).toMatch(/\[#{20}\] 100%  dump [\d.]+ KB  files 0\/0 \(0 B of 0 B\)  verified/);
  }, 60_000);

  it("lists it and downloads its dump", async () => {
    const list = await cli("list", project.id);
    expect(list.code).toBe(0);
    expect(list.out).toContain(`${backup.id}  verified`);
    const file = join(tempDir("backup-cli-dl"), "out.dump");
    const dl = await cli("download", project.id, backup.id, file);
    expect(dl.code).toBe(0);
    expect(createHash("sha256").update(readFileSync(file)).digest("hex")).toBe(backup.manifest.dump.sha256);
  });

  it("restores into a new project and prints its credentials once", async () => {
    const res = await cli("restore", project.id, backup.id, "--mode", "new_project", "--confirm", "cli-backups", "--name", "cli-copy");
    expect(res.code).toBe(0);
    const out = JSON.parse(res.out);
    for (const c of Object.values(out.project.credentials) as { password: string }[]) registerSecret(c.password);
    expect(out).toMatchObject({ mode: "new_project", status: "finished", project: { name: "cli-copy" } });
    const app = postgres(out.project.credentials.app.connection_string, { max: 1, onnotice: () => {} });
    expect((await app`select count(*)::int as n from t`)[0]!.n).toBe(100);
    await app.end();
  }, 60_000);

  it("exits non-zero with one line for a wrong confirm or an unknown project", async () => {
    const bad = await cli("restore", project.id, backup.id, "--mode", "replace", "--confirm", "nope");
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("atlashub: confirm must be the name of the backup's project.");
    const unknown = await cli("create", "zzzzzzzzzz");
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain("atlashub: No such project.");
  });
});

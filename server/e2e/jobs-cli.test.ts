// `atlashub jobs …` from the compiled binary, beside a running serve (external engine).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { spawnAtlasHub, stopAtlasHubsAfterTests, type AtlasHubProcess } from "../test/binary";
import { binaryTestSetup } from "../test/binaryProject";

stopAtlasHubsAfterTests();

const { env, dataDir } = binaryTestSetup("jobs-cli");
let serve: AtlasHubProcess;

beforeAll(async () => {
  serve = spawnAtlasHub({ dataDir, env, lifetime: "file" });
  await serve.waitHealthy(200, 30_000);
});
afterAll(() => serve.stop());

async function cli(...args: string[]) {
  const h = spawnAtlasHub({ dataDir, env, args: ["jobs", ...args], stdoutIsResult: true });
  const code = await h.exited;
  return { code, out: h.lines("stdout").join("\n"), err: h.lines("stderr").join("\n") };
}

describe("atlashub jobs", () => {
  it("lists the platform jobs and runs one by name", async () => {
    const list = await cli("list");
    expect(list.code).toBe(0);
    expect(list.out).toContain("platform/purge_deleted_projects");
    const run = await cli("run", "platform/clean_expired_sessions");
    expect(run.code).toBe(0);
    expect(JSON.parse(run.out)).toMatchObject({ trigger: "manual", status: "succeeded", response_body: '{"deleted":0}' });
  });

  it("exits 1 with one line for an unknown job", async () => {
    const bad = await cli("run", "nope");
    expect(bad.code).toBe(1);
    expect(bad.err).toBe('atlashub: no job has the id or name "nope"');
  });
});

// `atlashub project …` from the compiled binary, attached to a running serve (external engine).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { registerSecret } from "../test/harness";
import { spawnAtlasHub, stopAtlasHubsAfterTests, type AtlasHubProcess } from "../test/binary";
import { binaryTestSetup } from "../test/binaryProject";

stopAtlasHubsAfterTests();

const { env, dataDir } = binaryTestSetup("cli");
let serve: AtlasHubProcess;

beforeAll(async () => {
  serve = spawnAtlasHub({ dataDir, env, lifetime: "file" });
  await serve.waitHealthy(200, 30_000);
});
afterAll(() => serve.stop());

async function cli(...args: string[]) {
  const h = spawnAtlasHub({ dataDir, env, args: ["project", ...args], stdoutIsResult: true });
  const code = await h.exited;
  return { code, out: h.lines("stdout").join("\n"), err: h.lines("stderr").join("\n") };
}

describe("atlashub project", () => {
  it("creates, lists, shows, deletes, restores and purges", async () => {
    const created = await cli("create", "cli-made", "--description", "from the shell");
    expect(created.code).toBe(0);
    const project = JSON.parse(created.out);
    for (const c of Object.values(project.credentials) as { password: string }[]) registerSecret(c.password);
    expect(project).toMatchObject({ name: "cli-made", description: "from the shell", status: "ready" });

    const list = await cli("list");
    expect(list.out).toContain(`${project.id}  ready`);
    expect(JSON.parse((await cli("show", project.id)).out)).toMatchObject({ id: project.id, status: "ready" });
    expect(JSON.parse((await cli("delete", project.id)).out).status).toBe("deleted");
    expect((await cli("list", "--status", "deleted")).out).toContain(project.id);
    expect(JSON.parse((await cli("restore", project.id)).out).status).toBe("ready");

    const unconfirmed = await cli("purge", project.id);
    expect(unconfirmed.code).toBe(1);
    expect(unconfirmed.err).toBe("atlashub: purge needs --confirm cli-made");
    expect(JSON.parse((await cli("purge", project.id, "--confirm", "cli-made")).out).status).toBe("purged");

    // The running serve sees what the CLI did.
    const seen = await serve.fetch(`/health`);
    expect(seen.status).toBe(200);
  });

  it("explains bad input in one line", async () => {
    const bad = await cli("create", "Bad Name");
    expect(bad.code).toBe(2);
    expect(bad.err).toBe("atlashub: name: must be 3–40 characters: lowercase letters, digits, - and _");
    const unknown = await cli("show", "zzzzzzzzzz");
    expect(unknown).toMatchObject({ code: 1, err: "atlashub: No such project." });
  });
});

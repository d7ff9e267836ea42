import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { adminHeaders, createTestProject, startTestServer, type TestServer } from "../test/server";
import { tempDir } from "../test/harness";
import { runStorageCommand } from "./cli";

let server: TestServer;
let project: { id: string };
const files = tempDir("storage-cli");

beforeAll(async () => {
  server = await startTestServer();
  project = await createTestProject(server, await adminHeaders(server), "storage-cli");
});
afterAll(() => server.stop());

describe("atlashub storage", () => {
  it("puts, lists, gets and removes an object, and lists buckets", async () => {
    const source = join(files, "report.csv");
    writeFileSync(source, "a,b\n1,2\n");
    const put = JSON.parse(await runStorageCommand(server.ctx, "put", [project.id, "uploads", "reports/2026.csv", source], { "--content-type": "text/csv" }));
    expect(put).toMatchObject({ bucket: "uploads", key: "reports/2026.csv", size: 8, content_type: "text/csv", uploaded_by: null });
    expect(await runStorageCommand(server.ctx, "ls", [project.id, "uploads"], { "--prefix": "reports/" })).toMatch(/^\s+8  \S+  text\/csv\s+reports\/2026\.csv$/);
    const target = join(files, "copy.csv");
    expect(await runStorageCommand(server.ctx, "get", [project.id, "uploads", "reports/2026.csv", target], {})).toBe(`wrote 8 bytes to ${target}`);
    expect(readFileSync(target, "utf8")).toBe("a,b\n1,2\n");
    expect(await runStorageCommand(server.ctx, "buckets", [project.id], {})).toMatch(/^private\s+private\s+0  0 B\nuploads\s+private\s+1  8 B$/);
    expect(await runStorageCommand(server.ctx, "rm", [project.id, "uploads", "reports/2026.csv"], {})).toBe("deleted uploads/reports/2026.csv");
    expect(await runStorageCommand(server.ctx, "ls", [project.id, "uploads"], {})).toBe("");
    const [audit] = await server.ctx.sql`select action, actor_type from audit_log where action like 'storage.object.%' order by id desc limit 1`;
    expect(audit).toMatchObject({ action: "storage.object.delete" });
  });

  it("refuses bad keys, unknown projects and unknown subcommands", async () => {
    await expect(runStorageCommand(server.ctx, "rm", [project.id, "uploads", "../x"], {})).rejects.toThrow();
    await expect(runStorageCommand(server.ctx, "buckets", ["nosuchproj"], {})).rejects.toThrow("No such project.");
    await expect(runStorageCommand(server.ctx, "frobnicate", [], {})).rejects.toThrow("unknown storage subcommand");
  });

  it("is wired into the command line (bun server/main.ts storage …, attached to the running server's control plane)", async () => {
    writeFileSync(join(files, "hello.txt"), "hello");
    const config = server.ctx.config;
    const env = {
      PATH: process.env.PATH!,
      ATLASHUB_DATA_DIR: config.dataDir,
      ATLASHUB_PG_ENGINE: "external",
      ATLASHUB_DATABASE_URL: process.env.ATLASHUB_TEST_DATABASE_URL!,
      ATLASHUB_CONTROL_DB: config.controlDb,
      ATLASHUB_MASTER_KEY: server.ctx.masterKey.toString("hex"),
      ATLASHUB_LOG_LEVEL: "error",
    };
    const main = resolve(import.meta.dir, "../main.ts");
    const run = (...args: string[]) => {
      const out = Bun.spawnSync([process.execPath, main, "storage", ...args], { env, cwd: files });
      return { code: out.exitCode, stdout: out.stdout.toString(), stderr: out.stderr.toString() };
    };
    expect(run("put", project.id, "uploads", "cli/hello.txt", "hello.txt", "--content-type", "text/plain")).toMatchObject({ code: 0 });
    const ls = run("ls", project.id, "uploads", "--prefix", "cli/");
    expect(ls.code).toBe(0);
    expect(ls.stdout).toContain("text/plain");
    expect(ls.stdout).toContain("cli/hello.txt");
    expect(run("--help").stdout).toContain("atlashub storage <subcommand>");
    expect(run("rm", project.id, "uploads", "../x")).toMatchObject({ code: 2 });
  });
});

// Run by build/test.sh after the whole suite: no password, token or key the suite registered may
// appear in any log line the suite produced (in-process servers, engines and spawned binaries).
import { describe, expect, it } from "bun:test";
import { existsSync, readFileSync } from "node:fs";

const logFile = process.env.ATLASHUB_TEST_LOG;
const secretsFile = process.env.ATLASHUB_TEST_SECRETS;

describe("the suite's logs", () => {
  it("were collected and secrets were registered", () => {
    expect(logFile && existsSync(logFile)).toBeTruthy();
    expect(secretsFile && existsSync(secretsFile)).toBeTruthy();
  });

  it("contain no registered secret", () => {
    const log = readFileSync(logFile!, "utf8");
    const secrets = [...new Set(readFileSync(secretsFile!, "utf8").trim().split("\n").map((l) => JSON.parse(l) as string))];
    const leaked = secrets.filter((s) => log.includes(s));
    expect(leaked.map((s) => `${s.slice(0, 4)}… (${s.length} chars)`)).toEqual([]);
    expect(secrets.length).toBeGreaterThan(10);
    expect(log.split("\n").length).toBeGreaterThan(100);
  });
});

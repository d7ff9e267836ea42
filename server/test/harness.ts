// Test helpers shared by the suite: temp dirs under one root, free ports, the suite log, and the
// registry of secrets that build/log-scan.check.ts looks for in that log.
import { appendFileSync, chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// build/test.sh makes (and removes) the root; a bare `bun test` makes its own, removed by the preload's afterAll.
const ownRoot = !process.env.ATLASHUB_TEST_ROOT;
const root = process.env.ATLASHUB_TEST_ROOT ?? mkdtempSync(join(tmpdir(), "atlashub-test."));
chmodSync(root, 0o755);

export function removeOwnTestRoot() {
  if (ownRoot) rmSync(root, { recursive: true, force: true });
}
export const suiteLog = process.env.ATLASHUB_TEST_LOG ?? join(root, "suite.log");
const secretsFile = process.env.ATLASHUB_TEST_SECRETS ?? join(root, "secrets.txt");

/** A fresh directory the Postgres OS user can traverse. */
export function tempDir(prefix: string) {
  const dir = mkdtempSync(join(root, prefix + "."));
  chmodSync(dir, 0o755);
  return dir;
}

export function freePort(): number {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

/** Every password, token and key a test sees; none of them may appear in the suite log. */
export function registerSecret(...secrets: (string | undefined)[]) {
  for (const s of secrets) if (s && s.length >= 8) appendFileSync(secretsFile, JSON.stringify(s) + "\n");
}

export function appendToSuiteLog(text: string) {
  appendFileSync(suiteLog, text.endsWith("\n") ? text : text + "\n");
}

/** Polls until `check` returns a value (not undefined/false) or the timeout passes. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    await Bun.sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ""}`);
}

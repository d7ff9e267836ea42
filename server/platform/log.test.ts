import { afterEach, describe, expect, it } from "bun:test";
import { log, setLogLevel, setLogSink } from "./log";
import { appendToSuiteLog } from "../test/harness";

afterEach(() => {
  setLogSink(appendToSuiteLog);
  setLogLevel("debug");
});

describe("log", () => {
  it("writes one JSON object per line and redacts fields named like secrets", () => {
    const lines: string[] = [];
    setLogSink((l) => lines.push(l));
    log.info("hello", { user: "ann", password: "pw-should-vanish", api_key: "k", Authorization: "Bearer x", sessionToken: "t" });
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]!);
    expect(entry).toMatchObject({ level: "info", msg: "hello", user: "ann", password: "[redacted]", api_key: "[redacted]", Authorization: "[redacted]", sessionToken: "[redacted]" });
    expect(entry.time).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it("drops lines below the level", () => {
    const lines: string[] = [];
    setLogSink((l) => lines.push(l));
    setLogLevel("warn");
    log.info("quiet");
    log.warn("loud");
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(["loud"]);
  });
});

// Loaded by bun test before any test file (bunfig.toml): sends every log line to the suite log and
// starts the one throwaway Postgres cluster of this run, stopped when the run ends.
import { afterAll } from "bun:test";
import { randomBytes } from "node:crypto";
import { NativeEngine } from "../engines/postgres/native";
import { setLogLevel, setLogSink } from "../platform/log";
import { appendToSuiteLog, freePort, registerSecret, removeOwnTestRoot, tempDir } from "./harness";

setLogSink(appendToSuiteLog);
setLogLevel("debug");

const masterKey = randomBytes(32);
const cluster = new NativeEngine({ dataDir: tempDir("cluster"), listen: "127.0.0.1", port: freePort(), masterKey, attach: false, initialise: true, memoryMb: 1024 });
await cluster.start();
const su = cluster.superuser();
registerSecret(su.password, masterKey.toString("hex"));
process.env.ATLASHUB_TEST_DATABASE_URL = `postgres://${su.user}:${su.password}@${su.host}:${su.port}/postgres`;

afterAll(async () => {
  await cluster.stop();
  removeOwnTestRoot();
});

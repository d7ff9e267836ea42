import { afterAll, describe, expect, it } from "bun:test";
import postgres from "postgres";
import { ExternalEngine } from "./external";
import { EngineError } from "./engine";
import { registerSecret } from "../../test/harness";

const url = new URL(process.env.ATLASHUB_TEST_DATABASE_URL!);
const admin = postgres(url.toString(), { max: 1, onnotice: () => {} });
afterAll(() => admin.end());

function withCredentials(user: string, password: string) {
  const u = new URL(url);
  u.username = user;
  u.password = password;
  return u.toString();
}

describe("ExternalEngine", () => {
  it("starts against a superuser URL and hands out its connection info", async () => {
    const engine = new ExternalEngine(url.toString());
    await engine.start();
    expect(engine.state()).toBe("running");
    expect(engine.superuser()).toMatchObject({ host: "127.0.0.1", port: Number(url.port), user: "postgres", database: "postgres" });
  });

  it("says what is missing when the role is neither superuser nor CREATEDB + CREATEROLE", async () => {
    const password = "weak-role-password-123";
    registerSecret(password);
    await admin.unsafe(`drop owned by ext_weak`).catch(() => {});
    await admin.unsafe(`drop role if exists ext_weak`);
    await admin.unsafe(`create role ext_weak login password '${password}' createdb`);
    await admin.unsafe(`grant connect on database postgres to ext_weak`); // PUBLIC has none once AtlasHub hardened the cluster
    const error = await new ExternalEngine(withCredentials("ext_weak", password)).start().catch((e) => e);
    expect(error).toBeInstanceOf(EngineError);
    expect(error.message).toBe("ATLASHUB_DATABASE_URL user ext_weak is not a superuser and lacks CREATEROLE; grant them or use a superuser");
  });

  it("explains a failed connection without echoing the password", async () => {
    const error = await new ExternalEngine(withCredentials("postgres", "wrong-password-xyz")).start().catch((e) => e);
    expect(error).toBeInstanceOf(EngineError);
    expect(error.message).toMatch(/^cannot connect with ATLASHUB_DATABASE_URL \(127\.0\.0\.1:\d+\): .*password authentication failed/);
    expect(error.message).not.toContain("wrong-password-xyz");
  });
});

describe("ExternalEngine sslmode", () => {
  it("maps the URL's sslmode to the driver and rejects unknown modes", () => {
    const at = (mode: string) => new ExternalEngine(`postgres://u:p@db.invalid:5432/postgres?sslmode=${mode}`).superuser().ssl;
    expect(new ExternalEngine("postgres://u:p@db.invalid/postgres").superuser().ssl).toBeUndefined();
    expect(at("disable")).toBeUndefined();
    expect(at("require")).toBe("require");
    expect(at("verify-full")).toBe("verify-full");
    expect(() => at("bogus")).toThrow(/unknown sslmode bogus/);
  });
});

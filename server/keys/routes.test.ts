import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { randomBytes } from "node:crypto";
import { Hono } from "hono";
import type { AppContext, AppEnv } from "../context";
import { sha256Hex } from "../platform/crypto";
import { requireApiKey } from "../http/auth";
import { renderError } from "../http/errors";
import { adminHeaders, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret, waitFor } from "../test/harness";
import { deriveChecksumKey, keyPrefix, legacyChecksum, newKey, parseKey } from "./format";
import { INVALID_KEY_LIMIT } from "./service";

let server: TestServer;
let auth: Record<string, string>;
let projectA: { id: string };
let probe: ReturnType<typeof Bun.serve>;
// Queries the key middleware sent to the control plane (the real one, through a counter).
let queries = 0;

beforeAll(async () => {
  server = await startTestServer();
  auth = await adminHeaders(server);
  projectA = await createTestProject(server, auth, "keys-a");
  // A stand-in /v1 route behind the real key middleware, on a real socket: it answers with what the key
  // unlocked. It trusts X-Forwarded-For, so tests can speak from addresses of their own.
  const real = server.ctx.sql;
  const counted = ((strings: TemplateStringsArray, ...values: unknown[]) => {
    queries++;
    return real(strings, ...(values as never[]));
  }) as unknown as AppContext["sql"];
  const ctx: AppContext = { ...server.ctx, sql: counted, config: { ...server.ctx.config, trustProxy: true } };
  const v1 = new Hono<AppEnv>();
  v1.onError(renderError);
  v1.use("*", requireApiKey(ctx));
  v1.all("*", (c) => c.json(c.get("apiKey")));
  probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: v1.fetch });
});
afterAll(async () => {
  probe.stop(true);
  await server.stop();
});

async function createKey(projectId: string, kind: "publishable" | "secret", extra: Record<string, unknown> = {}) {
  const res = await server.fetch(`/admin/api/projects/${projectId}/keys`, jsonRequest("POST", { name: `${kind} key`, kind, ...extra }, auth));
  const body = await res.json();
  if (res.status !== 201) throw new Error(`${res.status} ${JSON.stringify(body)}`);
  registerSecret(body.key);
  return body;
}

const useKey = (key: string, method = "GET", header = "x-api-key", from?: string) =>
  fetch(`http://127.0.0.1:${probe.port}/v1/anything`, {
    method,
    headers: { [header]: header === "authorization" ? `Bearer ${key}` : key, ...(from ? { "x-forwarded-for": from } : {}) },
  });

/** The queries `call` made the key middleware send. */
async function queriesOf(call: () => Promise<unknown>) {
  const before = queries;
  await call();
  return queries - before;
}

/** A well-formed key with the old unkeyed checksum, as AtlasHub made keys before it was keyed. */
function legacyKey(prefix = "ah_sk_") {
  const body = randomBytes(32).toString("base64url");
  return prefix + body + legacyChecksum(prefix, body);
}

describe("API keys", () => {
  it("are shown once at creation and listed without the key", async () => {
    const created = await createKey(projectA.id, "secret");
    expect(created).toMatchObject({ name: "secret key", kind: "secret", status: "active", prefix: created.key.slice(0, 12) });
    expect(created.key).toStartWith("ah_sk_");
    const list = await (await server.fetch(`/admin/api/projects/${projectA.id}/keys`, { headers: auth })).json();
    expect(list.items.find((k: { id: string }) => k.id === created.id)).toMatchObject({ status: "active", last_used_at: null });
    expect(JSON.stringify(list)).not.toContain(created.key);
    const [stored] = await server.ctx.sql`select key_hash from api_keys where id = ${created.id}`;
    expect(stored!.key_hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("unlock their project on /v1 through x-api-key, apikey or a Bearer header, and record last use", async () => {
    const { key, id } = await createKey(projectA.id, "secret");
    for (const header of ["x-api-key", "apikey", "authorization"]) {
      const res = await useKey(key, "GET", header);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ id, projectId: projectA.id, kind: "secret" });
    }
    await waitFor("last_used_at", async () => (await server.ctx.sql`select last_used_at from api_keys where id = ${id}`)[0]!.last_used_at !== null);
  });

  it("publishable keys read but cannot write", async () => {
    const { key } = await createKey(projectA.id, "publishable");
    expect((await useKey(key, "GET")).status).toBe(200);
    for (const method of ["POST", "PATCH", "DELETE"]) {
      const res = await useKey(key, method);
      expect(res.status).toBe(403);
      expect((await res.json()).error.code).toBe("forbidden");
    }
    const secret = await createKey(projectA.id, "secret");
    expect((await useKey(secret.key, "POST")).status).toBe(200);
  });

  it("answers 401 to a missing, malformed, mistyped or unknown key", async () => {
    const { key } = await createKey(projectA.id, "secret");
    const typo = key.slice(0, 20) + (key[20] === "A" ? "B" : "A") + key.slice(21);
    for (const bad of ["", "nope", typo, newKey("secret", deriveChecksumKey(server.ctx.masterKey))]) {
      const res = await useKey(bad);
      expect(res.status).toBe(401);
      expect((await res.json()).error.code).toBe("unauthorized");
    }
  });

  it("stop working within 5 s of being revoked", async () => {
    const { key, id } = await createKey(projectA.id, "secret");
    expect((await useKey(key)).status).toBe(200);
    const res = await server.fetch(`/admin/api/projects/${projectA.id}/keys/${id}`, { method: "DELETE", headers: { ...auth, "x-request-id": "revoke-key" } });
    expect(res.status).toBe(204);
    await waitFor("the revocation to take effect", async () => (await useKey(key)).status === 401, 6_000);
    const [entry] = await server.ctx.sql`select action, details from audit_log where request_id = 'revoke-key'`;
    expect(entry).toEqual({ action: "project.key.revoke", details: { key_id: id } });
  });

  it("rotate: the new key works at once, the old one until its grace period ends", async () => {
    const old = await createKey(projectA.id, "secret");
    const rotated = await (await server.fetch(`/admin/api/projects/${projectA.id}/keys/${old.id}/rotate`, jsonRequest("POST", { grace_hours: 1 }, auth))).json();
    registerSecret(rotated.key);
    expect(rotated).toMatchObject({ kind: "secret", name: old.name, status: "active" });
    expect((await useKey(rotated.key)).status).toBe(200);
    expect((await useKey(old.key)).status).toBe(200);
    const list = await (await server.fetch(`/admin/api/projects/${projectA.id}/keys`, { headers: auth })).json();
    expect(list.items.find((k: { id: string }) => k.id === old.id)).toMatchObject({ status: "rotating", replaced_by: rotated.id });
    // The grace period ends (moved into the past here): the old key stops within the cache time.
    await server.ctx.sql`update api_keys set expires_at = now() - interval '1 second' where id = ${old.id}`;
    await waitFor("the old key to stop", async () => (await useKey(old.key)).status === 401, 6_000);
    expect((await useKey(rotated.key)).status).toBe(200);
    const again = await server.fetch(`/admin/api/projects/${projectA.id}/keys/${old.id}/rotate`, jsonRequest("POST", {}, auth));
    expect(again.status).toBe(409);
  });

  it("belong to one project: deleting it disables its keys, and other projects' keys are other projects'", async () => {
    const b = await createTestProject(server, auth, "keys-b");
    const bKey = await createKey(b.id, "secret");
    expect(await (await useKey(bKey.key)).json()).toMatchObject({ projectId: b.id });
    await server.fetch(`/admin/api/projects/${b.id}`, { method: "DELETE", headers: auth });
    await waitFor("B's key to stop", async () => (await useKey(bKey.key)).status === 401, 6_000);
    expect((await server.fetch(`/admin/api/projects/${b.id}/keys/${bKey.id}`, { method: "DELETE", headers: auth })).status).toBe(204);
    expect((await server.fetch(`/admin/api/projects/${projectA.id}/keys/${bKey.id}`, { method: "DELETE", headers: auth })).status).toBe(404);
  });

  it("validates input", async () => {
    const post = (body: unknown) => server.fetch(`/admin/api/projects/${projectA.id}/keys`, jsonRequest("POST", body, auth));
    expect((await post({ name: "x", kind: "admin" })).status).toBe(400);
    expect((await post({ name: "", kind: "secret" })).status).toBe(400);
    expect((await post({ name: "old", kind: "secret", expires_at: "2001-01-01T00:00:00Z" })).status).toBe(400);
    expect((await server.fetch(`/admin/api/projects/${projectA.id}/keys/not-a-uuid`, { method: "DELETE", headers: auth })).status).toBe(404);
    expect((await server.fetch(`/admin/api/projects/zzzzzzzzzz/keys`, { headers: auth })).status).toBe(404);
  });
});

describe("checksums and invalid keys", () => {
  it("issue keys with this installation's keyed checksum, which work at once", async () => {
    const { key, id } = await createKey(projectA.id, "secret");
    expect(parseKey(key, deriveChecksumKey(server.ctx.masterKey))).toEqual({ kind: "secret", checksum: "keyed" });
    const res = await useKey(key, "GET", "x-api-key", "198.51.100.1");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id, projectId: projectA.id });
  });

  it("refuse a made-up checksum, or a key minted with another master key, with 401 and no lookup", async () => {
    const made = "ah_sk_" + randomBytes(32).toString("base64url") + "abcdef";
    const foreign = newKey("secret", deriveChecksumKey(randomBytes(32)));
    for (const bad of [made, foreign]) {
      let res: Response | undefined;
      expect(await queriesOf(async () => (res = await useKey(bad, "GET", "x-api-key", "198.51.100.2")))).toBe(0);
      expect(res!.status).toBe(401);
      expect((await res!.json()).error.code).toBe("unauthorized");
    }
  });

  it("keep accepting a key made with the old unkeyed checksum that the database holds", async () => {
    const key = legacyKey();
    registerSecret(key);
    const [row] = await server.ctx.sql<{ id: string }[]>`
      insert into api_keys (project_id, name, kind, prefix, key_hash) values (${projectA.id}, 'made before keyed checksums', 'secret', ${keyPrefix(key)}, ${sha256Hex(key)})
      returning id`;
    const res = await useKey(key, "POST", "x-api-key", "198.51.100.3");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: row!.id, projectId: projectA.id, kind: "secret" });
  });

  it("look up an unknown key with the old checksum once, then refuse it from the negative cache without a lookup", async () => {
    const key = legacyKey();
    expect(await queriesOf(async () => expect((await useKey(key, "GET", "x-api-key", "198.51.100.4")).status).toBe(401))).toBe(1);
    expect(await queriesOf(async () => expect((await useKey(key, "GET", "x-api-key", "198.51.100.4")).status).toBe(401))).toBe(0);
  });

  it("answer 429 with Retry-After to an address sending many invalid keys, and then look none up; other addresses and valid keys go on", async () => {
    const flooder = "198.51.100.66";
    const { key: valid } = await createKey(projectA.id, "secret");
    const statuses: number[] = [];
    for (let i = 0; i < INVALID_KEY_LIMIT.burst + 5; i++) statuses.push((await useKey(newKey("secret", deriveChecksumKey(randomBytes(32))), "GET", "x-api-key", flooder)).status);
    expect(statuses.filter((s) => s === 401).length).toBeGreaterThanOrEqual(INVALID_KEY_LIMIT.burst);
    expect(statuses.at(-1)).toBe(429);
    // Keys anyone could compute the old checksum of: refused before any lookup now.
    let limited: Response | undefined;
    expect(await queriesOf(async () => (limited = await useKey(legacyKey(), "GET", "x-api-key", flooder)))).toBe(0);
    expect(limited!.status).toBe(429);
    expect(Number(limited!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(await limited!.json()).toEqual({
      error: { code: "rate_limited", message: expect.stringContaining("invalid API key"), details: { retry_after: expect.any(Number) } },
    });
    expect((await useKey(valid, "GET", "x-api-key", flooder)).status).toBe(200);
    expect((await useKey(legacyKey(), "GET", "x-api-key", "198.51.100.67")).status).toBe(401);
  });
});

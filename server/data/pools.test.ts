import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret, waitFor } from "../test/harness";
import { ApiError } from "../http/errors";
import { ProjectPools } from "./pools";

// Cap 10 backends, 5 per pool: two pools at most for three projects.
let server: TestServer;
let auth: Record<string, string>;
let ids: [string, string, string];
let keys: Record<string, string> = {};
const clients = clientTracker();
let superuser: ReturnType<typeof clients.connect>;

async function keyFor(projectId: string) {
  const res = await server.fetch(`/admin/api/projects/${projectId}/keys`, jsonRequest("POST", { name: "pools", kind: "secret" }, auth));
  const body = await res.json();
  registerSecret(body.key);
  return body.key as string;
}

/** Backends of the app roles of the given projects, as Postgres sees them. */
async function appBackends(projectIds: string[]) {
  const rows = await superuser<{ usename: string }[]>`
    select usename from pg_stat_activity where usename in ${superuser(projectIds.map((id) => `p_${id}_app`))}`;
  return rows.length;
}

const sleep = (seconds: number) => (sql: any) => sql`select pg_sleep(${seconds}) as slept`;
const one = (sql: any) => sql`select 1 as ok`;

beforeAll(async () => {
  server = await startTestServer({ ATLASHUB_MAX_PROJECT_CONNECTIONS: "10", ATLASHUB_PROJECT_POOL_MAX: "5" });
  auth = await adminHeaders(server);
  superuser = clients.connect(process.env.ATLASHUB_TEST_DATABASE_URL!);
  const created = [];
  for (const name of ["pool-a", "pool-b", "pool-c"]) created.push(await createTestProject(server, auth, name));
  ids = created.map((p) => p.id) as [string, string, string];
  for (const id of ids) keys[id] = await keyFor(id);
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

describe("ProjectPools", () => {
  it("serves three projects through /v1/db with room for two pools", async () => {
    const pools = server.ctx.pools;
    expect(pools.maxPools).toBe(2);
    let most = 0;
    const statuses: number[] = [];
    for (let round = 0; round < 5; round++) {
      const answers = await Promise.all(
        ids.flatMap((id) =>
          [1, 2, 3].map(async () => {
            const res = await server.fetch("/v1/db/tables", { headers: { "x-api-key": keys[id]! } });
            most = Math.max(most, pools.projects.length);
            return res.status;
          }),
        ),
      );
      statuses.push(...answers);
      most = Math.max(most, pools.projects.length);
      expect(await appBackends(ids)).toBeLessThanOrEqual(10);
    }
    expect(statuses).toEqual(Array(45).fill(200));
    expect(most).toBeLessThanOrEqual(2);
  });

  it("runs every statement as the app role, under its statement_timeout, in UTC", async () => {
    const [row] = await server.ctx.pools.run(ids[0], (sql) => sql`select current_user as who, current_setting('statement_timeout') as timeout, current_setting('TimeZone') as tz`);
    expect(row).toEqual({ who: `p_${ids[0]}_app`, timeout: "30s", tz: "UTC" });
  });

  it("past the cap, closes the least recently used idle pool, never a busy one", async () => {
    const pools = server.ctx.pools;
    const [a, b, c] = ids;
    await pools.run(a, one);
    const busy = pools.run(b, sleep(0.5)); // b is in flight from here on
    await waitFor("b's query to start", async () => (await superuser`select 1 from pg_stat_activity where usename = ${`p_${b}_app`} and query like '%pg_sleep%' and state = 'active'`).length > 0);
    // a was used before b, but b is busy: c takes a's place.
    expect(await pools.run(c, one)).toEqual([{ ok: 1 }]);
    expect(pools.projects.sort()).toEqual([b, c].sort());
    expect(await busy).toEqual([{ slept: "" }]);
  });

  it("queues a request past the cap while every pool is busy, then serves it", async () => {
    const pools = server.ctx.pools;
    const [a, b, c] = ids;
    await pools.run(b, one);
    await pools.run(c, one);
    const finished: string[] = [];
    const slowB = pools.run(b, sleep(0.4)).then(() => finished.push("b"));
    const slowC = pools.run(c, sleep(0.4)).then(() => finished.push("c"));
    const waiting = pools.run(a, one).then((rows) => (finished.push("a"), rows));
    expect(pools.projects).toHaveLength(2);
    expect(pools.projects).not.toContain(a);
    expect(await waiting).toEqual([{ ok: 1 }]);
    await Promise.all([slowB, slowC]);
    expect(finished[0]).not.toBe("a"); // a ran only once b or c was done
    expect(pools.projects).toContain(a);
    expect(pools.projects).toHaveLength(2);
  });

  it("answers 503 pool_busy with Retry-After when no pool goes idle in time", async () => {
    const pools = new ProjectPools(server.ctx, { maxConnections: 5, perPool: 5, waitMs: 200 });
    try {
      const [a, b] = ids;
      const busy = pools.run(a, sleep(1));
      const error = await pools.run(b, one).catch((err) => err);
      expect(error).toBeInstanceOf(ApiError);
      expect(error).toMatchObject({ status: 503, code: "pool_busy", headers: { "Retry-After": "1" } });
      await busy;
      expect(await pools.run(b, one)).toEqual([{ ok: 1 }]);
    } finally {
      await pools.closeAll();
    }
  });

  it("closes pools idle for longer than the idle time", async () => {
    const pools = new ProjectPools(server.ctx, { maxConnections: 10, perPool: 5 });
    try {
      await pools.run(ids[0], one);
      await pools.closeIdle(60_000);
      expect(pools.projects).toEqual([ids[0]]);
      await pools.closeIdle(0);
      expect(pools.projects).toEqual([]);
    } finally {
      await pools.closeAll();
    }
  });

  it("closes a project's pool at once when the project is soft-deleted", async () => {
    const p = await createTestProject(server, auth, "pool-deleted");
    const key = await keyFor(p.id);
    expect((await server.fetch("/v1/db/tables", { headers: { "x-api-key": key } })).status).toBe(200);
    expect(server.ctx.pools.projects).toContain(p.id);
    expect(await appBackends([p.id])).toBeGreaterThan(0);

    const res = await server.fetch(`/admin/api/projects/${p.id}`, { method: "DELETE", headers: auth });
    expect(res.status).toBe(200);
    expect(server.ctx.pools.projects).not.toContain(p.id);
    await waitFor("the app role's backends to go", async () => (await appBackends([p.id])) === 0);
    // The key's cached verification went with the pool.
    expect((await server.fetch("/v1/db/tables", { headers: { "x-api-key": key } })).status).toBe(401);
    expect(server.ctx.pools.projects).not.toContain(p.id);
  });

  it("answers 503 database_unavailable, never 500, when another instance's delete closed the database", async () => {
    const p = await createTestProject(server, auth, "pool-elsewhere");
    const elsewhere = new ProjectPools(server.ctx, { maxConnections: 5, perPool: 5 });
    try {
      expect(await elsewhere.run(p.id, one)).toEqual([{ ok: 1 }]);
      expect((await server.fetch(`/admin/api/projects/${p.id}`, { method: "DELETE", headers: auth })).status).toBe(200);
      // The first query may meet the connection the delete ended, the next a database refusing connections.
      for (let i = 0; i < 2; i++) {
        const error = await elsewhere.run(p.id, one).catch((err) => err);
        expect(error).toMatchObject({ status: 503, code: "database_unavailable" });
      }
    } finally {
      await elsewhere.closeAll();
    }
  });
});

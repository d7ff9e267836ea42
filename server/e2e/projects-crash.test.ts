// kill -9 at every step of project creation, deletion, restore and purge: after a restart the
// reconciler leaves every project in a final state and no orphan database or role behind.
// Uses the compiled binary (ATLASHUB_TEST_CRASH_AT makes it SIGKILL itself at a named point).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import postgres from "postgres";
import { registerSecret, waitFor } from "../test/harness";
import { spawnAtlasHub, stopAtlasHubsAfterTests } from "../test/binary";
import { binaryTestSetup } from "../test/binaryProject";

stopAtlasHubsAfterTests();

const { env, dataDir, url, ...setup } = binaryTestSetup("crash");
const cluster = setup.cluster(2);
let control: postgres.Sql;
let headers: Record<string, string>;

beforeAll(async () => {
  const first = spawnAtlasHub({ dataDir, env, lifetime: "file" });
  await first.waitHealthy(200, 30_000);
  expect(await first.stop()).toBe(0);
  control = setup.controlPlane(2);
  headers = await setup.adminHeaders(control);
});
afterAll(async () => {
  await control?.end();
  await cluster.end();
});

/** Starts atlashub set to die at `point`, makes the request that reaches it, and waits for the SIGKILL. */
async function crashDuring(point: string, method: string, path: string, body?: unknown) {
  const doomed = spawnAtlasHub({ dataDir, env: { ...env, ATLASHUB_TEST_CRASH_AT: point } });
  await doomed.waitHealthy(200, 30_000);
  await fetch(url(path), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }).catch(() => {});
  expect(await doomed.exited).toBe(137);
}

/** Restarts atlashub and waits until its reconciler has brought every project to a final state. */
async function restartAndSettle() {
  const hub = spawnAtlasHub({ dataDir, env });
  await hub.waitHealthy(200, 30_000);
  await waitFor("every project in a final state", async () => {
    const rows = await control`select status from projects where status not in ('ready', 'failed', 'deleted', 'purged')`;
    return rows.length === 0;
  }, 30_000);
  return hub;
}

/** Exactly the databases and roles the control plane says should exist, for every project it knows. */
async function expectNoOrphans() {
  for (const p of await control<{ id: string; status: string }[]>`select id, status from projects`) {
    const dbs = await cluster`select datname from pg_database where datname = ${`p_${p.id}`}`;
    const roles = await cluster`select rolname from pg_roles where rolname like ${`p\\_${p.id}\\_%`} order by 1`;
    const present = p.status === "purged" ? [] : [`p_${p.id}_app`, `p_${p.id}_owner`, `p_${p.id}_ro`];
    expect({ id: p.id, status: p.status, dbs: dbs.length, roles: roles.map((r) => r.rolname) }).toEqual({
      id: p.id,
      status: p.status,
      dbs: present.length ? 1 : 0,
      roles: present,
    });
  }
}

async function projectNamed(name: string) {
  const [p] = await control<{ id: string; status: string }[]>`select id, status from projects where name = ${name} and status <> 'purged'`;
  return p;
}

async function createdProject(name: string) {
  const res = await fetch(url("/admin/api/projects"), { method: "POST", headers, body: JSON.stringify({ name }) });
  expect(res.status).toBe(201);
  const body = await res.json();
  for (const c of Object.values(body.credentials) as { password: string }[]) registerSecret(c.password);
  return body;
}

describe("kill -9 during project creation", () => {
  for (const point of ["created", "after:pending", "during:creating_roles", "after:creating_roles", "after:creating_db", "after:configuring"]) {
    it(`at ${point}: the restarted reconciler finishes the project`, async () => {
      const name = `crash-${point.replace(/[^a-z]/g, "").slice(0, 30)}`;
      await crashDuring(point, "POST", "/admin/api/projects", { name });
      const hub = await restartAndSettle();
      expect((await projectNamed(name))?.status).toBe("ready");
      await expectNoOrphans();
      // The reconciler writes its audit entry right after the project reached its final state.
      const id = (await projectNamed(name))!.id;
      await waitFor("the reconcile audit entry", async () => (await control`select 1 from audit_log where action = 'project.reconcile' and target_id = ${id}`).length === 1);
      await hub.stop();
    }, 60_000);
  }
});

async function createdProjectAfterRestart(name: string) {
  const hub = await restartAndSettle();
  const p = await createdProject(name);
  await hub.stop();
  return p;
}

describe("kill -9 during delete, restore and purge", () => {
  it("finishes each of them after a restart", async () => {
    const hub = await restartAndSettle();
    const p = await createdProject("crash-lifecycle");
    await hub.stop();

    await crashDuring("after:deleting", "DELETE", `/admin/api/projects/${p.id}`);
    await (await restartAndSettle()).stop();
    expect((await projectNamed("crash-lifecycle"))?.status).toBe("deleted");
    await expectNoOrphans();

    await crashDuring("after:restoring", "POST", `/admin/api/projects/${p.id}/restore`);
    const afterRestore = await restartAndSettle();
    expect((await projectNamed("crash-lifecycle"))?.status).toBe("ready");
    const app = postgres(p.credentials.app.connection_string, { max: 1, onnotice: () => {} });
    expect(await app`select 1 as ok`).toEqual([{ ok: 1 }]);
    await app.end();
    await afterRestore.stop();

    await crashDuring("during:purging", "DELETE", `/admin/api/projects/${p.id}?purge=true`, { confirm: "crash-lifecycle" });
    const midPurge = await restartAndSettle();
    expect((await control`select status from projects where id = ${p.id}`)[0]!.status).toBe("purged");
    await expectNoOrphans();
    await midPurge.stop();

    const q = await createdProjectAfterRestart("crash-purge-end");
    await crashDuring("after:purging", "DELETE", `/admin/api/projects/${q.id}?purge=true`, { confirm: "crash-purge-end" });
    await (await restartAndSettle()).stop();
    const [row] = await control`select status from projects where id = ${q.id}`;
    expect(row!.status).toBe("purged");
    await expectNoOrphans();
  }, 120_000);
});

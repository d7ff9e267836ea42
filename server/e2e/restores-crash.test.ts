// kill -9 at every step of a replace restore and of its rollback: after a restart the reconciler
// leaves the project with exactly one live database — the old one (restore cut short while
// restoring) or the restored one (cut short while swapping) — never neither, and no stray database;
// and the project's files are all the old ones or all the backup's, never a mix.
// Uses the compiled binary (ATLASHUB_TEST_CRASH_AT makes it SIGKILL itself at a named point).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import postgres from "postgres";
import { registerSecret, waitFor } from "../test/harness";
import { spawnAtlasHub, stopAtlasHubsAfterTests } from "../test/binary";
import { binaryTestSetup } from "../test/binaryProject";

stopAtlasHubsAfterTests();

const { env, dataDir, url, ...setup } = binaryTestSetup("restore-crash", { ATLASHUB_BACKUP_VERIFY: "false" });
const cluster = setup.cluster(2);
let control: postgres.Sql;
let headers: Record<string, string>;
let project: { id: string };
let backupId: string;

beforeAll(async () => {
  const first = spawnAtlasHub({ dataDir, env, lifetime: "file" });
  await first.waitHealthy(200, 30_000);
  control = setup.controlPlane(2);
  headers = await setup.adminHeaders(control);
  const created = await setup.post("/admin/api/projects", headers, { name: "crash-restores" });
  for (const c of Object.values(created.credentials) as { password: string }[]) registerSecret(c.password);
  project = created;
  await inProject(async (sql) => {
    await sql`create table marker (v text)`;
    await sql`insert into marker values ('backup')`;
  });
  await setFiles("backup");
  const backup = await setup.post(`/admin/api/projects/${project.id}/backups`, headers, {});
  backupId = backup.id;
  await waitFor("the backup", async () => (await control`select status from backups where id = ${backupId}`)[0]!.status === "completed", 30_000);
  expect(await first.stop()).toBe(0);
});
afterAll(async () => {
  await control?.end();
  await cluster.end();
});

/** A superuser session in the project's database (fails while it refuses connections). */
async function inProject<T>(use: (sql: postgres.Sql) => Promise<T>) {
  const sql = postgres(process.env.ATLASHUB_TEST_DATABASE_URL!, { database: `p_${project.id}`, max: 1, onnotice: () => {} });
  try {
    return await use(sql);
  } finally {
    await sql.end();
  }
}

const marker = () => inProject(async (sql) => (await sql`select v from marker`)[0]!.v as string);

const objectPath = (key: string) => url(`/admin/api/projects/${project.id}/storage/buckets/uploads/objects/${key}`);

/** The project's files as of `state` (a running AtlasHub needed): a.txt and b.txt say it, c-<state>.txt exists only then. */
async function setFiles(state: string) {
  for (const { key } of await control<{ key: string }[]>`select key from storage_objects where project_id = ${project.id}`) {
    expect((await fetch(objectPath(key), { method: "DELETE", headers })).status).toBe(204);
  }
  for (const key of ["a.txt", "b.txt", `c-${state}.txt`]) {
    const res = await fetch(objectPath(key), { method: "PUT", headers: { ...headers, "content-type": "text/plain" }, body: `${key} ${state}` });
    expect(res.status).toBe(200);
  }
}

/** The files as a running AtlasHub serves them, as setFiles wrote them: the state, or a mix. */
async function filesState() {
  const keys = (await control<{ key: string }[]>`select key from storage_objects where project_id = ${project.id} order by key`).map((r) => r.key);
  const said = new Set<string>();
  for (const key of keys) said.add((await (await fetch(objectPath(key), { headers })).text()).split(" ")[1]!);
  const state = [...said].join(" and ");
  return keys.join(",") === `a.txt,b.txt,c-${state}.txt` ? state : `a mix: ${keys.join(",")} saying ${state}`;
}

async function crashDuring(point: string, method: string, path: string, body?: unknown, before?: () => Promise<unknown>) {
  const doomed = spawnAtlasHub({ dataDir, env: { ...env, ATLASHUB_TEST_CRASH_AT: point } });
  await doomed.waitHealthy(200, 30_000);
  await before?.();
  const res = await fetch(url(path), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }).catch(() => undefined);
  expect(await doomed.exited).toBe(137);
  return res && res.status === 202 ? ((await res.json()) as { id: string }) : undefined;
}

/** Restarts and waits until no restore is left unfinished. */
async function restartAndSettle() {
  const hub = spawnAtlasHub({ dataDir, env });
  await hub.waitHealthy(200, 30_000);
  await waitFor("every restore in a final state", async () => {
    const open = await control`select 1 from restores where status in ('restoring', 'swapping', 'rolling_back') or (status = 'rolled_back' and old_dropped_at is null)`;
    return open.length === 0;
  }, 30_000);
  return hub;
}

/**
 * The project's database is live (accepts connections), and the only other databases of this
 * control plane's restores are the kept ones. (The cluster is shared with the rest of the suite,
 * whose own restore databases are not this test's business.)
 */
async function expectOneLiveDatabase() {
  const [live] = await cluster`select datallowconn from pg_database where datname = ${`p_${project.id}`}`;
  expect(live).toEqual({ datallowconn: true });
  const restores = (await control<{ id: string }[]>`select id from restores`).map((r) => r.id.replaceAll("-", ""));
  const others = (await cluster<{ datname: string }[]>`select datname from pg_database where datname ~ '^ah_(restore|prev|undone)_' order by 1`)
    .map((d) => d.datname)
    .filter((name) => restores.some((id) => name.endsWith(id)));
  const kept = await control<{ id: string }[]>`select id from restores where status = 'finished' and old_dropped_at is null`;
  expect(others.filter((n) => kept.every((k) => !n.endsWith(k.id.replaceAll("-", ""))))).toEqual([]);
  for (const k of kept) expect(others).toContain(`ah_prev_${k.id.replaceAll("-", "")}`);
}

const restorePath = () => `/admin/api/projects/${project.id}/backups/${backupId}/restore`;
const replace = { mode: "replace", confirm: "crash-restores" };

describe("kill -9 during a replace restore", () => {
  for (const point of ["restore:during-fill", "restore:after-fill", "restore:files-saved", "restore:during-files", "restore:files-applied"]) {
    it(`at ${point}: the restore fails and the live database and files are the old ones`, async () => {
      await inProject((sql) => sql`update marker set v = 'live'`);
      const started = await crashDuring(point, "POST", restorePath(), replace, () => setFiles("live"));
      const hub = await restartAndSettle();
      const [row] = await control`select status, failure_reason from restores where id = ${started!.id}`;
      expect(row).toEqual({ status: "failed", failure_reason: "The AtlasHub process restoring stopped before it finished; the live database was not touched." });
      expect(await marker()).toBe("live");
      expect(await filesState()).toBe("live");
      await expectOneLiveDatabase();
      await hub.stop();
    }, 90_000);
  }

  for (const point of ["restore:before-swap", "restore:live-closed", "restore:after-swap"]) {
    it(`at ${point}: the swap is carried through and the restored database and files are live`, async () => {
      await inProject((sql) => sql`update marker set v = 'live'`);
      const started = await crashDuring(point, "POST", restorePath(), replace, () => setFiles("live"));
      const hub = await restartAndSettle();
      const [row] = await control`select status from restores where id = ${started!.id}`;
      expect(row!.status).toBe("finished");
      expect(await marker()).toBe("backup");
      expect(await filesState()).toBe("backup");
      await expectOneLiveDatabase();
      await hub.stop();
    }, 90_000);
  }
});

describe("kill -9 during a rollback", () => {
  for (const point of ["restore:during-files", "rollback:files-back", "rollback:live-closed", "restore:after-rollback"]) {
    it(`at ${point}: the rollback is carried through and the replaced database and files are live again`, async () => {
      let hub = await restartAndSettle();
      await inProject((sql) => sql`update marker set v = 'before restore'`);
      await setFiles("before");
      const started = await setup.post(restorePath(), headers, replace);
      await waitFor("the restore", async () => (await control`select status from restores where id = ${started.id}`)[0]!.status === "finished", 30_000);
      expect(await marker()).toBe("backup");
      expect(await filesState()).toBe("backup");
      await hub.stop();
      await crashDuring(point, "POST", `/admin/api/projects/${project.id}/restore/rollback`);
      hub = await restartAndSettle();
      const [row] = await control`select status, old_dropped_at is not null as dropped from restores where id = ${started.id}`;
      expect(row).toEqual({ status: "rolled_back", dropped: true });
      expect(await marker()).toBe("before restore");
      expect(await filesState()).toBe("before");
      await expectOneLiveDatabase();
      await hub.stop();
    }, 90_000);
  }
});

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { adminHeaders, clientTracker, createTestProject, startTestServer, type TestServer } from "../test/server";
import { registerSecret, waitFor } from "../test/harness";
import { startHttpTarget } from "../test/httpTarget";
import { toldReason } from "./notify";

const HOOK = "/hooks/backups-token-5a4b3c2d1e";
let target: ReturnType<typeof startHttpTarget>;
let server: TestServer;
let auth: Record<string, string>;
const clients = clientTracker();

beforeAll(async () => {
  target = startHttpTarget();
  registerSecret(`${target.url}${HOOK}`);
  server = await startTestServer({ ATLASHUB_JOB_NOTIFY_URL: `${target.url}${HOOK}`, ATLASHUB_JOB_ALLOW_HOSTS: "127.0.0.1", ATLASHUB_SCHEDULER: "false" });
  auth = await adminHeaders(server);
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
  target.stop();
});

/** The notifications about one backup, as posted to the webhook. */
const notificationsOf = (backupId: string) =>
  target
    .hits(HOOK)
    .map((h) => JSON.parse(h.body))
    .filter((n) => n.run.id === backupId);

async function api(method: string, path: string) {
  const res = await server.fetch(`/admin/api/projects${path}`, { method, headers: auth });
  return { status: res.status, body: (await res.json()) as any };
}

describe("ATLASHUB_JOB_NOTIFY_URL and backups that are not scheduled", () => {
  it("is told when a manual backup fails", async () => {
    const project = await createTestProject(server, auth, "notify-manual");
    // The project's database vanishes behind AtlasHub's back: pg_dump has nothing to dump.
    const su = clients.connect(process.env.ATLASHUB_TEST_DATABASE_URL!);
    await su.unsafe(`drop database p_${project.id} with (force)`);
    const started = await api("POST", `/${project.id}/backups`);
    expect(started.status).toBe(202);
    await server.ctx.backups.settled(started.body.id);
    const backup = await api("GET", `/${project.id}/backups/${started.body.id}`);
    expect(backup.body.status).toBe("failed");
    const [sent] = await waitFor("the notification", () => notificationsOf(started.body.id).length > 0 && notificationsOf(started.body.id));
    expect(sent).toMatchObject({ event: "job.run.finished", job: { id: "", name: "backups/manual", project_id: project.id }, run: { status: "failed" } });
    expect(sent.run.error).toStartWith("the manual backup of notify-manual failed: ");
    expect(sent.run.error).toContain(backup.body.failure_reason);
  }, 60_000);

  it("is told when a manual backup does not pass verification", async () => {
    const project = await createTestProject(server, auth, "notify-verify");
    const owner = clients.connect(project.credentials.owner.connection_string);
    await owner`create table items (id int primary key)`;
    await owner`insert into items select generate_series(1, 10)`;
    const started = await api("POST", `/${project.id}/backups`);
    await server.ctx.backups.settled(started.body.id);
    expect((await api("GET", `/${project.id}/backups/${started.body.id}`)).body.status).toBe("verified");
    expect(notificationsOf(started.body.id)).toEqual([]);
    // The manifest now claims another row count than the dump holds: verifying again must fail.
    await server.ctx.sql`update backups set manifest = jsonb_set(manifest, '{database,tables,0,rows}', '11') where id = ${started.body.id}`;
    expect((await api("POST", `/${project.id}/backups/${started.body.id}/verify`)).status).toBe(202);
    await server.ctx.backups.settled(started.body.id);
    const backup = await api("GET", `/${project.id}/backups/${started.body.id}`);
    expect(backup.body.verify_error).toContain("items");
    const [sent] = await waitFor("the notification", () => notificationsOf(started.body.id).length > 0 && notificationsOf(started.body.id));
    expect(sent.job.name).toBe("backups/manual");
    expect(sent.run.error).toBe(`the manual backup of notify-verify did not pass verification: ${backup.body.verify_error}`);
  }, 60_000);

  it("is not sent the tenant's rows or statements that pg_restore quotes when a verification fails (the backup keeps them)", async () => {
    const project = await createTestProject(server, auth, "notify-quoted");
    const owner = clients.connect(project.credentials.owner.connection_string);
    // A CHECK calling a function that reads another table: pg_restore loads "a_tokens" before "b_users",
    // so the restore fails on a row of a_tokens, which Postgres quotes in full in its CONTEXT line.
    await owner`create table b_users (id int primary key)`;
    await owner`create function user_exists(int) returns boolean language sql as 'select exists (select 1 from public.b_users where id = $1)'`;
    await owner`create table a_tokens (user_id int check (public.user_exists(user_id)), token text)`;
    await owner`insert into b_users values (1)`;
    await owner`insert into a_tokens values (1, 'tok_live_5f2a9c0d1e')`;
    const started = await api("POST", `/${project.id}/backups`);
    await server.ctx.backups.settled(started.body.id);
    const backup = await api("GET", `/${project.id}/backups/${started.body.id}`);
    expect(backup.body.verify_error).toContain("tok_live_5f2a9c0d1e");
    const [sent] = await waitFor("the notification", () => notificationsOf(started.body.id).length > 0 && notificationsOf(started.body.id));
    expect(sent.run.error).toStartWith("the manual backup of notify-quoted did not pass verification: ");
    expect(sent.run.error).toContain("a_tokens");
    expect(sent.run.error).not.toContain("tok_live_5f2a9c0d1e");
    expect(sent.text).not.toContain("tok_live_5f2a9c0d1e");
  }, 60_000);

  it("is told when an uploaded dump is refused", async () => {
    const project = await createTestProject(server, auth, "notify-upload");
    const res = await server.fetch(`/admin/api/projects/${project.id}/backups/upload`, { method: "PUT", headers: auth, body: new Uint8Array([0x50, 0x47, 0x44, 0x4d, 0x50, 1, 2, 3]) });
    expect(res.status).toBe(422);
    const [row] = await server.ctx.sql<{ id: string }[]>`select id from backups where project_id = ${project.id} and trigger = 'upload' and status = 'failed'`;
    const [sent] = await waitFor("the notification", () => notificationsOf(row!.id).length > 0 && notificationsOf(row!.id));
    expect(sent.job.name).toBe("backups/upload");
    expect(sent.run.error).toStartWith("the uploaded backup of notify-upload failed: the upload was refused: ");
  });
});

describe("toldReason", () => {
  it("keeps the tools' and Postgres' own messages and leaves out the rows, keys and statements they quote", () => {
    const plain = 'pg_dump exited with code 1: pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  database "p_x" does not exist';
    expect(toldReason(plain)).toBe(plain);
    expect(toldReason("items: 10 rows, expected 11")).toBe("items: 10 rows, expected 11");
    expect(
      toldReason('pg_restore failed: pg_restore: error: could not execute query: ERROR:  user mapping for "public" already exists | pg_restore: detail: Command was: CREATE USER MAPPING FOR public SERVER s OPTIONS (password \'hunter2\');'),
    ).toBe('pg_restore failed: pg_restore: error: could not execute query: ERROR:  user mapping for "public" already exists | … (the rest is in the backup\'s failure_reason or verify_error)');
    // The tail began inside a long statement: its lines are not the tool's.
    expect(toldReason("pg_restore failed: $$ select 'sk_live_1' $$; | Command was: CREATE FUNCTION f() | LANGUAGE sql")).toBe(
      "pg_restore failed: … (the rest is in the backup's failure_reason or verify_error)",
    );
    expect(toldReason('the script failed at line 12: duplicate key value violates unique constraint "u_email" (Key (email)=(ada@example.com) already exists.)')).toBe(
      'the script failed at line 12: duplicate key value violates unique constraint "u_email" (Key (email)=(…) already exists.) | … (the rest is in the backup\'s failure_reason or verify_error)',
    );
    expect(toldReason('the script failed at line 3: new row for relation "t" violates check constraint "c" (Failing row contains (1, secret).)')).not.toContain("secret");
  });
});

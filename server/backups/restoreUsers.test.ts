import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret } from "../test/harness";

let server: TestServer;
let auth: Record<string, string>;
const clients = clientTracker();

beforeAll(async () => {
  server = await startTestServer({ ATLASHUB_BACKUP_VERIFY: "false" });
  auth = await adminHeaders(server);
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

async function call(method: string, path: string, body?: unknown) {
  const res = await server.fetch(`/admin/api/projects${path}`, body === undefined ? { method, headers: auth } : jsonRequest(method, body, auth));
  const json = (await res.json()) as any;
  if (json?.password) registerSecret(json.password);
  return { status: res.status, body: json };
}

describe("a new_project restore and the source project's database users", () => {
  it("gives the new project none of them: their grants are left out, its own roles get the project's standard grants, and they cannot connect", async () => {
    const source = await createTestProject(server, auth, "users-source");
    const reader = (await call("POST", `/${source.id}/users`, { username: "reader", access: "read" })).body;
    const owner = clients.connect(source.credentials.owner.connection_string);
    await owner`create table notes (id int primary key, body text)`;
    await owner`insert into notes values (1, 'x')`;
    await owner.unsafe(`
      grant select on notes to ${reader.role_name};
      alter table notes enable row level security;
      create policy readers on notes for select to ${reader.role_name} using (true);
      create policy app_all on notes to p_${source.id}_app using (true)`);
    const backup = (await call("POST", `/${source.id}/backups`)).body;
    await server.ctx.backups.settled(backup.id);

    const started = await call("POST", `/${source.id}/backups/${backup.id}/restore`, { mode: "new_project", confirm: "users-source", name: "users-copy" });
    expect(started.status).toBe(202);
    for (const c of Object.values(started.body.project.credentials) as { password: string }[]) registerSecret(c.password);
    await server.ctx.backups.settled(started.body.id);
    const copyId: string = started.body.project.id;
    expect((await call("GET", `/${copyId}/restores/${started.body.id}`)).body).toMatchObject({ status: "finished", failure_reason: null });

    expect((await call("GET", `/${copyId}/users`)).body.items).toEqual([]);
    const copy = clients.connect(started.body.project.credentials.owner.connection_string);
    const [acl] = await copy`select relacl::text[] as acl from pg_class where relname = 'notes'`;
    expect(acl!.acl).toEqual([`p_${copyId}_owner=arwdDxt/p_${copyId}_owner`, `p_${copyId}_app=arwd/p_${copyId}_owner`, `p_${copyId}_ro=r/p_${copyId}_owner`]);
    // A policy naming the source's owner/app/ro names the new project's; one naming a database user
    // keeps that role's name: a role of the old project, which cannot connect to this database.
    expect(await copy`select polname, polroles::regrole[]::text[] as roles from pg_policy order by polname`).toEqual([
      { polname: "app_all", roles: [`p_${copyId}_app`] },
      { polname: "readers", roles: [reader.role_name] },
    ]);
    const intoCopy = new URL(reader.connection_string);
    intoCopy.pathname = `/p_${copyId}`;
    const stranger = clients.connect(intoCopy.toString());
    expect((await stranger`select 1`.catch((e) => e)).code).toBe("42501");
  }, 60_000);
});

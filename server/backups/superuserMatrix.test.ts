// Every superuser statement of the inventory (docs/OPERATIONS.md, "Security: the tenant boundary")
// run against a database where the tenant has replaced all it can: functions in public named like
// each system function AtlasHub calls, an operator ||, a view, policies, defaults, checks and index
// expressions calling its code, a table under FORCE ROW LEVEL SECURITY and one the owner cannot
// read. Each trap tries COPY … TO PROGRAM, which only the superuser may: a marker file would say the
// superuser ran it. Exercised: a backup and its verification, a replace and a new-project restore
// (with the grants made again after them), an import and an export, the hardening of old projects.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { chmodSync } from "node:fs";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret, tempDir } from "../test/harness";
import { backupOf } from "../test/backups";
import { hardenProject } from "../projects/provision";

let server: TestServer;
let auth: Record<string, string>;
let project: any;
const clients = clientTracker();
const markers = tempDir("matrix-markers");
chmodSync(markers, 0o777);

// System functions AtlasHub's superuser sessions call, as a tenant would shadow them in public.
const SHADOWS: [name: string, args: string, returns: string][] = [
  ["md5", "text", "text"],
  ["substr", "text, integer, integer", "text"],
  ["textcat", "text, text", "text"],
  ["format", "text, text, text", "text"],
  ["to_regclass", "text", "regclass"],
  ["has_table_privilege", "oid, text", "boolean"],
  ["has_sequence_privilege", "oid, text", "boolean"],
  ["row_security_active", "oid", "boolean"],
  ["pg_export_snapshot", "", "text"],
  ["pg_terminate_backend", "integer, bigint", "boolean"],
  ["lo_creat", "integer", "oid"],
  ["lo_import", "text", "oid"],
  ["current_setting", "text", "text"],
  ["quote_literal", "text", "text"],
];

const traps = () => `
  create function public.trap(what text) returns boolean language plpgsql volatile as $$
  begin
    begin
      execute pg_catalog.format('copy (select 1) to program %L', 'touch ${markers}/' || what || '-as-' || current_user);
    exception when others then null;
    end;
    return true;
  end $$;
  create function public.trap_immutable(x int) returns int language plpgsql immutable as $$ begin perform public.trap('index'); return x; end $$;
  ${SHADOWS.map(([name, args, returns]) => `create function public.${name}(${args}) returns ${returns} language plpgsql as $$ begin perform public.trap('${name}'); return null; end $$;`).join("\n")}
  create function public.trap_concat(a text, b text) returns text language plpgsql as $$ begin perform public.trap('operator'); return a; end $$;
  create operator public.|| (leftarg = text, rightarg = text, function = public.trap_concat);
  create table public.guarded (id int primary key, note text default (case when public.trap('default') then 'd' end) check (public.trap('check')));
  insert into public.guarded values (1, 'a'), (2, 'b');
  create index on public.guarded (public.trap_immutable(id));
  alter table public.guarded enable row level security;
  alter table public.guarded force row level security;
  create policy everyone on public.guarded using (public.trap('policy'));
  create table public.unreadable (id int);
  insert into public.unreadable values (1);
  revoke all on public.unreadable from current_user;
  create view public.looks_like_a_table as select public.trap('view') as x;
  create table public.target (id int primary key, note text);
  create trigger t before insert on public.target for each row execute function public.trap_trigger();
`;

beforeAll(async () => {
  server = await startTestServer({ ATLASHUB_BACKUP_VERIFY: "true" });
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "matrix");
  const owner = clients.connect(project.credentials.owner.connection_string);
  await owner.unsafe(`create function public.trap_trigger() returns trigger language plpgsql as $$ begin return new; end $$;`);
  await owner.unsafe(traps());
  // The trigger calls the trap too (defined after trap exists).
  await owner.unsafe(`create or replace function public.trap_trigger() returns trigger language plpgsql as $$ begin perform public.trap('trigger'); return new; end $$;`);
});
afterAll(async () => {
  await clients.endAll();
  await server.stop();
});

const markersLeft = () => Array.fromAsync(new Bun.Glob("*").scan(markers));

async function settle(res: Response) {
  const body = (await res.json()) as any;
  if (body.id) await server.ctx.backups.settled(body.id);
  if (body.project?.credentials) for (const c of Object.values(body.project.credentials) as { password: string }[]) registerSecret(c.password);
  return { status: res.status, body };
}

describe("the superuser's statements against a tenant that replaced everything it can", () => {
  let backupId: string;

  it("a backup and its verification run none of the tenant's code as the superuser", async () => {
    const { status, body } = await settle(await server.fetch(`/admin/api/projects/${project.id}/backups`, { method: "POST", headers: auth }));
    expect(status).toBe(202);
    backupId = body.id;
    const backup = await backupOf(server, auth, project.id, backupId);
    expect(backup.status).toBe("verified");
    // The table under FORCE RLS and the one the owner may not read are described too (by the superuser, without running a policy).
    const tables = backup.manifest?.database?.tables ?? [];
    if (tables.length) expect(tables.find((t: any) => t.table === "guarded")?.rows).toBe(2);
    expect(await markersLeft()).toEqual([]);
  }, 120_000);

  it("a replace restore and a new-project restore (with their grants made again) run none of it as the superuser", async () => {
    const replaced = await settle(await server.fetch(`/admin/api/projects/${project.id}/backups/${backupId}/restore`, jsonRequest("POST", { mode: "replace", confirm: "matrix" }, auth)));
    expect(replaced.status).toBe(202);
    const copy = await settle(await server.fetch(`/admin/api/projects/${project.id}/backups/${backupId}/restore`, jsonRequest("POST", { mode: "new_project", confirm: "matrix", name: "matrix-copy" }, auth)));
    expect(copy.status).toBe(202);
    for (const [pid, id] of [[project.id, replaced.body.id], [copy.body.project.id, copy.body.id]]) {
      const done = (await (await server.fetch(`/admin/api/projects/${pid}/restores/${id}`, { headers: auth })).json()) as any;
      expect(done.status).toBe("finished");
    }
    expect(await markersLeft()).toEqual([]);
  }, 120_000);

  it("an import, an export and the hardening of an old project run none of it as the superuser", async () => {
    const imported = await server.fetch(`/admin/api/projects/${project.id}/tables/target/import`, { method: "POST", headers: { ...auth, "content-type": "text/csv" }, body: "id,note\n1,x\n2,y\n" });
    expect(imported.status).toBe(200);
    const exported = await server.fetch(`/admin/api/projects/${project.id}/tables/target/export?format=json&note=eq.x`, { headers: auth });
    expect(exported.status).toBe(200);
    await exported.text();
    await server.ctx.sql`update projects set hardening = 0 where id = ${project.id}`;
    expect(await hardenProject(server.ctx, project.id)).toBe(true);
    expect(await markersLeft()).toEqual([]);
  }, 120_000);

  it("the traps do fire for the superuser (so the markers prove something)", async () => {
    const { default: postgres } = await import("postgres");
    const su = postgres({ ...server.ctx.engine.superuser(), database: `p_${project.id}`, max: 1, onnotice: () => {} });
    try {
      await su`select public.trap('control')`;
    } finally {
      await su.end();
    }
    const left = await markersLeft();
    expect(left).toHaveLength(1);
    expect(left[0]).toStartWith("control-as-");
  });
});

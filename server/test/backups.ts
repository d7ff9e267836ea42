// What the backup tests share: dumps made with the cluster's own pg_dump, and uploads of them.
import { expect } from "bun:test";
import { pgToolsFor } from "../backups/pgTools";
import type { TestServer } from "./server";

/** pg_dump of `database` (as the cluster's superuser) into `file`, in pg_dump's `format` (custom or plain). */
export async function pgDumpFile(server: TestServer, database: string, file: string, format: "custom" | "plain") {
  const tools = await pgToolsFor(server.ctx);
  const su = server.ctx.engine.superuser();
  const out = Bun.spawnSync([tools.pgDump, `--format=${format}`, `--file=${file}`, database], {
    env: { PATH: process.env.PATH!, PGHOST: su.host, PGPORT: String(su.port), PGUSER: su.user, PGPASSWORD: su.password },
  });
  expect(out.exitCode).toBe(0);
}

/** The test cluster's superuser connection (ATLASHUB_TEST_DATABASE_URL) to another of its databases. */
export function superuserTo(database: string) {
  const u = new URL(process.env.ATLASHUB_TEST_DATABASE_URL!);
  return { host: u.hostname, port: Number(u.port), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password), database };
}

/** Uploads a dump as the admin and, once accepted, waits until its verification has settled. */
export async function uploadDump(server: TestServer, auth: Record<string, string>, projectId: string, body: RequestInit["body"]) {
  const res = await server.fetch(`/admin/api/projects/${projectId}/backups/upload`, { method: "PUT", headers: { ...auth, "content-type": "application/octet-stream" }, body });
  const json = (await res.json()) as any;
  if (res.status === 201) await server.ctx.backups.settled(json.id);
  return { status: res.status, body: json };
}

/** A backup as the admin API shows it. */
export async function backupOf(server: TestServer, auth: Record<string, string>, projectId: string, id: string) {
  const res = await server.fetch(`/admin/api/projects/${projectId}/backups/${id}`, { headers: auth });
  return (await res.json()) as any;
}

// `atlashub project …`: the admin API's project operations from the command line, for scripts on
// the server itself. Talks to the control plane directly (attaching to a running serve's Postgres).
import type { AppContext } from "../context";
import { recordAudit } from "../platform/audit";
import type { Db } from "../platform/db";
import * as projects from "./service";

export const projectUsage = `Usage: atlashub project <subcommand> [args] [flags]

  create NAME [--description TEXT]   provision a project; prints it with its credentials (shown once)
  list [--status STATUS]             projects, newest first
  show ID                            one project
  delete ID                          soft delete (restorable for ATLASHUB_DELETED_RETENTION)
  restore ID                         undo a soft delete
  purge ID --confirm NAME            drop the database and roles for good

Output is JSON, except for list. Settings flags (--data-dir …) as for serve.`;

export const projectFlags = ["--description", "--status", "--confirm"] as const;

export async function runProjectCommand(ctx: AppContext, sub: string, arg: string | undefined, flags: Partial<Record<(typeof projectFlags)[number], string>>) {
  const record = (action: string) => (db: Db, p: projects.ProjectRow) =>
    recordAudit(db, { actor: { type: "cli", label: `atlashub project ${sub}` }, action, target: { type: "project", id: p.id }, details: { name: p.name } });
  const show = (p: projects.ProjectRow) => JSON.stringify(projects.presentProject(ctx, p), null, 2);

  switch (sub) {
    case "create": {
      const input = projects.createProjectSchema.parse({ name: arg, description: flags["--description"] });
      const { project, credentials } = await projects.createProject(ctx, input, record("project.create"));
      return JSON.stringify({ ...projects.presentProject(ctx, project), credentials }, null, 2);
    }
    case "list": {
      const rows = await projects.listProjects(ctx, projects.listProjectsQuery.parse({ status: flags["--status"], limit: 1000 }));
      return rows.map((p) => [p.id, p.status.padEnd(10), p.created_at.toISOString(), p.name].join("  ")).join("\n");
    }
    case "show":
      return show(await projects.getProject(ctx, arg ?? ""));
    case "delete":
      return show(await projects.startOperation(ctx, arg ?? "", "delete", record("project.delete")));
    case "restore":
      return show(await projects.startOperation(ctx, arg ?? "", "restore", record("project.restore")));
    case "purge": {
      const current = await projects.getProject(ctx, arg ?? "");
      if (flags["--confirm"] !== current.name) throw new Error(`purge needs --confirm ${current.name}`);
      return show(await projects.startOperation(ctx, current.id, "purge", record("project.purge")));
    }
    default:
      throw new Error(`unknown project subcommand '${sub}'\n\n${projectUsage}`);
  }
}

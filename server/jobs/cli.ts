// `atlashub jobs …`: list jobs and run one now from the server's shell. Talks to the control plane
// directly (attaching to a running serve's Postgres); a run happens in this process.
import type { AppContext } from "../context";
import { recordAudit } from "../platform/audit";
import type { Db } from "../platform/db";
import * as jobs from "./service";

export const jobsUsage = `Usage: atlashub jobs <subcommand> [args] [flags]

  list              jobs: id, on/off, schedule (timezone), next run, last status, name
  run ID|NAME       run a job now in this process and wait for it; prints the run as JSON and
                    exits 1 unless it succeeded

Settings flags (--data-dir …) as for serve.`;

export async function runJobsCommand(ctx: AppContext, sub: string, args: string[]): Promise<{ output: string; exitCode: number }> {
  switch (sub) {
    case "list": {
      const rows = await jobs.listJobs(ctx, jobs.listJobsQuery.parse({ limit: 1000 }));
      const line = (j: (typeof rows)[number]) =>
        [j.id, j.enabled ? "on " : "off", `${j.schedule} (${j.timezone})`.padEnd(28), (j.next_run_at?.toISOString() ?? "-").padEnd(24), (j.last_run?.status ?? "-").padEnd(9), j.name].join("  ");
      return { output: rows.map(line).join("\n"), exitCode: 0 };
    }
    case "run": {
      const id = await findJob(ctx, args[0]);
      const record = (db: Db, job: jobs.JobRow) =>
        recordAudit(db, { actor: { type: "cli", label: "atlashub jobs run" }, action: "job.run", target: { type: "job", id: job.id }, details: { name: job.name } });
      const { runId, finished } = await jobs.runJobNow(ctx, id, record);
      await finished;
      const run = (await jobs.getRun(ctx, id, runId)) as { status: string };
      return { output: JSON.stringify(run, null, 2), exitCode: run.status === "succeeded" ? 0 : 1 };
    }
    default:
      throw new Error(`unknown jobs subcommand '${sub}'\n\n${jobsUsage}`);
  }
}

/** A job id, or a name that only one job has. */
async function findJob(ctx: AppContext, ref: string | undefined) {
  if (!ref) throw new Error("jobs run needs a job id or name");
  const rows = await ctx.sql<{ id: string }[]>`select id from jobs where id::text = ${ref} or name = ${ref} limit 2`;
  if (rows.length === 0) throw new Error(`no job has the id or name ${JSON.stringify(ref)}`);
  if (rows.length > 1) throw new Error(`several jobs are named ${JSON.stringify(ref)} (in different projects); give the id`);
  return rows[0]!.id;
}

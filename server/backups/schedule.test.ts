import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { adminHeaders, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { pruneBackups, runScheduledBackups } from "./schedule";
import { backupsToKeep } from "./retention";

let server: TestServer;
let auth: Record<string, string>;
let project: any;

beforeAll(async () => {
  server = await startTestServer({ ATLASHUB_BACKUP_VERIFY: "false" });
  auth = await adminHeaders(server);
  project = await createTestProject(server, auth, "scheduled");
});
afterAll(() => server.stop());

async function api(method: string, path: string, body?: unknown) {
  const res = await server.fetch(`/admin/api/projects/${project.id}${path}`, body === undefined ? { method, headers: auth } : jsonRequest(method, body, auth));
  return { status: res.status, body: await res.json() };
}

/** Waits for every backup this process is running. */
async function settleAll() {
  const running = await server.ctx.sql<{ id: string }[]>`select id from backups where status = 'running'`;
  for (const { id } of running) await server.ctx.backups.settled(id);
}

const scheduledRows = () =>
  server.ctx.sql<{ id: string; status: string; at: Date }[]>`
    select id, status, scheduled_for as at from backups where project_id = ${project.id} and trigger = 'schedule' order by scheduled_for`;

describe("GET/PUT /admin/api/projects/:id/backups/schedule", () => {
  it("is off by default (daily at 03:00 UTC, 7 days and 4 weeks kept once enabled)", async () => {
    const res = await api("GET", "/backups/schedule");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ enabled: false, schedule: "0 3 * * *", timezone: "UTC", keep_daily: 7, keep_weekly: 4, last_occurrence: null, next_run: null });
  });

  it("refuses an expression or timezone that does not parse with 400 invalid_schedule", async () => {
    expect((await api("PUT", "/backups/schedule", { schedule: "every day" })).body.error.code).toBe("invalid_schedule");
    expect((await api("PUT", "/backups/schedule", { enabled: true, timezone: "Mars/Olympus" })).body.error.code).toBe("invalid_schedule");
    expect((await api("PUT", "/backups/schedule", { keep_daily: -1 })).status).toBe(400);
  });

  it("enables a schedule in a timezone and says when it runs next", async () => {
    const res = await api("PUT", "/backups/schedule", { enabled: true, timezone: "Europe/Berlin" });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ enabled: true, schedule: "0 3 * * *", timezone: "Europe/Berlin" });
    const next = new Date(res.body.next_run);
    expect(new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/Berlin", hour: "2-digit", minute: "2-digit" }).format(next)).toBe("03:00");
  });
});

describe("scheduled backups and retention on a simulated 60-day clock", () => {
  it("starts one backup per day, makes up a missed day once, and keeps exactly 7 daily and 4 weekly", async () => {
    // Occurrences are owed from when the schedule was enabled (now); the clock runs 60 days ahead.
    const start = Date.now();
    let day = 0;
    const daysAhead = (d: number) => new Date(start + d * 86400_000);
    let lastStarted = 0;
    while (day < 60) {
      day += day === 30 ? 3 : 1; // days 31 and 32 "down": day 33 makes up one backup, not three
      const now = daysAhead(day);
      // Two instances asking at once: one backup.
      const [a, b] = await Promise.all([runScheduledBackups(server.ctx, now), runScheduledBackups(server.ctx, now)]);
      expect(a + b).toBe(1);
      lastStarted = day;
      expect(await runScheduledBackups(server.ctx, now)).toBe(0);
      await settleAll();
      await pruneBackups(server.ctx);
      const rows = await scheduledRows();
      expect(rows.length).toBeLessThanOrEqual(11);
    }
    expect(lastStarted).toBeGreaterThan(58);
    const rows = await scheduledRows();
    expect(rows.every((r) => r.status === "completed")).toBe(true);
    // Exactly the retention set of everything the schedule made, and the 7 newest days among it.
    const made = await server.ctx.sql<{ c: number }[]>`select count(*)::int as c from audit_log where action = 'backup.create' and actor_label = 'scheduler'`;
    expect(made[0]!.c).toBe(58);
    const kept = backupsToKeep(rows.map((r) => ({ id: r.id, at: r.at })), { keepDaily: 7, keepWeekly: 4 }, "Europe/Berlin");
    expect(new Set(rows.map((r) => r.id))).toEqual(kept);
    const days = rows.map((r) => new Intl.DateTimeFormat("en-CA", { timeZone: "Europe/Berlin" }).format(r.at));
    expect(new Set(days).size).toBe(rows.length);
    expect(rows.length).toBeGreaterThanOrEqual(7 + 2);
    expect(rows.length).toBeLessThanOrEqual(7 + 4);
    // Deleted ones are gone from the store, not only from the list.
    const [deleted] = await server.ctx.sql<{ c: number }[]>`select count(*)::int as c from audit_log where action = 'backup.delete' and actor_label = 'retention'`;
    expect(deleted!.c).toBe(58 - rows.length);
  }, 120_000);

  it("never prunes a manual backup", async () => {
    const res = await server.fetch(`/admin/api/projects/${project.id}/backups`, { method: "POST", headers: auth });
    const { id } = await res.json();
    await server.ctx.backups.settled(id);
    await server.ctx.sql`update backups set created_at = now() - interval '400 days' where id = ${id}`;
    await pruneBackups(server.ctx);
    expect((await api("GET", `/backups/${id}`)).status).toBe(200);
  });
});

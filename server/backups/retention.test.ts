import { describe, expect, it } from "bun:test";
import { backupsToKeep, isoWeek } from "./retention";

/** One backup a day at 03:00 UTC from `first` for `days` days, named by its date. */
function daily(first: string, days: number) {
  return Array.from({ length: days }, (_, i) => {
    const at = new Date(Date.parse(`${first}T03:00:00Z`) + i * 86400_000);
    return { id: at.toISOString().slice(0, 10), at };
  });
}

describe("backupsToKeep", () => {
  it("keeps the newest of the last 7 days and of the last 4 ISO weeks over 60 days", () => {
    // 2024-01-01 is a Monday; the 60th day is Thursday 2024-02-29.
    const kept = backupsToKeep(daily("2024-01-01", 60), { keepDaily: 7, keepWeekly: 4 }, "UTC");
    expect([...kept].sort()).toEqual([
      "2024-02-11", // newest of the week of 5–11 February
      "2024-02-18", // newest of the week of 12–18 February
      "2024-02-23", "2024-02-24", "2024-02-25", "2024-02-26", "2024-02-27", "2024-02-28", "2024-02-29",
    ]);
  });

  it("counts days and weeks in the schedule's timezone", () => {
    // 23:30 UTC on Sunday is already Monday in Berlin: another ISO week there.
    const backups = [
      { id: "sun", at: new Date("2024-03-03T12:00:00Z") },
      { id: "late", at: new Date("2024-03-03T23:30:00Z") },
    ];
    expect([...backupsToKeep(backups, { keepDaily: 0, keepWeekly: 2 }, "UTC")]).toEqual(["late"]);
    expect([...backupsToKeep(backups, { keepDaily: 0, keepWeekly: 2 }, "Europe/Berlin")].sort()).toEqual(["late", "sun"]);
  });

  it("keeps only the newest of several backups of one day, and nothing with zero counts", () => {
    const backups = [
      { id: "a", at: new Date("2024-05-01T01:00:00Z") },
      { id: "b", at: new Date("2024-05-01T13:00:00Z") },
    ];
    expect([...backupsToKeep(backups, { keepDaily: 3, keepWeekly: 0 }, "UTC")]).toEqual(["b"]);
    expect(backupsToKeep(backups, { keepDaily: 0, keepWeekly: 0 }, "UTC").size).toBe(0);
  });
});

describe("isoWeek", () => {
  it("follows ISO 8601 across year ends", () => {
    expect(isoWeek("2024-01-01")).toBe("2024-W01");
    expect(isoWeek("2024-12-30")).toBe("2025-W01");
    expect(isoWeek("2021-01-03")).toBe("2020-W53");
    expect(isoWeek("2024-02-29")).toBe("2024-W09");
  });
});

// Which scheduled backups to keep: the newest of each of the last `keepDaily` days that have one,
// and the newest of each of the last `keepWeekly` ISO weeks (Monday to Sunday) that have one, days
// and weeks counted in the schedule's timezone. A backup may count for both. Pure: no app imports.

export interface RetentionPolicy {
  keepDaily: number;
  keepWeekly: number;
}

export interface Dated {
  id: string;
  at: Date;
}

export function backupsToKeep(backups: Dated[], policy: RetentionPolicy, timezone: string): Set<string> {
  const newestFirst = [...backups].sort((a, b) => b.at.getTime() - a.at.getTime());
  const keep = new Set<string>();
  const days = new Set<string>();
  const weeks = new Set<string>();
  const dayOf = localDay(timezone);
  for (const b of newestFirst) {
    const day = dayOf(b.at);
    if (!days.has(day) && days.size < policy.keepDaily) {
      days.add(day);
      keep.add(b.id);
    }
    const week = isoWeek(day);
    if (!weeks.has(week) && weeks.size < policy.keepWeekly) {
      weeks.add(week);
      keep.add(b.id);
    }
  }
  return keep;
}

/** YYYY-MM-DD of an instant in a timezone. */
function localDay(timezone: string) {
  const format = new Intl.DateTimeFormat("en-CA", { timeZone: timezone, year: "numeric", month: "2-digit", day: "2-digit" });
  return (at: Date) => format.format(at);
}

/** "2024-W09" for a YYYY-MM-DD date (ISO 8601: weeks start on Monday, week 1 holds January 4th). */
export function isoWeek(day: string): string {
  const date = new Date(`${day}T00:00:00Z`);
  const weekday = (date.getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  const thursday = new Date(date.getTime() + (3 - weekday) * 86400_000);
  const year = thursday.getUTCFullYear();
  const week = 1 + Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * 86400_000));
  return `${year}-W${String(week).padStart(2, "0")}`;
}

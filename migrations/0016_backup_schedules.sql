-- Scheduled backups (issue 9): one schedule per project, off until enabled. The platform job
-- platform/scheduled_backups claims each occurrence once (last_occurrence moves forward in one
-- conditional UPDATE, whichever instance gets there first) and starts the backup; platform/prune_backups
-- keeps the newest scheduled backup of each of the last keep_daily days and keep_weekly ISO weeks.

create table backup_schedules (
  project_id text primary key references projects (id),
  enabled boolean not null default false,
  schedule text not null default '0 3 * * *',
  timezone text not null default 'UTC',
  keep_daily integer not null default 7 check (keep_daily between 0 and 366),
  keep_weekly integer not null default 4 check (keep_weekly between 0 and 520),
  -- The latest occurrence a backup was started for.
  last_occurrence timestamptz,
  -- Occurrences at or before this are not owed (set when the schedule is enabled or changed).
  scheduled_since timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- The occurrence a scheduled backup was made for: the day and week retention counts it in.
alter table backups add column scheduled_for timestamptz;
create index backups_scheduled on backups (project_id, scheduled_for desc) where trigger = 'schedule';

-- Restores of backups (issue 9). replace: the dump is restored into a new database
-- (new_database), which is then swapped in under the project's database name in one transaction,
-- the live one renamed to old_database and kept until keep_until as the point to roll back to.
-- new_project: a new project is provisioned and the dump and files restored into it.
-- The process working on a restore holds the session advisory lock (hashtext('atlashub.restore'),
-- hashtext(id)); the reconciler finishes or undoes a restore whose lock is free and whose status is
-- not final: restoring → failed (the live database was never touched), swapping → finished,
-- rolling_back → rolled_back.

create table restores (
  id uuid primary key,
  project_id text not null references projects (id),
  source_project_id text not null references projects (id),
  backup_id uuid not null,
  mode text not null check (mode in ('replace', 'new_project')),
  status text not null check (status in ('restoring', 'swapping', 'finished', 'failed', 'rolling_back', 'rolled_back')),
  new_database text,
  old_database text,
  -- Files copied into a new project so far, and in all.
  files_restored integer not null default 0,
  failure_reason text,
  created_by text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  keep_until timestamptz,
  old_dropped_at timestamptz,
  rolled_back_at timestamptz
);
-- One restore at a time per project (a rollback counts as one).
create unique index restores_one_active on restores (project_id) where status in ('restoring', 'swapping', 'rolling_back');
create index restores_by_project on restores (project_id, created_at desc);
create index restores_unfinished on restores (status) where status in ('restoring', 'swapping', 'rolling_back');
create index restores_kept on restores (keep_until) where status = 'finished' and old_dropped_at is null;

-- Project backups (issue 9): one row per backup; its bytes (pg_dump -Fc in parts, the project's storage
-- objects, a file list and a manifest) live in the backup store under <project>/b<backup id>/.
-- A process running a backup holds the session advisory lock (hashtext('atlashub.backup'),
-- hashtext(id)); a row left 'running' or 'deleting' whose lock is free was left by a process that
-- died, and the reconciler fails (or finishes deleting) it.

create table backups (
  id uuid primary key,
  project_id text not null references projects (id),
  status text not null check (status in ('running', 'completed', 'verified', 'failed', 'deleting')),
  trigger text not null default 'manual' check (trigger in ('manual', 'schedule')),
  -- Progress while running, totals after.
  dump_bytes bigint not null default 0,
  dump_parts integer not null default 0,
  files_count integer not null default 0,
  files_bytes bigint not null default 0,
  -- What the backup holds: versions, sha256 of the dump and of each part, per-table row counts and
  -- checksums taken in the dump's snapshot, sequences, the file list's object and sha256.
  manifest jsonb,
  failure_reason text,
  -- Verification: a restore into a temporary database compared with the manifest.
  verify_started_at timestamptz,
  verified_at timestamptz,
  verify_error text,
  created_by text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  completed_at timestamptz
);
-- One backup at a time per project.
create unique index backups_one_running on backups (project_id) where status = 'running';
create index backups_by_project on backups (project_id, created_at desc);
create index backups_unfinished on backups (status) where status in ('running', 'deleting');

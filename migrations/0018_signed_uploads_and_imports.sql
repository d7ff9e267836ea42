-- Signed upload URLs of backups and table imports (issue 9). The URL's HMAC is its credential; this
-- row makes it single-use (the first request whose signature passes sets used_at) and keeps who asked
-- for it, for the backup's created_by and the audit log. Rows go once their URL has expired.
create table signed_uploads (
  nonce uuid primary key,
  project_id text not null references projects (id) on delete cascade,
  purpose text not null check (purpose in ('backup_upload', 'table_import')),
  created_by text,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  used_at timestamptz
);
create index signed_uploads_expiry on signed_uploads (expires_at);

-- Table imports (issue 9): bytes and rows so far while one runs (written about once a second, with
-- updated_at as its heartbeat), its result or error once over. Kept small: a project keeps its newest
-- 100 finished imports, none older than 7 days.
create table table_imports (
  id uuid primary key,
  project_id text not null references projects (id) on delete cascade,
  table_name text not null,
  options jsonb not null,
  status text not null check (status in ('running', 'succeeded', 'failed')),
  phase text not null default 'receiving',
  bytes bigint not null default 0,
  rows bigint not null default 0,
  result jsonb,
  error jsonb,
  created_by text,
  started_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz
);
create index table_imports_by_project on table_imports (project_id, started_at desc);

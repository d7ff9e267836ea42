-- Scheduled jobs (issue 8). An instance claims an occurrence by inserting (job_id, scheduled_for):
-- the unique constraint lets exactly one instance win it, however many run against this database.

create table jobs (
  id uuid primary key default gen_random_uuid(),
  -- null: a platform-wide job.
  project_id text references projects (id),
  name text not null,
  kind text not null check (kind in ('http', 'platform')),
  schedule text not null,
  timezone text not null default 'UTC',
  enabled boolean not null default true,
  -- http: {method, url, headers (the non-secret ones), body}; platform: {task}.
  payload jsonb not null default '{}',
  -- AES-256-GCM with the master key: {"headers": {...}, "notify_url": "..."}.
  secrets text,
  missed text not null default 'skip' check (missed in ('skip', 'run_once')),
  concurrency text not null default 'forbid' check (concurrency in ('forbid', 'allow')),
  timeout_ms integer not null default 10000 check (timeout_ms between 100 and 60000),
  retries integer not null default 0 check (retries between 0 and 10),
  backoff_ms integer not null default 1000 check (backoff_ms between 10 and 3600000),
  -- {"on": "failure" | "always"}; the webhook URL itself is in secrets.
  notify jsonb,
  -- Occurrences at or before this are not owed (set on create, on a schedule change and on enabling),
  -- so a missed-run policy only ever covers time the job was meant to be running.
  scheduled_since timestamptz not null default now(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index jobs_name_key on jobs (coalesce(project_id, ''), name);

create table job_runs (
  id uuid primary key default gen_random_uuid(),
  job_id uuid not null references jobs (id) on delete cascade,
  scheduled_for timestamptz not null,
  trigger text not null check (trigger in ('schedule', 'manual')),
  status text not null check (status in ('running', 'succeeded', 'failed', 'timed_out', 'skipped')),
  attempt integer not null default 0,
  instance_id text,
  started_at timestamptz not null default now(),
  heartbeat_at timestamptz not null default now(),
  finished_at timestamptz,
  duration_ms integer,
  response_status integer,
  -- The first 4 KB of the response body.
  response_body text,
  error text,
  unique (job_id, scheduled_for)
);
create index job_runs_running on job_runs (heartbeat_at) where status = 'running';

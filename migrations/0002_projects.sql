-- Projects: one database and three roles each, provisioned by a persisted state machine.

create table projects (
  id text primary key check (id ~ '^[a-z0-9]{10}$'),
  name text not null,
  description text not null default '',
  status text not null check (status in (
    'pending', 'creating_roles', 'creating_db', 'configuring', 'ready', 'failed',
    'deleting', 'deleted', 'restoring', 'purging', 'purged')),
  failure_reason text,
  -- What a failed or interrupted operation was doing, so retry/reconcile knows which way to go.
  operation text not null default 'create' check (operation in ('create', 'delete', 'restore', 'purge')),
  has_vector boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  purged_at timestamptz
);
create unique index projects_name_unpurged on projects (name) where status <> 'purged';
create index projects_unfinished on projects (status) where status not in ('ready', 'failed', 'deleted', 'purged');
create index projects_deleted_at on projects (deleted_at) where status = 'deleted';

-- The three built-in roles of a project; passwords AES-256-GCM encrypted with the master key.
create table project_roles (
  project_id text not null references projects (id),
  kind text not null check (kind in ('owner', 'app', 'ro')),
  role_name text not null unique,
  password_enc text not null,
  primary key (project_id, kind)
);

-- Role passwords cannot be bind parameters of ALTER ROLE; this keeps them parameters all the same
-- (format %L quotes the literal server-side). Only the superuser that owns it may call it.
create function atlashub_set_role_password(role_name text, password text) returns void
language plpgsql as $$
begin
  execute format('alter role %I with password %L', role_name, password);
end
$$;
revoke all on function atlashub_set_role_password(text, text) from public;

-- Database users: extra login roles of a project, each a member of one of its three roles.
-- Their passwords are shown once and not kept (Postgres keeps only the SCRAM verifier).
create table project_users (
  project_id text not null references projects (id),
  username text not null check (username ~ '^[a-z][a-z0-9_]{2,31}$'),
  access text not null check (access in ('read', 'write', 'migrate')),
  role_name text not null unique,
  created_at timestamptz not null default now(),
  password_changed_at timestamptz not null default now(),
  primary key (project_id, username)
);

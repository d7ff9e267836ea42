-- API keys for the public /v1 API: one project each, stored as SHA-256, shown once.
create table api_keys (
  id uuid primary key default gen_random_uuid(),
  project_id text not null references projects (id),
  name text not null,
  kind text not null check (kind in ('publishable', 'secret')),
  prefix text not null,
  key_hash text not null unique,
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  expires_at timestamptz,
  revoked_at timestamptz,
  -- Set when the key was rotated: the key that replaces it (this one lives until expires_at).
  replaced_by uuid references api_keys (id)
);
create index api_keys_project on api_keys (project_id, created_at desc);

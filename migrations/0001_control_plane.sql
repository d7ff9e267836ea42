-- Control plane, first cut: admin identity, API tokens, audit log and rate-limit counters.

create table admin_users (
  id uuid primary key default gen_random_uuid(),
  email text not null,
  password_hash text not null,
  created_at timestamptz not null default now(),
  disabled_at timestamptz
);
create unique index admin_users_email_key on admin_users (lower(email));

create table admin_sessions (
  id uuid primary key default gen_random_uuid(),
  admin_id uuid not null references admin_users (id) on delete cascade,
  token_hash text not null unique,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  last_seen_at timestamptz not null default now(),
  ip text,
  user_agent text
);
create index admin_sessions_expires_at on admin_sessions (expires_at);

create table admin_tokens (
  id uuid primary key default gen_random_uuid(),
  admin_id uuid not null references admin_users (id) on delete cascade,
  name text not null,
  prefix text not null,
  token_hash text not null unique,
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  expires_at timestamptz,
  revoked_at timestamptz
);

create table audit_log (
  id bigint generated always as identity primary key,
  at timestamptz not null default now(),
  actor_type text not null check (actor_type in ('admin', 'token', 'cli', 'system', 'anonymous')),
  actor_id uuid,
  actor_label text,
  action text not null,
  target_type text,
  target_id text,
  request_id text,
  ip text,
  details jsonb not null default '{}'
);
create index audit_log_at on audit_log (at desc);
create index audit_log_action on audit_log (action, at desc);

-- Fixed-window counters shared by every instance (login attempts per IP and per account).
create table rate_limits (
  key text primary key,
  window_start timestamptz not null,
  hits integer not null
);

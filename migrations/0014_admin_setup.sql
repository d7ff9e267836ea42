-- The one-time setup token of the first-run setup screen (issue 7): only its SHA-256, one row at most.
-- In the control plane, so every instance behind a load balancer accepts the same token. `atlashub
-- serve` replaces it at each start while no admin exists (so a token printed earlier stops working);
-- creating the first admin deletes it.
create table admin_setup (
  id boolean primary key default true check (id),
  token_hash text not null,
  created_at timestamptz not null default now()
);

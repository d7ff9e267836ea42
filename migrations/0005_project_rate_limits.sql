-- A project's own /v1 rate limit (requests per second and burst); null means the server default
-- (ATLASHUB_API_RATE_LIMIT, ATLASHUB_API_RATE_BURST).
alter table projects
  add column if not exists rate_limit_rps integer check (rate_limit_rps > 0),
  add column if not exists rate_limit_burst integer check (rate_limit_burst > 0);

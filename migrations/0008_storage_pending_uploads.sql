-- Uploads signed for the s3 driver (issue 6): the client PUTs straight to S3, so AtlasHub learns of
-- the object only when the app calls POST /v1/storage/complete or the next listing of the bucket
-- checks it (HEAD). Until then the signed size limit and content type wait here. One row per key:
-- signing again replaces it. (The fs driver records its uploads itself and never writes here.)
create table storage_pending_uploads (
  -- New at every signing: completing removes the row it read, never a newer one for the same key.
  id uuid not null default gen_random_uuid(),
  project_id text not null,
  bucket text not null,
  key text collate "C" not null,
  content_type text not null,
  max_bytes bigint not null check (max_bytes >= 0),
  uploaded_by uuid references api_keys (id) on delete set null,
  expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  primary key (project_id, bucket, key),
  foreign key (project_id, bucket) references storage_buckets (project_id, name) on delete cascade
);

-- Object storage (issue 6): logical buckets per project and the metadata of their objects. The bytes
-- live in the object store (<data>/storage/<project>/<bucket>/<key> or S3); listing reads only these
-- tables, and an object is recorded only once its bytes are complete.

create table storage_buckets (
  project_id text not null references projects (id),
  name text not null check (name ~ '^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$'),
  -- Public buckets serve GET without a signature.
  public boolean not null default false,
  created_at timestamptz not null default now(),
  primary key (project_id, name)
);

create table storage_objects (
  project_id text not null,
  bucket text not null,
  -- Byte order ("C"): the primary key's index then serves prefix listing and cursor pagination.
  key text collate "C" not null check (octet_length(key) between 1 and 1024),
  size bigint not null check (size >= 0),
  content_type text not null,
  sha256 text check (sha256 ~ '^[0-9a-f]{64}$'),
  -- The API key that asked for the upload URL; null for uploads through the admin API.
  uploaded_by uuid references api_keys (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (project_id, bucket, key),
  foreign key (project_id, bucket) references storage_buckets (project_id, name) on delete cascade
);

-- The largest upload a signed URL may allow in this project; null means ATLASHUB_STORAGE_MAX_UPLOAD.
alter table projects add column storage_max_upload_bytes bigint check (storage_max_upload_bytes > 0);

-- Every project has the buckets "private" and "uploads": new projects get them when they are created,
-- the projects that exist already get them here.
insert into storage_buckets (project_id, name)
select p.id, b.name from projects p cross join (values ('private'), ('uploads')) as b (name)
where p.status <> 'purged'
on conflict do nothing;

-- Storage intents (issue 6): an upload's rename (fs) and a delete's removal of the bytes happen
-- before the transaction that changes the object's row commits. A crash or a lost control-plane
-- connection in between would leave new bytes under an old row, bytes without a row or a row without
-- bytes. So each is first written down here in a transaction of its own; the step deletes it in the
-- transaction that changes the row; one left behind is settled later under the key's lock: finished
-- when the bytes changed (the row follows them), dropped when they did not.
create table storage_intents (
  id uuid primary key default gen_random_uuid(),
  project_id text not null,
  bucket text not null,
  key text collate "C" not null,
  kind text not null check (kind in ('put', 'delete')),
  -- put: the identity of the uploaded file (fs) and what to record with it.
  file_version text,
  size bigint check (size >= 0),
  content_type text,
  sha256 text,
  uploaded_by uuid,
  -- delete: the row being deleted (its updated_at): an upload that replaced it meanwhile is kept.
  row_updated_at timestamptz,
  created_at timestamptz not null default now(),
  foreign key (project_id, bucket) references storage_buckets (project_id, name) on delete cascade,
  check ((kind = 'put' and file_version is not null and size is not null and content_type is not null) or (kind = 'delete' and row_updated_at is not null))
);
create index storage_intents_created on storage_intents (created_at);

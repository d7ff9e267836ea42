-- Uploads signed for the s3 driver now go to a staging key of their own (<bucket>/.ah-pending/<id>),
-- never to the object's key: AtlasHub checks what arrived there (size, content type) and copies it
-- over the key. A signing no longer replaces an earlier one for the same key (each URL works until it
-- expires), and a row stays until its URL has expired, because S3 lets a presigned URL be used again
-- until then: every use is checked and recorded as a new version.
-- Rows of the earlier design name uploads that went to the object's key itself; they are dropped (a
-- client still holding such a URL writes bytes that are not recorded; its app asks for a new one).
delete from storage_pending_uploads;
alter table storage_pending_uploads drop constraint storage_pending_uploads_pkey;
alter table storage_pending_uploads add primary key (id);
create index storage_pending_uploads_key on storage_pending_uploads (project_id, bucket, key);
-- When this signing's upload was last recorded: completing again with nothing new answers that object.
alter table storage_pending_uploads add column completed_at timestamptz;
-- When a listing last looked for this upload in S3: listings take the least recently checked first.
alter table storage_pending_uploads add column checked_at timestamptz;
create index storage_pending_uploads_checked on storage_pending_uploads (project_id, bucket, checked_at nulls first);

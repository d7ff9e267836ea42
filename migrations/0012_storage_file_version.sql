-- fs driver (issue 6): which file an object's row describes — inode, size and mtime of the upload,
-- taken before its rename and recorded in the same step. A download opens the file once and serves
-- it only when it is that version, so an overwrite between reading the row and opening the file can
-- no longer pair one version's ETag and Content-Type with another's bytes. Null for s3 objects and
-- for rows written before this column: a download then adopts the file it finds, under the key's lock.
alter table storage_objects add column file_version text;

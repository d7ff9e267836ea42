-- Replace restores bring the project's files back too (issue 9). Before changing any live object,
-- the restore copies the project's files into the backup store (restore "bucket" r<restore id>, a
-- list beside them): that copy is the files' rollback point, kept and dropped with the replaced
-- database. files_state says how far the restore got with the live files, so a crash is finished or
-- undone from it: null — untouched (a copy in progress is thrown away); saved — the copy is complete,
-- nothing live changed yet; applying — live objects are being changed to the backup's (a restore
-- cut short puts the copy back); applied — they are the backup's. saved_buckets: the project's
-- buckets (name, public) when the copy was made, for a rollback or an undo.
alter table restores add column files_state text check (files_state in ('saved', 'applying', 'applied'));
alter table restores add column saved_buckets jsonb;

-- Backups uploaded by an admin (an existing pg_dump -Fc file, issue 9): trigger 'upload'. Their
-- manifest's table snapshot is taken by their first verification (there is no source to compare).
alter table backups drop constraint backups_trigger_check;
alter table backups add constraint backups_trigger_check check (trigger in ('manual', 'schedule', 'upload'));

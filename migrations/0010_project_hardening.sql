-- How far a project's database has been brought by fixes to what provisioning sets up: projects
-- below the code's HARDENING_LEVEL are brought up to it by the reconciler (server/projects/provision.ts).
-- Level 1: the owner role loses server-side lo_import/lo_export (they read and write the server's files).
alter table projects add column hardening int not null default 0;

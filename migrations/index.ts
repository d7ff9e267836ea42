// Every migration, in order. Text imports are embedded into the compiled binary.
// migrations.test.ts fails when a .sql file in this folder is missing from this list.
import m0001 from "./0001_control_plane.sql" with { type: "text" };
import m0002 from "./0002_projects.sql" with { type: "text" };
import m0003 from "./0003_project_users.sql" with { type: "text" };
import m0004 from "./0004_api_keys.sql" with { type: "text" };
import m0005 from "./0005_project_rate_limits.sql" with { type: "text" };
import m0006 from "./0006_storage.sql" with { type: "text" };
import m0007 from "./0007_jobs.sql" with { type: "text" };
import m0008 from "./0008_storage_pending_uploads.sql" with { type: "text" };
import m0009 from "./0009_storage_staged_uploads.sql" with { type: "text" };
import m0010 from "./0010_project_hardening.sql" with { type: "text" };
import m0011 from "./0011_backups.sql" with { type: "text" };
import m0012 from "./0012_storage_file_version.sql" with { type: "text" };
import m0013 from "./0013_restores.sql" with { type: "text" };
import m0014 from "./0014_admin_setup.sql" with { type: "text" };
import m0015 from "./0015_storage_intents.sql" with { type: "text" };
import m0016 from "./0016_backup_schedules.sql" with { type: "text" };
import m0017 from "./0017_backup_uploads.sql" with { type: "text" };
import m0018 from "./0018_signed_uploads_and_imports.sql" with { type: "text" };
import m0019 from "./0019_restore_files.sql" with { type: "text" };

export const migrations = [
  { name: "0001_control_plane", sql: m0001 },
  { name: "0002_projects", sql: m0002 },
  { name: "0003_project_users", sql: m0003 },
  { name: "0004_api_keys", sql: m0004 },
  { name: "0005_project_rate_limits", sql: m0005 },
  { name: "0006_storage", sql: m0006 },
  { name: "0007_jobs", sql: m0007 },
  { name: "0008_storage_pending_uploads", sql: m0008 },
  { name: "0009_storage_staged_uploads", sql: m0009 },
  { name: "0010_project_hardening", sql: m0010 },
  { name: "0011_backups", sql: m0011 },
  { name: "0012_storage_file_version", sql: m0012 },
  { name: "0013_restores", sql: m0013 },
  { name: "0014_admin_setup", sql: m0014 },
  { name: "0015_storage_intents", sql: m0015 },
  { name: "0016_backup_schedules", sql: m0016 },
  { name: "0017_backup_uploads", sql: m0017 },
  { name: "0018_signed_uploads_and_imports", sql: m0018 },
  { name: "0019_restore_files", sql: m0019 },
];

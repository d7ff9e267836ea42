// Where backups keep their bytes: an ObjectStore of their own, apart from the projects' objects, so
// no bucket a project creates can meet a backup and purging a project's storage leaves its backups.
// fs: <data>/backups/<project>/b<backup id>/…; s3: one bucket (ATLASHUB_BACKUP_S3_BUCKET, default
// <prefix>backups), keys <project>/b<backup id>/…. Each backup is one "bucket" of that store, so
// deleting a backup (or what a crashed one left) is one deletePrefix.
import { join } from "node:path";
import type { Config } from "../config";
import { FsObjectStore } from "../engines/storage/fs";
import { S3ObjectStore } from "../engines/storage/s3";
import type { ObjectLocation, ObjectStore } from "../engines/storage/store";

export function createBackupStore(config: Config): ObjectStore {
  switch (config.storage) {
    case "fs":
      return new FsObjectStore(join(config.dataDir, "backups"));
    case "s3":
      return new S3ObjectStore({
        endpoint: config.s3Endpoint,
        region: config.s3Region,
        accessKeyId: config.s3AccessKeyId!,
        secretAccessKey: config.s3SecretAccessKey!,
        forcePathStyle: config.s3ForcePathStyle,
        bucket: config.backupS3Bucket ?? `${config.s3BucketPrefix}backups`,
        bucketPrefix: config.s3BucketPrefix,
        stagingDir: join(config.dataDir, "backups", ".s3-staging"),
      });
  }
}

/** The store "bucket" of one backup: "b" + the id's 32 hex digits. */
export const backupBucket = (backupId: string) => `b${backupId.replaceAll("-", "")}`;

export const PART_DIGITS = 6;
export const FILE_DIGITS = 9;

export const backupObject = {
  dumpPart: (projectId: string, backupId: string, n: number): ObjectLocation => ({
    project: projectId,
    bucket: backupBucket(backupId),
    key: `dump/${String(n).padStart(PART_DIGITS, "0")}`,
  }),
  file: (projectId: string, backupId: string, n: number): ObjectLocation => ({
    project: projectId,
    bucket: backupBucket(backupId),
    key: `files/${String(n).padStart(FILE_DIGITS, "0")}`,
  }),
  fileList: (projectId: string, backupId: string): ObjectLocation => ({ project: projectId, bucket: backupBucket(backupId), key: "files.ndjson" }),
  manifest: (projectId: string, backupId: string): ObjectLocation => ({ project: projectId, bucket: backupBucket(backupId), key: "manifest.json" }),
};

/** The store "bucket" of a replace restore's copy of the files it replaced (its rollback point): "r" + the restore id's hex. */
export const restoreBucket = (restoreId: string) => `r${restoreId.replaceAll("-", "")}`;

export const restoreObject = {
  file: (projectId: string, restoreId: string, n: number): ObjectLocation => ({
    project: projectId,
    bucket: restoreBucket(restoreId),
    key: `files/${String(n).padStart(FILE_DIGITS, "0")}`,
  }),
  fileList: (projectId: string, restoreId: string): ObjectLocation => ({ project: projectId, bucket: restoreBucket(restoreId), key: "files.ndjson" }),
};

/** The scratch database a verification restores into (names are visible to every tenant: only the id). */
export const scratchDatabaseName = (backupId: string) => `ah_verify_${backupId.replaceAll("-", "")}`;

import { join } from "node:path";
import type { Config } from "../../config";
import { FsObjectStore } from "./fs";
import { S3ObjectStore } from "./s3";
import type { ObjectStore } from "./store";

/** The object store the settings name: fs keeps objects under <data>/storage, s3 in S3 or MinIO. */
export function createObjectStore(config: Config): ObjectStore {
  switch (config.storage) {
    case "fs":
      return new FsObjectStore(join(config.dataDir, "storage"));
    case "s3":
      return new S3ObjectStore({
        endpoint: config.s3Endpoint,
        region: config.s3Region,
        accessKeyId: config.s3AccessKeyId!,
        secretAccessKey: config.s3SecretAccessKey!,
        forcePathStyle: config.s3ForcePathStyle,
        bucket: config.s3Bucket,
        bucketPrefix: config.s3BucketPrefix,
        // Uploads through AtlasHub (admin API, CLI) wait here until they go to S3.
        stagingDir: join(config.dataDir, "storage", ".s3-staging"),
      });
  }
}

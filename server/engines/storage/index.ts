import { join } from "node:path";
import type { Config } from "../../config";
import { FsObjectStore } from "./fs";
import type { ObjectStore } from "./store";

/** The object store the settings name; fs keeps objects under <data>/storage. */
export function createObjectStore(config: Config): ObjectStore {
  return new FsObjectStore(join(config.dataDir, "storage"));
}

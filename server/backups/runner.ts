import type { Config } from "../config";
import type { ObjectStore } from "../engines/storage/store";
import { log } from "../platform/log";
import { createBackupStore } from "./store";

/**
 * The backups (and verifications, restores) this process runs in the background, and the store they
 * write to. stop() aborts them and waits: each task records its own failure and cleans up after itself.
 */
export class BackupRunner {
  readonly store: ObjectStore;
  private readonly tasks = new Map<string, { controller: AbortController; done: Promise<void> }>();

  constructor(config: Config, store?: ObjectStore) {
    this.store = store ?? createBackupStore(config);
  }

  /** Starts `task` unless one of that id runs already; errors are the task's to record (logged here only if it throws). */
  run(id: string, task: (signal: AbortSignal) => Promise<void>) {
    if (this.tasks.has(id)) return;
    const controller = new AbortController();
    const done = Promise.resolve()
      .then(() => task(controller.signal))
      .catch((err) => log.error("backup task failed", { task: id, error: (err as Error).message }))
      .finally(() => this.tasks.delete(id));
    this.tasks.set(id, { controller, done });
  }

  /** Resolves once the task of `id` (if any) has finished. */
  async settled(id: string) {
    await this.tasks.get(id)?.done;
  }

  isRunning(id: string) {
    return this.tasks.has(id);
  }

  async stop() {
    const running = [...this.tasks.values()];
    for (const t of running) t.controller.abort();
    await Promise.all(running.map((t) => t.done));
  }
}

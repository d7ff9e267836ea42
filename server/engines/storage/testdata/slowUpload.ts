// Child process for fs.test.ts: starts an upload into the fs store whose body never ends, prints
// "staging" once bytes are on disk, and waits to be killed with SIGKILL mid-write.
import { FsObjectStore } from "../fs";

const [root, project, bucket, key] = process.argv.slice(2) as [string, string, string, string];
const store = new FsObjectStore(root);
let sent = 0;
const body = new ReadableStream<Uint8Array>({
  async pull(controller) {
    controller.enqueue(new Uint8Array(256 * 1024).fill(sent % 251));
    sent++;
    if (sent === 8) console.log("staging");
    if (sent >= 8) await Bun.sleep(60_000);
  },
});
await store.put({ project, bucket, key }, body, { maxBytes: 1024 ** 3 });

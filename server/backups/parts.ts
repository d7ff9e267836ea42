// Streams cut into parts and parts joined back into one stream. A dump goes to the object store as
// parts of at most ATLASHUB_BACKUP_PART_BYTES: a store that stages an upload on local disk before
// sending it (the s3 driver) then needs at most one part of temp space, however large the dump.
// Everything is pulled: the source is read only as fast as the part's consumer takes it, so memory
// holds a chunk or two, never a part. No app imports.
import { createHash } from "node:crypto";

export interface PartCutter {
  /** The next part, or undefined once the source has ended. Read each part to its end before asking for the next. */
  next(): Promise<ReadableStream<Uint8Array> | undefined>;
  /** Stops reading the source (its producer sees the stream closed). */
  cancel(reason?: unknown): Promise<void>;
}

export function cutIntoParts(source: ReadableStream<Uint8Array>, partBytes: number): PartCutter {
  const reader = source.getReader();
  let leftover: Uint8Array | undefined;
  let ended = false;

  const readChunk = async (): Promise<Uint8Array | undefined> => {
    if (leftover) {
      const chunk = leftover;
      leftover = undefined;
      return chunk;
    }
    while (!ended) {
      const { done, value } = await reader.read();
      if (done) ended = true;
      else if (value.byteLength > 0) return value;
    }
    return undefined;
  };

  return {
    async next() {
      const first = await readChunk();
      if (!first) return undefined;
      leftover = first;
      let taken = 0;
      return new ReadableStream<Uint8Array>(
        {
          async pull(controller) {
            const chunk = taken < partBytes ? await readChunk() : undefined;
            if (!chunk) return controller.close();
            const room = partBytes - taken;
            if (chunk.byteLength > room) {
              leftover = chunk.subarray(room);
              controller.enqueue(chunk.subarray(0, room));
              taken = partBytes;
            } else {
              controller.enqueue(chunk);
              taken += chunk.byteLength;
            }
          },
          cancel: (reason) => reader.cancel(reason),
        },
        { highWaterMark: 0 },
      );
    },
    cancel: (reason) => reader.cancel(reason),
  };
}

/** Passes a stream through, hashing and counting its bytes; `onBytes` hears the running total. */
export function meter(source: ReadableStream<Uint8Array>, onBytes: (total: number) => void = () => {}) {
  const hash = createHash("sha256");
  let total = 0;
  const stream = source.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        hash.update(chunk);
        total += chunk.byteLength;
        onBytes(total);
        controller.enqueue(chunk);
      },
    }),
  );
  return {
    stream,
    /** Valid once the stream has been read to its end. */
    result: () => ({ bytes: total, sha256: hash.digest("hex") }),
  };
}

/**
 * One stream of parts 0..count-1, each opened only when the one before has been read. `signal` lets
 * go of the part being read and ends the stream (for a consumer that stops reading without cancelling).
 */
export function joinParts(count: number, open: (n: number) => Promise<ReadableStream<Uint8Array>>, signal?: AbortSignal): ReadableStream<Uint8Array> {
  let n = 0;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const release = () => {
    void reader?.cancel(signal?.reason).catch(() => {});
    reader = undefined;
  };
  signal?.addEventListener("abort", release, { once: true });
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        for (;;) {
          if (signal?.aborted) return controller.close();
          if (!reader) {
            if (n >= count) {
              signal?.removeEventListener("abort", release);
              return controller.close();
            }
            reader = (await open(n++)).getReader() as ReadableStreamDefaultReader<Uint8Array>;
          }
          const current: ReadableStreamDefaultReader<Uint8Array> = reader;
          const { done, value } = await current.read();
          if (!done) return controller.enqueue(value);
          if (reader === current) reader = undefined;
        }
      },
      cancel: (reason) => {
        signal?.removeEventListener("abort", release);
        return reader?.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/** A store's body as a stream (the fs driver answers with a Blob). */
export function asStream(body: Blob | ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  return body instanceof Blob ? (body.stream() as ReadableStream<Uint8Array>) : body;
}

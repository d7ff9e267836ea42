import postgres from "postgres";

/** A failure worth telling the admin in the backup's row (no secrets: tool output and our own sentences). */
export class BackupFailure extends Error {}

export function failureReason(err: unknown): string {
  if (err instanceof BackupFailure) return err.message;
  if (err instanceof postgres.PostgresError) return `${err.message} (${err.code})`;
  return (err as Error).message ?? String(err);
}

/** The last lines a child wrote to stderr (4 KB at most are kept), read as they come so the pipe never fills. */
export async function tailOf(stream: ReadableStream<Uint8Array>, keep = 4096): Promise<string> {
  let tail = "";
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    tail = (tail + decoder.decode(chunk, { stream: true })).slice(-keep);
  }
  return tail
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-5)
    .join(" | ")
    .slice(0, 1000);
}

/** A duration in milliseconds as a reason says it: "1 h", "30 min", "3 s". */
export function describeDuration(ms: number) {
  const s = ms / 1000;
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}

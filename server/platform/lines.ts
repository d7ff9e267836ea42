/** Calls onLine for each line of a byte stream (a child process's output), the last one even without "\n". */
export async function readLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    const parts = pending.split("\n");
    pending = parts.pop()!;
    for (const line of parts) onLine(line);
  }
  pending += decoder.decode();
  if (pending) onLine(pending);
}

// Byte scanners an import stream passes through on its way to COPY … FROM STDIN: they keep memory
// flat (a byte of state, a sparse list) and do no parsing of values — Postgres' COPY does that.
//   csvTracker: drops a UTF-8 BOM, reads the header record's names, and knows on which line each
//     record starts (a quoted field may hold line breaks), to report errors by line.
//   jsonArrayToLines: a JSON array, however it is laid out, as one element per line (NDJSON).
// No app imports.

const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;
const MAX_HEADER_BYTES = 64 * 1024;

export class ImportFormatError extends Error {}

export interface CsvTracker {
  stream: TransformStream<Uint8Array, Uint8Array>;
  /** The header's column names, once the header record has passed. */
  header(): string[] | undefined;
  /** The line data record `n` (1-based, the header not counted) starts on. */
  lineOf(n: number): number;
  /** Data records passed so far (the header not counted). */
  records(): number;
}

export function csvTracker(): CsvTracker {
  let first = true;
  let inQuotes = false;
  let line = 1;
  let record = 0; // the header is record 0
  let headerBytes: number[] | undefined = [];
  let header: string[] | undefined;
  // [record, start line] wherever a record starts on another line than record + 1 (after a record with line breaks).
  const breaks: [number, number][] = [];

  const endRecord = () => {
    record++;
    const startLine = line + 1;
    const last = breaks.at(-1);
    const expected = last ? last[1] + (record - last[0]) : record + 1;
    if (startLine !== expected) breaks.push([record, startLine]);
  };

  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      if (first) {
        first = false;
        if (chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) chunk = chunk.subarray(3);
      }
      for (let i = 0; i < chunk.length; i++) {
        const b = chunk[i]!;
        if (headerBytes) {
          if (b === LF && !inQuotes) {
            header = parseHeader(Buffer.from(headerBytes).toString("utf8"));
            headerBytes = undefined;
          } else {
            headerBytes.push(b);
            if (headerBytes.length > MAX_HEADER_BYTES) throw new ImportFormatError(`the header line is longer than ${MAX_HEADER_BYTES} bytes`);
          }
        }
        if (b === QUOTE) inQuotes = !inQuotes;
        else if (b === LF) {
          if (!inQuotes) endRecord();
          line++;
        }
      }
      controller.enqueue(chunk);
    },
    flush() {
      if (headerBytes) {
        header = parseHeader(Buffer.from(headerBytes).toString("utf8"));
        headerBytes = undefined;
      }
    },
  });

  return {
    stream,
    header: () => header,
    records: () => Math.max(0, record - 1),
    lineOf(n: number) {
      let lo = 0;
      let hi = breaks.length - 1;
      let found: [number, number] | undefined;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (breaks[mid]![0] <= n) {
          found = breaks[mid];
          lo = mid + 1;
        } else hi = mid - 1;
      }
      return found ? found[1] + (n - found[0]) : n + 1;
    },
  };
}

/** The names of a CSV header record: commas outside quotes split, "" is a quote. */
export function parseHeader(text: string): string[] {
  const names: string[] = [];
  let name = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        name += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else name += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      names.push(name);
      name = "";
    } else if (ch !== "\r") name += ch;
  }
  names.push(name);
  return names.map((n) => n.trim());
}

/**
 * A JSON array as one element per line: line breaks and tabs outside strings become spaces, the
 * commas between elements line breaks. Throws ImportFormatError when the text is not one array.
 */
export function jsonArrayToLines(): TransformStream<Uint8Array, Uint8Array> {
  let depth = 0;
  let inString = false;
  let escaped = false;
  let ended = false;
  let started = false;
  let first = true;
  const out: number[] = [];
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      if (first) {
        first = false;
        if (chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) chunk = chunk.subarray(3);
      }
      for (const b of chunk) {
        if (inString) {
          out.push(b);
          if (escaped) escaped = false;
          else if (b === 0x5c) escaped = true;
          else if (b === QUOTE) inString = false;
          continue;
        }
        const space = b === 0x20 || b === LF || b === CR || b === 0x09;
        if (ended) {
          if (!space) throw new ImportFormatError("there is more after the JSON array's closing ]");
          continue;
        }
        if (!started) {
          if (space) continue;
          if (b !== 0x5b) throw new ImportFormatError("a JSON import must be one array of objects (or use format=ndjson)");
          started = true;
          depth = 1;
          continue;
        }
        if (b === QUOTE) inString = true;
        else if (b === 0x5b || b === 0x7b) depth++;
        else if (b === 0x5d || b === 0x7d) {
          depth--;
          if (depth === 0) {
            ended = true;
            continue;
          }
        } else if (b === 0x2c && depth === 1) {
          out.push(LF);
          continue;
        }
        out.push(space ? 0x20 : b);
      }
      if (out.length) controller.enqueue(Uint8Array.from(out.splice(0)));
    },
    flush(controller) {
      if (!ended) throw new ImportFormatError("the JSON array is not closed (the file ends early)");
      controller.enqueue(Uint8Array.of(LF));
    },
  });
}

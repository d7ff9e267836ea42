// A look at the start of a file to import, in the browser: its columns and first rows, for the
// import wizard's mapping. Only the first PREVIEW_BYTES are read; the server parses the whole file.
import type { DataFormat } from "../api";

const PREVIEW_BYTES = 64 * 1024;
const PREVIEW_ROWS = 3;
/** A JSON array is parsed whole for its preview only up to this size. */
const JSON_PREVIEW_MAX = 4 * 1024 * 1024;

export interface FilePreview {
  columns: string[];
  /** Up to PREVIEW_ROWS rows, as text, one value per column. */
  rows: string[][];
  /** Why there is no preview (the file is still imported by column name). */
  note?: string;
}

export function formatOf(fileName: string): DataFormat {
  if (/\.(ndjson|jsonl)$/i.test(fileName)) return "ndjson";
  if (/\.json$/i.test(fileName)) return "json";
  return "csv";
}

export async function previewFile(file: File, format: DataFormat): Promise<FilePreview> {
  if (format === "json") {
    if (file.size > JSON_PREVIEW_MAX) return { columns: [], rows: [], note: "The file is too large to preview here; its keys are matched to columns by name." };
    const parsed: unknown = JSON.parse(await file.text());
    if (!Array.isArray(parsed)) throw new Error("A JSON file to import holds one array of objects.");
    return fromObjects(parsed.slice(0, PREVIEW_ROWS));
  }
  const head = await file.slice(0, PREVIEW_BYTES).text();
  const complete = file.size <= PREVIEW_BYTES;
  if (format === "ndjson") {
    const lines = head.split(/\r?\n/).filter((l, i, all) => l.trim() !== "" && (complete || i < all.length - 1));
    return fromObjects(lines.slice(0, PREVIEW_ROWS).map((l) => JSON.parse(l)));
  }
  const records = parseCsv(head.replace(/^\uFEFF/, ""), complete);
  const [columns = [], ...rows] = records;
  return { columns, rows: rows.slice(0, PREVIEW_ROWS) };
}

/** The keys of the first objects (in the order first seen), and their values as text. */
function fromObjects(items: unknown[]): FilePreview {
  const objects = items.map((o) => {
    if (!o || typeof o !== "object" || Array.isArray(o)) throw new Error("Each item to import is a JSON object.");
    return o as Record<string, unknown>;
  });
  const columns = [...new Set(objects.flatMap((o) => Object.keys(o)))];
  const text = (v: unknown) => (v === undefined ? "" : v === null ? "null" : typeof v === "object" ? JSON.stringify(v) : String(v));
  return { columns, rows: objects.map((o) => columns.map((c) => text(o[c]))) };
}

/**
 * RFC 4180 records (quoted fields with commas, quotes and line breaks). When the text is only the
 * start of the file, its last record may be cut off, so it is dropped.
 */
export function parseCsv(text: string, complete = true): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field === "") quoted = true;
    else if (ch === ",") record.push(field), (field = "");
    else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      record.push(field);
      records.push(record);
      (record = []), (field = "");
    } else field += ch;
  }
  if (complete && (field !== "" || record.length)) record.push(field), records.push(record);
  return records.filter((r) => !(r.length === 1 && r[0] === ""));
}

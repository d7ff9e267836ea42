// HTTP byte ranges for object downloads (RFC 9110 §14): one range, or the whole object.

export type RangeAnswer = { kind: "whole" } | { kind: "partial"; start: number; end: number } | { kind: "unsatisfiable" };

/**
 * What to send for a `Range` header against an object of `size` bytes. Several ranges, other units
 * and malformed headers are ignored (the whole object is sent), which RFC 9110 allows; a
 * well-formed single range that starts past the end cannot be satisfied (416).
 */
export function resolveRange(header: string | undefined, size: number): RangeAnswer {
  if (!header) return { kind: "whole" };
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === "" && match[2] === "")) return { kind: "whole" };
  const [first, last] = [match[1]!, match[2]!];
  if (first === "") {
    // A suffix: the last N bytes.
    const length = Number(last);
    if (length === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "partial", start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  if (last !== "" && Number(last) < start) return { kind: "whole" };
  if (start >= size) return { kind: "unsatisfiable" };
  return { kind: "partial", start, end: last === "" ? size - 1 : Math.min(Number(last), size - 1) };
}

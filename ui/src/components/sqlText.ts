// SQL text the table browser builds (it reads tables through the admin SQL endpoint). Names are
// quoted as identifiers and values as literals; the server runs with standard_conforming_strings on,
// so a backslash in a literal is just a backslash.

export const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;
export const literal = (value: string) => `'${value.replaceAll("'", "''")}'`;

export type FilterOp = "eq" | "neq" | "lt" | "lte" | "gt" | "gte" | "like" | "ilike" | "in" | "is";
export const FILTER_OPS: { op: FilterOp; label: string }[] = [
  { op: "eq", label: "=" },
  { op: "neq", label: "≠" },
  { op: "lt", label: "<" },
  { op: "lte", label: "≤" },
  { op: "gt", label: ">" },
  { op: "gte", label: "≥" },
  { op: "like", label: "like" },
  { op: "ilike", label: "ilike" },
  { op: "in", label: "in" },
  { op: "is", label: "is" },
];
export interface Filter {
  column: string;
  op: FilterOp;
  value: string;
}

const COMPARE: Partial<Record<FilterOp, string>> = { eq: "=", neq: "<>", lt: "<", lte: "<=", gt: ">", gte: ">=", like: "like", ilike: "ilike" };

/**
 * One condition as /v1/db reads it: like/ilike take * as the wildcard, in takes a comma-separated
 * list, is takes null, not null, true or false. Throws a sentence when the value cannot be used.
 */
export function condition(f: Filter): string {
  const col = ident(f.column);
  if (f.op === "is") {
    const v = f.value.trim().toLowerCase();
    if (!["null", "not null", "true", "false"].includes(v)) throw new Error("“is” takes null, not null, true or false.");
    return `${col} is ${v}`;
  }
  if (f.op === "in") {
    const items = f.value.split(",").map((v) => v.trim()).filter((v) => v !== "");
    if (items.length === 0) throw new Error("“in” takes a comma-separated list.");
    return `${col} in (${items.map(literal).join(", ")})`;
  }
  const value = f.op === "like" || f.op === "ilike" ? f.value.replaceAll("*", "%") : f.value;
  // Text comparison for like/ilike works on any column type.
  return f.op === "like" || f.op === "ilike" ? `${col}::text ${COMPARE[f.op]} ${literal(value)}` : `${col} ${COMPARE[f.op]} ${literal(value)}`;
}

/** The filters as /v1/db query parameters (column=op.value), for the server's table export. */
export function restFilters(filters: Filter[]): [string, string][] {
  return filters.map((f) => {
    if (f.op === "is") {
      const v = f.value.trim().toLowerCase();
      return [f.column, v === "not null" ? "not.is.null" : `is.${v}`];
    }
    if (f.op === "in") {
      const items = f.value.split(",").map((v) => v.trim()).filter((v) => v !== "");
      return [f.column, `in.(${items.map((v) => `"${v.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`).join(",")})`];
    }
    return [f.column, `${f.op}.${f.value}`];
  });
}

export const where = (filters: Filter[]) => (filters.length ? ` where ${filters.map(condition).join(" and ")}` : "");

/** RFC 4180 CSV of a result: NULL as an empty field, objects as JSON. */
export function toCsv(columns: string[], rows: unknown[][]) {
  const cell = (v: unknown) => {
    if (v === null || v === undefined) return "";
    const s = typeof v === "object" ? JSON.stringify(v) : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return [columns.map(cell).join(","), ...rows.map((r) => r.map(cell).join(","))].join("\r\n") + "\r\n";
}

export function downloadText(filename: string, text: string, type = "text/csv;charset=utf-8") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// Stage 2: the parsed request checked against the schema cache. Every table and column name that
// leaves this stage exists; everything else is a 400 naming what was not found. Pure.
import type { ReadRequest } from "./parse";
import { badRequest } from "./parse";
import type { Schema, Table } from "./schema";

export interface ReadPlan extends ReadRequest {
  table: Table;
  columns: string[];
}

export function planRead(schema: Schema, tableName: string, request: ReadRequest): ReadPlan {
  const table = schema.get(tableName);
  if (!table) throw badRequest("unknown_table", `No table or view named "${tableName}" in this project.`, { table: tableName });
  const known = new Set(table.columns.map((c) => c.name));
  const check = (column: string) => {
    if (!known.has(column)) throw badRequest("unknown_column", `Table "${tableName}" has no column "${column}".`, { table: tableName, column });
  };
  const columns = request.select === "*" ? table.columns.map((c) => c.name) : request.select;
  columns.forEach(check);
  request.order.forEach((o) => check(o.column));
  request.filters.forEach((f) => check(f.column));
  return { ...request, table, columns };
}

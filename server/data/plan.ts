// Stage 2: the parsed request checked against the schema cache. Every table and column name that
// leaves this stage exists; everything else is a 400 naming what was not found. Pure.
import type { ReadRequest } from "./parse";
import { badRequest, filterColumns } from "./parse";
import type { Schema, Table } from "./schema";

export interface ReadPlan extends ReadRequest {
  table: Table;
  columns: string[];
}

export function findTable(schema: Schema, name: string): Table {
  const table = schema.get(name);
  if (!table) throw badRequest("unknown_table", `No table or view named "${name}" in this project.`, { table: name });
  return table;
}

export function checkColumns(table: Table, columns: Iterable<string>) {
  for (const column of columns) {
    if (!table.columns.some((c) => c.name === column)) throw badRequest("unknown_column", `Table "${table.name}" has no column "${column}".`, { table: table.name, column });
  }
}

export function planRead(schema: Schema, tableName: string, request: ReadRequest): ReadPlan {
  const table = findTable(schema, tableName);
  const columns = request.select === "*" ? table.columns.map((c) => c.name) : request.select;
  checkColumns(table, [...columns, ...request.order.map((o) => o.column), ...filterColumns(request.filters)]);
  return { ...request, table, columns };
}

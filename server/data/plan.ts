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

// A table's column names, worked out once per table of the schema cache (a reload brings new tables).
const columnNames = new WeakMap<Table, { list: string[]; known: Set<string> }>();

/** The table's column names in order, and as a set for lookups. */
export function namesOf(table: Table) {
  let names = columnNames.get(table);
  if (!names) {
    const list = Object.freeze(table.columns.map((c) => c.name)) as string[];
    columnNames.set(table, (names = { list, known: new Set(list) }));
  }
  return names;
}

export function checkColumns(table: Table, columns: Iterable<string>) {
  const { known } = namesOf(table);
  for (const column of columns) {
    if (!known.has(column)) throw badRequest("unknown_column", `Table "${table.name}" has no column "${column}".`, { table: table.name, column });
  }
}

/** The columns a `select` names, each once and checked against the table: all the table's for `*` (or none given). */
export function selectedColumns(table: Table, select: string[] | "*" | undefined): string[] {
  if (select === undefined || select === "*") return namesOf(table).list;
  const columns = [...new Set(select)];
  checkColumns(table, columns);
  return columns;
}

export function planRead(schema: Schema, tableName: string, request: ReadRequest): ReadPlan {
  const table = findTable(schema, tableName);
  const columns = selectedColumns(table, request.select);
  checkColumns(table, [...request.order.map((o) => o.column), ...filterColumns(request.filters)]);
  return { ...request, table, columns };
}

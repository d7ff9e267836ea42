// The public schema's tables and columns, read through the admin SQL endpoint as the owner role
// (the admin API has no table listing): for the table browser and the import wizard.
import { api } from "../api";
import { ident, literal } from "./sqlText";

export interface TableInfo {
  name: string;
  /** pg_class.relkind: r, p (tables), v, m, f. */
  kind: string;
  estimate: number;
}
export interface ColumnInfo {
  name: string;
  type: string;
  nullable: boolean;
  hasDefault: boolean;
  pk: boolean;
}

const TABLES_QUERY = `select c.relname, c.relkind::text, greatest(c.reltuples, 0)::bigint::text
from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'public' and c.relkind in ('r', 'v', 'm', 'p', 'f')
order by c.relname`;

const columnsQuery = (table: string) => `select a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), not a.attnotnull,
  a.atthasdef or a.attidentity <> '' or a.attgenerated <> '',
  coalesce(a.attnum = any(i.indkey), false)
from pg_catalog.pg_attribute a
left join pg_catalog.pg_index i on i.indrelid = a.attrelid and i.indisprimary
where a.attrelid = ${literal(`public.${ident(table)}`)}::regclass and a.attnum > 0 and not a.attisdropped
order by a.attnum`;

export const TABLE_KIND: Record<string, string> = { r: "table", p: "table", v: "view", m: "materialized view", f: "foreign table" };
export const isTable = (t: TableInfo | undefined) => t?.kind === "r" || t?.kind === "p";

export async function loadTables(project: string): Promise<TableInfo[]> {
  return (await api.sql(project, TABLES_QUERY)).rows.map(([name, kind, estimate]) => ({ name, kind, estimate: Number(estimate) }) as TableInfo);
}

export async function loadColumns(project: string, table: string): Promise<ColumnInfo[]> {
  return (await api.sql(project, columnsQuery(table))).rows.map(([name, type, nullable, hasDefault, pk]) => ({ name, type, nullable, hasDefault, pk }) as ColumnInfo);
}

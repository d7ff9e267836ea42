// The schema cache: what tables, views and columns a project's `public` schema has, read through the
// project's app role (so it lists only what that role can see). Stage 2 checks every name against it.
import type { Sql } from "../platform/db";

export interface Column {
  name: string;
  type: string;
  nullable: boolean;
}

export interface Table {
  name: string;
  kind: "table" | "view";
  columns: Column[];
  primaryKey: string[];
}

export type Schema = Map<string, Table>;

export async function loadSchema(sql: Sql): Promise<Schema> {
  const rows = await sql<{ table: string; kind: string; column: string; type: string; nullable: boolean; pk: boolean; position: number }[]>`
    select c.relname as table, case when c.relkind in ('v', 'm') then 'view' else 'table' end as kind,
           a.attname as column, format_type(a.atttypid, a.atttypmod) as type, not a.attnotnull as nullable,
           coalesce(a.attnum = any(i.indkey), false) as pk, a.attnum as position
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
    join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    left join pg_index i on i.indrelid = c.oid and i.indisprimary
    where c.relkind in ('r', 'p', 'v', 'm') and has_table_privilege(c.oid, 'select')
    order by c.relname, a.attnum`;
  const schema: Schema = new Map();
  for (const r of rows) {
    let table = schema.get(r.table);
    if (!table) schema.set(r.table, (table = { name: r.table, kind: r.kind as Table["kind"], columns: [], primaryKey: [] }));
    table.columns.push({ name: r.column, type: r.type, nullable: r.nullable });
    if (r.pk) table.primaryKey.push(r.column);
  }
  return schema;
}

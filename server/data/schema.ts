// The schema cache: what tables, views and columns a project's `public` schema has, read through the
// project's app role (so it lists only what that role can see). Stage 2 checks every name against it.
import type { Sql } from "../platform/db";

export interface Column {
  name: string;
  type: string;
  nullable: boolean;
}

/**
 * How a column's values travel in JSON when Postgres' own to_json would lose or garble them: int8 and
 * numeric beyond what a JS number holds exactly (see render.ts for the rules), bytea (hex text
 * otherwise; base64 here), vector and halfvec (a quoted "[1,2,3]" otherwise; a number array here).
 */
export type JsonForm = "int8" | "numeric" | "bytea" | "vector";

export interface Table {
  name: string;
  kind: "table" | "view";
  columns: Column[];
  primaryKey: string[];
  /** The columns that have a JSON form of their own; every other column is what to_json makes of it. */
  jsonForms?: Map<string, JsonForm>;
}

export type Schema = Map<string, Table>;

/** By the name of the column's type, or of the type under its domain. */
const JSON_FORMS = new Map<string, JsonForm>([["int8", "int8"], ["numeric", "numeric"], ["bytea", "bytea"], ["vector", "vector"], ["halfvec", "vector"]]);

export async function loadSchema(sql: Sql): Promise<Schema> {
  const rows = await sql<{ table: string; kind: string; column: string; type: string; base: string; nullable: boolean; pk: boolean; position: number }[]>`
    select c.relname as table, case when c.relkind in ('v', 'm') then 'view' else 'table' end as kind,
           a.attname as column, format_type(a.atttypid, a.atttypmod) as type, b.typname as base,
           not a.attnotnull as nullable, coalesce(a.attnum = any(i.indkey), false) as pk, a.attnum as position
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
    join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    join pg_type t on t.oid = a.atttypid
    join pg_type b on b.oid = case when t.typtype = 'd' then t.typbasetype else t.oid end
    left join pg_index i on i.indrelid = c.oid and i.indisprimary
    where c.relkind in ('r', 'p', 'v', 'm') and has_table_privilege(c.oid, 'select')
    order by c.relname, a.attnum`;
  const schema: Schema = new Map();
  for (const r of rows) {
    let table = schema.get(r.table);
    if (!table) schema.set(r.table, (table = { name: r.table, kind: r.kind as Table["kind"], columns: [], primaryKey: [], jsonForms: new Map() }));
    table.columns.push({ name: r.column, type: r.type, nullable: r.nullable });
    if (r.pk) table.primaryKey.push(r.column);
    const form = JSON_FORMS.get(r.base);
    if (form) table.jsonForms?.set(r.column, form);
  }
  return schema;
}

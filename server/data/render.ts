// Stage 3: SQL text and parameters from a plan. Identifiers are quoted from names the planner has
// checked; every value is a $n parameter. Postgres builds the JSON (json_agg, or row_to_json for a
// point lookup), so rows go to the client without being parsed and re-serialised in JS. Pure.
import type { Condition, Filter } from "./parse";
import { namesOf, type ReadPlan } from "./plan";
import type { JsonForm, Table } from "./schema";

export interface Rendered {
  text: string;
  params: string[];
}

export function quoteIdent(name: string) {
  return '"' + (name.includes('"') ? name.replaceAll('"', '""') : name) + '"';
}

const COMPARISONS: Record<string, string> = { eq: "=", neq: "<>", lt: "<", lte: "<=", gt: ">", gte: ">=" };

export interface RenderedRead extends Rendered {
  /** A point lookup's SQL answers a row per table row, `body` its JSON object (see readResult); other reads answer one row, the JSON array and `shown`. */
  perRow?: boolean;
}

export function renderRead(plan: ReadPlan): RenderedRead {
  const params: string[] = [];
  const where = renderWhere(plan.filters, params);
  const order = plan.order.length
    ? " order by " + plan.order.map((o) => `${quoteIdent(o.column)} ${o.descending ? "desc" : "asc"}${o.nulls ? ` nulls ${o.nulls}` : ""}`).join(", ")
    : "";
  params.push(String(plan.limit), String(plan.offset));
  const { table, columns } = plan;
  const inner = `select ${projectionOf(table, columns).list} from ${quoteIdent(table.name)}${where}${order} limit $${params.length - 1}::bigint offset $${params.length}::bigint`;
  const rows = inJsonForm(table, columns, inner);
  // At most one row (children of an inherited table aside, which the limit still bounds): the row's
  // JSON alone spares Postgres the aggregate and count, a fifth of its time for such a read.
  if (pinsPrimaryKey(plan)) return { text: `select row_to_json(r)::text as body from (${rows}) r`, params, perRow: true };
  // `shown` saves parsing the JSON again to count it (Content-Range).
  return { text: `select coalesce(json_agg(r), '[]')::text as body, count(*)::int as shown from (${rows}) r`, params };
}

/** A point lookup: a top-level, non-negated eq pins every primary-key column. */
function pinsPrimaryKey({ table, filters }: ReadPlan) {
  const pinned = (column: string) => filters.some((f) => !("logic" in f) && f.column === column && f.op === "eq" && !f.negate);
  return table.primaryKey.length > 0 && table.primaryKey.every(pinned);
}

/** The rows a read's SQL answered, as one JSON array and its length. */
export function readResult(read: RenderedRead, result: { body: string; shown?: number }[]): { body: string; shown: number } {
  if (!read.perRow) return result[0] as { body: string; shown: number };
  return { body: "[" + result.map((r) => r.body).join(",") + "]", shown: result.length };
}

/**
 * `rows`, a select of `columns` (each once), with every column that has a JSON form of its own
 * converted to it under its own name. The conversion is a projection over `rows` rather than part of
 * it because `order by "c"` would otherwise sort by the converted output column. When no column
 * needs converting, `rows` comes back unchanged: plain reads stay one flat select.
 */
export function inJsonForm(table: Table, columns: string[], rows: string): string {
  const converted = projectionOf(table, columns).converted;
  return converted ? `select ${converted} from (${rows}) v` : rows;
}

interface Projection {
  /** The quoted column names. */
  list: string;
  /** The same with JSON forms applied, when a column has one. */
  converted?: string;
}

function project(table: Table, columns: string[]): Projection {
  const list = columns.map(quoteIdent).join(", ");
  const forms = table.jsonForms;
  if (!forms || !columns.some((c) => forms.has(c))) return { list };
  const converted = columns.map((c) => {
    const form = forms.get(c);
    return form ? `${jsonValue(quoteIdent(c), form)} as ${quoteIdent(c)}` : quoteIdent(c);
  });
  return { list, converted: converted.join(", ") };
}

// All of a table's columns (select=*, the common read) are projected once per table of the schema cache.
const allColumns = new WeakMap<Table, Projection>();

function projectionOf(table: Table, columns: string[]): Projection {
  if (columns !== namesOf(table).list) return project(table, columns);
  let projection = allColumns.get(table);
  if (!projection) allColumns.set(table, (projection = project(table, columns)));
  return projection;
}

// 2^53 − 1: past it, JSON.parse (an IEEE double) no longer reads an integer back exactly.
const MAX_SAFE_INTEGER = "9007199254740991";

/**
 * One value in its JSON form:
 * - int8: a number when |v| ≤ 2^53 − 1, else its digits as a string.
 * - numeric: a number when it has at most 15 significant digits and 1e-300 ≤ |v| ≤ 1e300 (or is 0),
 *   because every such decimal survives the trip through a double unchanged; else its exact text as
 *   a string (so are NaN and ±Infinity). Postgres turns a float8 into numeric with 15 significant
 *   digits, so `v::float8::numeric = v` holds exactly when v has at most 15; the range test comes
 *   first because the cast fails outside a double's range.
 * - bytea: base64, without the line break encode() puts every 76 characters.
 * - vector: its text, "[1,2.5,3]", is already a JSON array of numbers.
 */
function jsonValue(column: string, form: JsonForm): string {
  switch (form) {
    case "int8":
      return `case when ${column} between -${MAX_SAFE_INTEGER} and ${MAX_SAFE_INTEGER} then to_json(${column}) else to_json(${column}::text) end`;
    case "numeric":
      return (
        `case when ${column} = 0 then to_json(${column}) when abs(${column}) not between 1e-300 and 1e300 then to_json(${column}::text)` +
        ` when ${column}::float8::numeric = ${column} then to_json(${column}) else to_json(${column}::text) end`
      );
    case "bytea":
      return `translate(encode(${column}, 'base64'), chr(10), '')`;
    case "vector":
      return `${column}::text::json`;
  }
}

export function renderCount(plan: ReadPlan): Rendered {
  const params: string[] = [];
  const where = renderWhere(plan.filters, params);
  return { text: `select count(*)::text as total from ${quoteIdent(plan.table.name)}${where}`, params };
}

export function renderWhere(filters: Condition[], params: string[]) {
  if (!filters.length) return "";
  return " where " + filters.map((f) => renderCondition(f, params)).join(" and ");
}

function renderCondition(c: Condition, params: string[]): string {
  if (!("logic" in c)) return renderFilter(c, params);
  const joined = "(" + c.items.map((item) => renderCondition(item, params)).join(` ${c.logic} `) + ")";
  return c.negate ? `not ${joined}` : joined;
}

function renderFilter(f: Filter, params: string[]): string {
  const column = quoteIdent(f.column);
  const param = (value: string) => {
    params.push(value);
    return `$${params.length}`;
  };
  let condition: string;
  if (f.op === "is") condition = `${column} is ${f.value}`; // null | true | false, checked by the parser
  else if (f.op === "in") condition = (f.value as string[]).length ? `${column} in (${(f.value as string[]).map(param).join(", ")})` : "false";
  // As in PostgREST, * stands for % (which is awkward in URLs).
  else if (f.op === "like" || f.op === "ilike") condition = `${column}::text ${f.op} ${param((f.value as string).replaceAll("*", "%"))}`;
  else condition = `${column} ${COMPARISONS[f.op]} ${param(f.value as string)}`;
  return f.negate ? `not (${condition})` : condition;
}

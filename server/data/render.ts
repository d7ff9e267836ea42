// Stage 3: SQL text and parameters from a plan. Identifiers are quoted from names the planner has
// checked; every value is a $n parameter. Postgres builds the JSON (json_agg), so rows go to the
// client without being parsed and re-serialised in JS. Pure.
import type { Filter } from "./parse";
import type { ReadPlan } from "./plan";

export interface Rendered {
  text: string;
  params: string[];
}

export function quoteIdent(name: string) {
  return '"' + name.replaceAll('"', '""') + '"';
}

const COMPARISONS: Record<string, string> = { eq: "=", neq: "<>", lt: "<", lte: "<=", gt: ">", gte: ">=" };

export function renderRead(plan: ReadPlan): Rendered {
  const params: string[] = [];
  const where = renderWhere(plan.filters, params);
  const order = plan.order.length
    ? " order by " + plan.order.map((o) => `${quoteIdent(o.column)} ${o.descending ? "desc" : "asc"}${o.nulls ? ` nulls ${o.nulls}` : ""}`).join(", ")
    : "";
  params.push(String(plan.limit), String(plan.offset));
  const inner = `select ${plan.columns.map(quoteIdent).join(", ")} from ${quoteIdent(plan.table.name)}${where}${order} limit $${params.length - 1}::bigint offset $${params.length}::bigint`;
  return { text: `select coalesce(json_agg(r), '[]')::text as body from (${inner}) r`, params };
}

export function renderCount(plan: ReadPlan): Rendered {
  const params: string[] = [];
  const where = renderWhere(plan.filters, params);
  return { text: `select count(*)::text as total from ${quoteIdent(plan.table.name)}${where}`, params };
}

export function renderWhere(filters: Filter[], params: string[]) {
  if (!filters.length) return "";
  return " where " + filters.map((f) => renderFilter(f, params)).join(" and ");
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

// Stage 1 of /v1/db (PostgREST's pipeline): the query string as a typed request. Pure; knows
// nothing of the database, so every name in it is still just text to be checked by the planner.
import { ApiError } from "../http/errors";

export const OPERATORS = ["eq", "neq", "lt", "lte", "gt", "gte", "like", "ilike", "in", "is"] as const;
export type Operator = (typeof OPERATORS)[number];

export interface Filter {
  column: string;
  op: Operator;
  negate: boolean;
  /** One value for most operators, the list for `in`, "null" | "true" | "false" for `is`. */
  value: string | string[];
}

export interface Order {
  column: string;
  descending: boolean;
  nulls?: "first" | "last";
}

export interface ReadRequest {
  select: string[] | "*";
  order: Order[];
  limit: number;
  offset: number;
  filters: Filter[];
}

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;
const RESERVED = new Set(["select", "order", "limit", "offset", "on_conflict"]);

export function badRequest(code: string, message: string, details?: Record<string, unknown>) {
  return new ApiError(400, code, message, details);
}

export function parseReadRequest(params: URLSearchParams): ReadRequest {
  return {
    select: parseSelect(params.get("select")),
    order: parseOrder(params.get("order")),
    limit: parseCount("limit", params.get("limit"), DEFAULT_LIMIT, MAX_LIMIT),
    offset: parseCount("offset", params.get("offset"), 0, Number.MAX_SAFE_INTEGER),
    filters: parseFilters(params),
  };
}

export function parseFilters(params: URLSearchParams): Filter[] {
  const filters: Filter[] = [];
  for (const [column, raw] of params) {
    if (RESERVED.has(column)) continue;
    filters.push(parseFilter(column, raw));
  }
  return filters;
}

function parseSelect(raw: string | null): string[] | "*" {
  if (raw === null || raw.trim() === "*") return "*";
  const columns = raw.split(",").map((c) => c.trim());
  if (columns.some((c) => c === "")) throw badRequest("invalid_select", "select must be a comma-separated list of columns.");
  return columns;
}

function parseOrder(raw: string | null): Order[] {
  if (raw === null) return [];
  return raw.split(",").map((term) => {
    const [column = "", ...modifiers] = term.trim().split(".");
    if (!column) throw badRequest("invalid_order", "order must look like column.asc or column.desc.nullslast.");
    const order: Order = { column, descending: false };
    for (const m of modifiers) {
      if (m === "asc" || m === "desc") order.descending = m === "desc";
      else if (m === "nullsfirst" || m === "nullslast") order.nulls = m === "nullsfirst" ? "first" : "last";
      else throw badRequest("invalid_order", `Unknown order modifier "${m}": use asc, desc, nullsfirst or nullslast.`, { modifier: m });
    }
    return order;
  });
}

function parseCount(name: string, raw: string | null, fallback: number, max: number) {
  if (raw === null) return fallback;
  if (!/^\d{1,15}$/.test(raw)) throw badRequest("invalid_" + name, `${name} must be a whole number.`);
  const n = Number(raw);
  if (n > max) throw badRequest("invalid_" + name, `${name} may be at most ${max}.`, { max });
  return n;
}

function parseFilter(column: string, raw: string): Filter {
  let rest = raw;
  const negate = rest.startsWith("not.");
  if (negate) rest = rest.slice(4);
  const dot = rest.indexOf(".");
  const op = (dot < 0 ? rest : rest.slice(0, dot)) as Operator;
  if (!OPERATORS.includes(op)) {
    throw badRequest("unknown_operator", `Unknown operator in ${column}=${raw}: use one of ${OPERATORS.join(", ")}.`, { column, operator: op });
  }
  if (dot < 0) throw badRequest("invalid_filter", `${column}=${raw} needs a value after "${op}."`, { column });
  const value = rest.slice(dot + 1);
  if (op === "is") {
    if (!["null", "true", "false"].includes(value)) throw badRequest("invalid_filter", `is takes null, true or false, not "${value}".`, { column });
    return { column, op, negate, value };
  }
  if (op === "in") return { column, op, negate, value: parseList(column, value) };
  return { column, op, negate, value };
}

/** in.(a,b,"c,d","say \"hi\"") → ["a", "b", "c,d", "say \"hi\""] */
function parseList(column: string, raw: string): string[] {
  if (!raw.startsWith("(") || !raw.endsWith(")")) throw badRequest("invalid_filter", `in takes a list in parentheses: ${column}=in.(a,b).`, { column });
  const body = raw.slice(1, -1);
  if (body === "") return [];
  const items: string[] = [];
  let i = 0;
  while (i <= body.length) {
    if (body[i] === '"') {
      let item = "";
      i++;
      while (i < body.length && body[i] !== '"') {
        if (body[i] === "\\" && i + 1 < body.length) i++;
        item += body[i++];
      }
      if (body[i] !== '"') throw badRequest("invalid_filter", `Unterminated quote in ${column}=in.(…).`, { column });
      i++;
      items.push(item);
      if (i < body.length && body[i] !== ",") throw badRequest("invalid_filter", `Expected "," after a quoted value in ${column}=in.(…).`, { column });
      i++;
    } else {
      const end = body.indexOf(",", i);
      items.push(body.slice(i, end < 0 ? body.length : end));
      i = end < 0 ? body.length + 1 : end + 1;
    }
  }
  if (items.length > MAX_LIMIT) throw badRequest("invalid_filter", `in takes at most ${MAX_LIMIT} values.`, { column });
  return items;
}

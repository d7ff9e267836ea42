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

/** PostgREST's or=(…) and and=(…): conditions joined by `logic`, nested up to MAX_LOGIC_DEPTH. */
export interface FilterGroup {
  logic: "and" | "or";
  negate: boolean;
  items: Condition[];
}

export type Condition = Filter | FilterGroup;

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
  filters: Condition[];
}

export const DEFAULT_LIMIT = 100;
const MAX_LOGIC_DEPTH = 8;
export const MAX_LIMIT = 1000;
// `columns` is what postgrest-js sends with an array insert (the union of the rows' keys); the
// rows' own keys say the same, so it is accepted and not needed.
const RESERVED = new Set(["select", "order", "limit", "offset", "on_conflict", "columns"]);

export function badRequest(code: string, message: string, details?: Record<string, unknown>) {
  return new ApiError(400, code, message, details);
}

export interface LimitRule {
  defaultLimit: number;
  /** Past MAX_LIMIT: a 400 (AtlasHub's /v1/db, explicit), or quietly MAX_LIMIT rows (PostgREST's max-rows, as Supabase does). */
  overMax: "reject" | "cap";
}
const V1_LIMITS: LimitRule = { defaultLimit: DEFAULT_LIMIT, overMax: "reject" };

export function parseReadRequest(params: URLSearchParams, limits = V1_LIMITS): ReadRequest {
  return {
    select: parseSelect(params.get("select")),
    order: parseOrder(params.get("order")),
    limit: parseLimit(params.get("limit"), limits),
    offset: parseCount("offset", params.get("offset"), 0, Number.MAX_SAFE_INTEGER),
    filters: parseFilters(params),
  };
}

export function parseFilters(params: URLSearchParams): Condition[] {
  const filters: Condition[] = [];
  for (const [column, raw] of params) {
    if (RESERVED.has(column)) continue;
    const logic = /^(not\.)?(or|and)$/.exec(column);
    // A column named "or" or "and" is still filtered as usual: its value has no parentheses.
    if (logic && raw.startsWith("(")) filters.push(parseGroup(logic[2] as "or" | "and", !!logic[1], raw, 1));
    else filters.push(parseFilter(column, raw));
  }
  return filters;
}

/** Every column a condition names, groups included. */
export function filterColumns(conditions: Condition[]): string[] {
  return conditions.flatMap((c) => ("logic" in c ? filterColumns(c.items) : [c.column]));
}

/** or=(a.eq.1,b.in.(2,3),and(c.gt.4,c.lt.9)): the parenthesised list of conditions, each `column.op.value` or a nested group. */
function parseGroup(logic: "or" | "and", negate: boolean, raw: string, depth: number): FilterGroup {
  if (depth > MAX_LOGIC_DEPTH) throw badRequest("invalid_filter", `${logic}=(…) may nest at most ${MAX_LOGIC_DEPTH} levels.`);
  if (!raw.startsWith("(") || !raw.endsWith(")")) throw badRequest("invalid_filter", `${logic} takes a list in parentheses: ${logic}=(a.eq.1,b.eq.2).`);
  const items = splitTopLevel(raw.slice(1, -1)).map((item): Condition => {
    const nested = /^(not\.)?(or|and)\(/.exec(item);
    if (nested) return parseGroup(nested[2] as "or" | "and", !!nested[1], item.slice(nested[0].length - 1), depth + 1);
    const dot = item.indexOf(".");
    if (dot <= 0) throw badRequest("invalid_filter", `Each condition in ${logic}=(…) looks like column.op.value, not "${item}".`);
    const filter = parseFilter(item.slice(0, dot), item.slice(dot + 1));
    // Inside a group a value with commas or parentheses is written in double quotes.
    if (typeof filter.value === "string" && filter.op !== "is" && /^".*"$/s.test(filter.value)) filter.value = unquote(filter.value);
    return filter;
  });
  return { logic, negate, items };
}

/** Splits on commas outside parentheses and double quotes. */
function splitTopLevel(body: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (quoted) {
      if (ch === "\\") i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === "(") depth++;
    else if (ch === ")") depth--;
    else if (ch === "," && depth === 0) {
      items.push(body.slice(start, i));
      start = i + 1;
    }
    if (depth < 0) throw badRequest("invalid_filter", "Unbalanced parentheses in a filter.");
  }
  if (depth !== 0 || quoted) throw badRequest("invalid_filter", "Unbalanced parentheses or quotes in a filter.");
  items.push(body.slice(start));
  if (items.includes("")) throw badRequest("invalid_filter", "A filter list has an empty condition.");
  return items;
}

function unquote(value: string) {
  return value.slice(1, -1).replace(/\\(.)/gs, "$1");
}

/** What the client asked for in `Prefer` (several values, comma-separated, possibly in several headers). */
export interface Prefer {
  returnRows: boolean;
  count: boolean;
  resolution?: "merge" | "ignore";
}

const NO_PREFERENCES: Prefer = Object.freeze({ returnRows: false, count: false });

export function parsePrefer(header: string | undefined): Prefer {
  if (!header) return NO_PREFERENCES;
  const words = new Set((header ?? "").split(",").map((w) => w.trim()));
  return {
    returnRows: words.has("return=representation"),
    // PostgREST's planned and estimated counts are answered with the exact one.
    count: words.has("count=exact") || words.has("count=planned") || words.has("count=estimated"),
    resolution: words.has("resolution=merge-duplicates") ? "merge" : words.has("resolution=ignore-duplicates") ? "ignore" : undefined,
  };
}

/** select=a,b,"Mixed, Case" → ["a", "b", "Mixed, Case"]; "*" for all columns. */
export function parseSelect(raw: string | null): string[] | "*" {
  if (raw === null || raw.trim() === "*") return "*";
  return splitNames(raw);
}

/**
 * Splits on commas outside double quotes and removes the quotes, so a quoted name may hold commas,
 * dots, parentheses or (doubled or backslashed) quotes. Unquoted, PostgREST's embedding, JSON paths, aliases and casts are refused.
 */
function splitNames(raw: string): string[] {
  const names: string[] = [];
  let name = ""; // the name with whitespace outside quotes dropped (as postgrest-js sends it)
  let plain = ""; // the name as written, for an unquoted name, which may hold inner spaces
  let outside = ""; // what was written outside quotes
  let quoted = false;
  let sawQuote = false;
  const finish = () => {
    const done = sawQuote ? name : plain.trim();
    if (done === "") throw badRequest("invalid_select", "select must be a comma-separated list of columns.");
    if (/[():]|->/.test(outside)) {
      throw badRequest("unsupported_select", `select takes plain column names (no embedding, JSON paths, aliases or casts): "${done}".`, { column: done });
    }
    names.push(done);
    name = plain = outside = "";
    sawQuote = false;
  };
  for (let i = 0; i < raw.length; i++) {
    let ch = raw[i]!;
    if (quoted && i + 1 < raw.length && (ch === "\\" || (ch === '"' && raw[i + 1] === '"'))) ch = raw[++i]!; // "" and \" inside quotes
    else if (ch === '"') {
      quoted = !quoted;
      sawQuote = true;
      continue;
    } else if (ch === "," && !quoted) {
      finish();
      continue;
    }
    plain += ch;
    if (quoted || !/\s/.test(ch)) name += ch;
    if (!quoted) outside += ch;
  }
  if (quoted) throw badRequest("invalid_select", "select has an unterminated quote.");
  finish();
  return names;
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

function parseLimit(raw: string | null, rule: LimitRule) {
  if (raw === null) return rule.defaultLimit;
  return rule.overMax === "cap" ? Math.min(parseCount("limit", raw, 0, Number.MAX_SAFE_INTEGER), MAX_LIMIT) : parseCount("limit", raw, 0, MAX_LIMIT);
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

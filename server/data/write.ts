// Writes for /v1/db: insert (with upsert), update and delete, each rendered from checked names with
// the values in one JSON parameter that Postgres turns into typed rows (json_populate_recordset), so
// types come from the table itself. The parameter is sent as text (::text::json): typed as json,
// the driver would encode the JSON string once more. Pure.
//
// json_populate_recordset already takes what reads give out: numbers or numeric strings for int8
// and numeric, number arrays for vector, ISO strings for dates and times, any JSON for json/jsonb,
// JSON arrays for arrays. Only bytea needs help: it would read a base64 string as escape-format text
// and store the wrong bytes without a word, so base64 is turned into the hex form here (forPostgres).
import { badRequest, filterColumns, parseFilters, type Condition } from "./parse";
import type { Table } from "./schema";
import { inJsonForm, quoteIdent, renderWhere, type Rendered } from "./render";
import { checkColumns, selectedColumns } from "./plan";
import { ApiError } from "../http/errors";

export const MAX_ROWS = 1000;

export interface WriteOptions {
  returnRows: boolean;
  /** The columns of the returned rows (`select=`), all when absent. */
  select?: string[] | "*";
}

function rowsOf(body: unknown): Record<string, unknown>[] {
  const rows = Array.isArray(body) ? body : [body];
  if (rows.length === 0 || rows.length > MAX_ROWS) throw badRequest("invalid_body", `Send an object or an array of 1 to ${MAX_ROWS} objects.`);
  if (!rows.every((r) => r !== null && typeof r === "object" && !Array.isArray(r))) throw badRequest("invalid_body", "Every row must be a JSON object.");
  return rows as Record<string, unknown>[];
}

/**
 * `returnRows`: the affected rows as JSON, in the same forms as reads. Otherwise the bare statement:
 * its count comes in the command's tag, and a CTE with `returning` only to count the rows would cost
 * Postgres a quarter more per single-row insert.
 */
function finish(table: Table, statement: string, options: WriteOptions) {
  if (!options.returnRows) return statement;
  const columns = selectedColumns(table, options.select);
  const rows = inJsonForm(table, columns, `select ${columns.map(quoteIdent).join(", ")} from w`);
  return `with w as (${statement} returning *) select coalesce(json_agg(r), '[]')::text as body, count(*)::int as shown from (${rows}) r`;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The row as Postgres should read it: bytea from base64 (what reads give) to the hex form. An integer
 * past ±(2^53 − 1) sent as a JSON number for an int8 or numeric column is refused: JSON.parse has
 * already rounded it to a double, so what would be stored may not be what the client sent.
 */
function forPostgres(table: Table, row: Record<string, unknown>): Record<string, unknown> {
  const forms = table.jsonForms;
  if (!forms) return row;
  let out = row;
  for (const [column, value] of Object.entries(row)) {
    const form = forms.get(column);
    if ((form === "int8" || form === "numeric") && typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value)) {
      throw badRequest("imprecise_number", `Column "${column}": integers beyond ±(2^53 − 1) lose digits as JSON numbers; send them as strings.`, { column });
    }
    if (form !== "bytea" || value === null) continue;
    if (typeof value !== "string" || !BASE64.test(value)) {
      throw badRequest("invalid_base64", `Column "${column}" takes bytes as a base64 string (RFC 4648, with padding).`, { column });
    }
    if (out === row) out = { ...row };
    out[column] = "\\x" + Buffer.from(value, "base64").toString("hex");
  }
  return out;
}

export function renderInsert(table: Table, body: unknown, params: URLSearchParams, prefer: string, options: WriteOptions): Rendered {
  const rows = rowsOf(body);
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  if (!columns.length) throw badRequest("invalid_body", "The rows have no columns.");
  checkColumns(table, columns);
  const values = rows.map((r) => forPostgres(table, r));
  const list = columns.map(quoteIdent).join(", ");
  let statement = `insert into ${quoteIdent(table.name)} (${list}) select ${list} from json_populate_recordset(null::${quoteIdent(table.name)}, $1::text::json)`;
  const onConflict = params.get("on_conflict");
  const resolution = /resolution=(merge|ignore)-duplicates/.exec(prefer)?.[1];
  if (resolution) {
    const target = onConflict ? onConflict.split(",").map((c) => c.trim()) : table.primaryKey;
    if (!target.length) throw badRequest("invalid_on_conflict", "Name the conflict columns with on_conflict=col1,col2 (the table has no primary key).");
    checkColumns(table, target);
    const updates = columns.filter((c) => !target.includes(c));
    statement +=
      resolution === "ignore" || !updates.length
        ? ` on conflict (${target.map(quoteIdent).join(", ")}) do nothing`
        : ` on conflict (${target.map(quoteIdent).join(", ")}) do update set ${updates.map((c) => `${quoteIdent(c)} = excluded.${quoteIdent(c)}`).join(", ")}`;
  }
  return { text: finish(table, statement, options), params: [JSON.stringify(values)] };
}

export function renderUpdate(table: Table, body: unknown, params: URLSearchParams, options: WriteOptions): Rendered {
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw badRequest("invalid_body", "Send the new values as one JSON object.");
  const columns = Object.keys(body);
  if (!columns.length) throw badRequest("invalid_body", "Name at least one column to change.");
  checkColumns(table, columns);
  const filters = requiredFilters(table, params);
  const values: string[] = [JSON.stringify(forPostgres(table, body as Record<string, unknown>))];
  const where = renderWhere(filters, values);
  const list = columns.map(quoteIdent).join(", ");
  const statement = `update ${quoteIdent(table.name)} set (${list}) = (select ${list} from json_populate_record(null::${quoteIdent(table.name)}, $1::text::json))${where}`;
  return { text: finish(table, statement, options), params: values };
}

export function renderDelete(table: Table, params: URLSearchParams, options: WriteOptions): Rendered {
  const filters = requiredFilters(table, params);
  const values: string[] = [];
  return { text: finish(table, `delete from ${quoteIdent(table.name)}${renderWhere(filters, values)}`, options), params: values };
}

/** PATCH and DELETE must say which rows: without a filter they would touch every row of the table. */
function requiredFilters(table: Table, params: URLSearchParams): Condition[] {
  const filters = parseFilters(params);
  if (!filters.length) throw new ApiError(422, "filter_required", "PATCH and DELETE need at least one filter, e.g. ?id=eq.1.");
  checkColumns(table, filterColumns(filters));
  return filters;
}

// Export of one table of a project's public schema: CSV through COPY … TO STDOUT, JSON and NDJSON
// through a cursor (each row made JSON by Postgres in the /v1/db forms), streamed to the client at
// the pace it reads, with the /v1/db filter grammar (`?status=eq.paid&select=id,total`). Runs as the
// project's owner role (through a stand-in), never as superuser: the table's data is the tenant's, so is any code a
// filter's operator could reach.
import { Readable } from "node:stream";
import postgres from "postgres";
import { z } from "zod";
import type { AppContext } from "../context";
import { errors } from "../http/errors";
import { getProject } from "../projects/service";
import { databaseName } from "../projects/provision";
import { filterColumns, parseFilters, parseSelect } from "../data/parse";
import { checkColumns, findTable, selectedColumns } from "../data/plan";
import { inJsonForm, quoteIdent, renderWhere } from "../data/render";
import { loadSchema } from "../data/schema";
import { connectStandIn, openStandIn } from "../projects/standIn";
import { log } from "../platform/log";

export const exportQuery = z.object({ format: z.enum(["csv", "json", "ndjson"]).default("csv") });
export type ExportFormat = z.infer<typeof exportQuery>["format"];

const CURSOR_ROWS = 500;
const CONTENT_TYPES: Record<ExportFormat, string> = {
  csv: "text/csv; charset=utf-8",
  json: "application/json",
  ndjson: "application/x-ndjson",
};

/**
 * A session working as the project's owner role, through a stand-in made for it (the owner is never
 * the session user of tenant code: server/projects/standIn.ts), without the owner's 30 s statement
 * timeout (a large export or import takes long). `end()` closes it and drops the stand-in.
 */
export async function connectAsOwner(ctx: AppContext, projectId: string, applicationName: string) {
  const database = databaseName(projectId);
  const opened = await openStandIn(ctx, projectId, [database]);
  const sql = connectStandIn(ctx.engine.superuser(), opened.standIn, database, { application_name: applicationName, statement_timeout: 0, idle_in_transaction_session_timeout: 15 * 60_000 }, { idle_timeout: 0 });
  let ended: Promise<void> | undefined;
  const end = (timeout = 1) =>
    (ended ??= (async () => {
      await sql.end({ timeout });
      const drift = await opened.close();
      if (drift) log.warn("role memberships changed during a table import or export; put back", { project: projectId, drift });
    })());
  return { sql, end };
}

type OwnerSession = Awaited<ReturnType<typeof connectAsOwner>>;

export async function exportTable(ctx: AppContext, projectId: string, tableName: string, query: URLSearchParams) {
  const project = await getProject(ctx, projectId);
  if (project.status !== "ready") throw errors.conflict(`The project is ${project.status}; tables are exported from ready projects only.`);
  const { format } = exportQuery.parse({ format: query.get("format") ?? undefined });
  const conditions = new URLSearchParams([...query].filter(([k]) => k !== "format" && k !== "select"));
  const session = await connectAsOwner(ctx, projectId, "atlashub-export");
  const sql = session.sql;
  try {
    const table = findTable(await loadSchema(sql), tableName);
    const select = parseSelect(query.get("select"));
    const columns = selectedColumns(table, select);
    const filters = parseFilters(conditions);
    checkColumns(table, filterColumns(filters));
    const params: string[] = [];
    const where = renderWhere(filters, params);
    const order = table.primaryKey.length ? ` order by ${table.primaryKey.map(quoteIdent).join(", ")}` : "";
    const rows = `select ${columns.map(quoteIdent).join(", ")} from ${quoteIdent(table.name)}${where}${order}`;
    const stream =
      format === "csv"
        ? await csvStream(session, inlineParameters(rows, await quoteLiterals(sql, params)))
        : jsonStream(session, `select row_to_json(r)::text as j from (${inJsonForm(table, columns, rows)}) r`, params, format);
    return { stream, contentType: CONTENT_TYPES[format], filename: `${table.name}.${format}` };
  } catch (err) {
    await session.end();
    throw err;
  }
}

/** COPY takes no parameters: each value becomes a literal quoted by Postgres itself (quote_literal). */
async function quoteLiterals(sql: postgres.Sql, values: string[]) {
  if (values.length === 0) return [];
  const rows = await sql<{ q: string }[]>`select quote_literal(x) as q from unnest(${values}::text[]) with ordinality as t(x, n) order by n`;
  return rows.map((r) => r.q);
}

/** $n placeholders outside double-quoted identifiers replaced by the literals. */
export function inlineParameters(text: string, literals: string[]) {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '"') {
      const end = closingQuote(text, i);
      out += text.slice(i, end + 1);
      i = end;
    } else if (ch === "$" && /\d/.test(text[i + 1] ?? "")) {
      const digits = /^\d+/.exec(text.slice(i + 1))![0];
      out += literals[Number(digits) - 1]!;
      i += digits.length;
    } else out += ch;
  }
  return out;
}

/** Index of the quote closing the identifier that opens at `start` ("" inside is an escaped quote). */
function closingQuote(text: string, start: number) {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '"') {
      if (text[i + 1] === '"') i++;
      else return i;
    }
  }
  return text.length - 1;
}

async function csvStream(session: OwnerSession, rows: string): Promise<ReadableStream<Uint8Array>> {
  const readable = await session.sql.unsafe(`copy (${rows}) to stdout with (format csv, header true)`).readable();
  const end = () => void session.end();
  readable.once("close", end);
  return Readable.toWeb(readable) as ReadableStream<Uint8Array>;
}

function jsonStream(session: OwnerSession, text: string, params: string[], format: "json" | "ndjson"): ReadableStream<Uint8Array> {
  const batches = session.sql.unsafe<{ j: string }[]>(text, params).cursor(CURSOR_ROWS)[Symbol.asyncIterator]();
  const encoder = new TextEncoder();
  let first = true;
  const finish = async () => {
    await batches.return?.();
    await session.end();
  };
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        if (format === "json") controller.enqueue(encoder.encode("["));
      },
      async pull(controller) {
        try {
          const { done, value } = await batches.next();
          if (done) {
            if (format === "json") controller.enqueue(encoder.encode("]\n"));
            controller.close();
            await session.end();
            return;
          }
          const body = format === "json" ? (first ? "" : ",") + value.map((r) => r.j).join(",") : value.map((r) => r.j + "\n").join("");
          first = false;
          controller.enqueue(encoder.encode(body));
        } catch (err) {
          await session.end();
          controller.error(err);
        }
      },
      cancel: finish,
    },
    { highWaterMark: 0 },
  );
}

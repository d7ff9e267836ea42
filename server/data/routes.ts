import { Hono, type Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import postgres from "postgres";
import { z } from "zod";
import type { AppContext, AppEnv } from "../context";
import { requireApiKey } from "../http/auth";
import { ApiError, parseBody } from "../http/errors";
import { parseReadRequest } from "./parse";
import { findTable, planRead } from "./plan";
import { renderCount, renderRead, type Rendered } from "./render";
import { renderDelete, renderInsert, renderUpdate, type WriteOptions } from "./write";
import type { Schema, Table } from "./schema";
import type { ProjectPools } from "./pools";

// Requests of one shape render the same text, so each connection prepares it once and reuses it.
const PREPARED = { prepare: true };

/** /v1/db: a project's public tables over HTTP, as its app role. */
export function dataRoutes(ctx: AppContext, pools: ProjectPools) {
  const app = new Hono<AppEnv>();
  app.use("*", requireApiKey(ctx));

  /**
   * Runs `use` against the cached schema. A name the cache does not know may be a table or column
   * created a moment ago, so on unknown_table/unknown_column it runs once more on a fresh read.
   */
  const withSchema = async <T>(projectId: string, use: (schema: Schema) => T): Promise<T> => {
    try {
      return use(await pools.schema(projectId));
    } catch (err) {
      if (!(err instanceof ApiError) || !["unknown_table", "unknown_column"].includes(err.code)) throw err;
      return use(await pools.schema(projectId, true));
    }
  };
  const write = async (c: Context<AppEnv>, status: ContentfulStatusCode, render: (table: Table, params: URLSearchParams, options: WriteOptions) => Rendered) => {
    const projectId = c.get("apiKey").projectId;
    const options = { returnRows: /return=representation/.test(c.req.header("prefer") ?? "") };
    const params = new URL(c.req.url).searchParams;
    const rendered = await withSchema(projectId, (schema) => render(findTable(schema, c.req.param("table")!), params, options));
    const [row] = await pools.run(projectId, (sql) => sql.unsafe<{ body: string }[]>(rendered.text, rendered.params, PREPARED)).catch(rethrowAsApiError);
    return c.body(row!.body, status, { "content-type": "application/json" });
  };

  app.post("/:table", async (c) => {
    const body = await parseBody(c, z.unknown());
    return write(c, 201, (table, params, options) => renderInsert(table, body, params, c.req.header("prefer") ?? "", options));
  });
  app.patch("/:table", async (c) => {
    const body = await parseBody(c, z.unknown());
    return write(c, 200, (table, params, options) => renderUpdate(table, body, params, options));
  });
  app.delete("/:table", (c) => write(c, 200, renderDelete));

  app.get("/tables", async (c) => {
    const schema = await pools.schema(c.get("apiKey").projectId);
    return c.json({ items: [...schema.values()].map((t) => ({ name: t.name, kind: t.kind, primary_key: t.primaryKey, columns: t.columns })) });
  });

  app.get("/:table", async (c) => {
    const projectId = c.get("apiKey").projectId;
    const request = parseReadRequest(new URL(c.req.url).searchParams);
    const plan = await withSchema(projectId, (schema) => planRead(schema, c.req.param("table"), request));
    const read = renderRead(plan);
    const [rows] = await pools.run(projectId, (sql) => sql.unsafe<{ body: string }[]>(read.text, read.params, PREPARED)).catch(rethrowAsApiError);
    if (/count=exact/.test(c.req.header("prefer") ?? "")) {
      const count = renderCount(plan);
      const [total] = await pools.run(projectId, (sql) => sql.unsafe<{ total: string }[]>(count.text, count.params, PREPARED)).catch(rethrowAsApiError);
      const shown = (JSON.parse(rows!.body) as unknown[]).length;
      c.header("Content-Range", shown ? `${plan.offset}-${plan.offset + shown - 1}/${total!.total}` : `*/${total!.total}`);
    }
    return c.body(rows!.body, 200, { "content-type": "application/json" });
  });

  return app;
}

/**
 * Postgres errors as API errors: the constraint or column involved, never the SQL. Data exceptions
 * (class 22) are left to the shared handler (400 invalid_input).
 */
function rethrowAsApiError(err: unknown): never {
  if (!(err instanceof postgres.PostgresError)) throw err;
  const names = { constraint: err.constraint_name, column: err.column_name };
  switch (err.code) {
    case "23505":
      throw new ApiError(409, "unique_violation", "A row with the same unique values already exists.", names);
    case "23503":
      throw new ApiError(409, "foreign_key_violation", "The row refers to a row that does not exist, or is referred to by another.", names);
    case "23502":
      throw new ApiError(400, "not_null_violation", `Column "${err.column_name}" may not be null.`, names);
    case "23514":
      throw new ApiError(400, "check_violation", `A check on the table refused the row (${err.constraint_name}).`, names);
    case "42501":
      throw new ApiError(403, "permission_denied", "The project's app role may not do this.");
    case "57014":
      throw new ApiError(504, "statement_timeout", "The query ran longer than the statement timeout.");
    default:
      throw err;
  }
}

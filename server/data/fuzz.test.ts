// Property tests: hostile query strings and bodies against parse → plan → render (100,000 cases in
// npm test; FUZZ_RUNS raises it) and against the live endpoint. Whatever comes in, the outcome is a
// 4xx ApiError or SQL whose only identifiers are quoted known names and whose values are $n parameters.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import fc from "fast-check";
import { ApiError } from "../http/errors";
import { parseReadRequest } from "./parse";
import { planRead } from "./plan";
import { quoteIdent, renderRead } from "./render";
import { renderDelete, renderInsert, renderUpdate } from "./write";
import type { Schema, Table } from "./schema";
import { adminHeaders, clientTracker, createTestProject, jsonRequest, startTestServer, type TestServer } from "../test/server";
import { registerSecret } from "../test/harness";

const RUNS = Number(process.env.FUZZ_RUNS ?? 100_000);
const table: Table = {
  name: "Weird \"Table\"",
  kind: "table",
  primaryKey: ["id"],
  columns: ["id", "select", "Mixed Case", "ünï", "a,b", "x.y"].map((name) => ({ name, type: "text", nullable: true })),
};
const schema: Schema = new Map([[table.name, table]]);
const names = table.columns.map((c) => c.name);

/** Everything in the SQL that is not a quoted known name, a $n, or our own keywords must be absent. */
function assertSafe(text: string) {
  let rest = text;
  for (const name of [table.name, ...names].sort((a, b) => b.length - a.length)) rest = rest.replaceAll(quoteIdent(name), " ");
  rest = rest.replaceAll(/\$\d+(::bigint|::text::json)?/g, " ");
  // What remains is only the renderer's own vocabulary.
  expect(rest).toMatch(/^[a-z_ (),'*:[\]=<>!.\d"]*$/);
  expect(rest).not.toContain('"');
  expect(rest).not.toMatch(/;|--|\/\*/);
}

const hostileText = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme" }),
  fc.constantFrom("'; drop table x; --", '" or 1=1 --', "$1", "%00", "\u0000", "*", "(", ")", ",", ".", "not.", "in.(", 'in.("', "is.", "eq.", "or(", "and(", "not.or("),
  // or=/and= lists built from known names and hostile values, nested.
  fc.array(fc.tuple(fc.constantFrom(...names, "or(", "and(", ")", "x"), fc.constantFrom(".eq.", ".not.in.(", ".is.", ".like.", ","), fc.string()), { maxLength: 4 }).map(
    (parts) => "(" + parts.map(([a, b, c]) => a + b + c).join(",") + ")",
  ),
  fc.constantFrom(...names),
);
const queryString = fc.array(fc.tuple(fc.oneof(hostileText, fc.constantFrom("select", "order", "limit", "offset", "on_conflict", "or", "and", "not.or", "not.and")), hostileText), { maxLength: 6 });

function outcome(fn: () => { text: string; params: string[] }) {
  try {
    const rendered = fn();
    assertSafe(rendered.text);
    for (const p of rendered.params) expect(typeof p).toBe("string");
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    expect(err.status).toBeGreaterThanOrEqual(400);
    expect(err.status).toBeLessThan(500);
  }
}

describe("fuzz: parse → plan → render", () => {
  it(`never renders unchecked text (${RUNS} query strings)`, () => {
    fc.assert(
      fc.property(queryString, (pairs) => {
        const params = new URLSearchParams(pairs);
        outcome(() => renderRead(planRead(schema, table.name, parseReadRequest(params))));
        outcome(() => renderDelete(table, params, { returnRows: true }));
      }),
      { numRuns: RUNS },
    );
  });

  it(`never renders unchecked text for bodies (${Math.ceil(RUNS / 10)} bodies)`, () => {
    const body = fc.oneof(fc.anything(), fc.array(fc.dictionary(hostileText, fc.anything(), { maxKeys: 4 }), { maxLength: 3 }), fc.dictionary(fc.constantFrom(...names), fc.string()));
    fc.assert(
      fc.property(body, queryString, (b, pairs) => {
        const params = new URLSearchParams(pairs);
        outcome(() => renderInsert(table, b, params, "resolution=merge-duplicates", { returnRows: false }));
        outcome(() => renderUpdate(table, b, params, { returnRows: true }));
      }),
      { numRuns: Math.ceil(RUNS / 10) },
    );
  });
});

describe("fuzz: the live endpoint", () => {
  let server: TestServer;
  let key: string;
  const clients = clientTracker();
  // The same table in another project, holding rows that must never show up in an answer.
  const OTHER_PROJECT_MARK = "row-of-another-project";
  const createTable = (dsn: string, value: string) => {
    const sql = clients.connect(dsn);
    return sql.unsafe(
      `create table ${quoteIdent(table.name)} (${names.map((n) => `${quoteIdent(n)} text`).join(", ")});
       insert into ${quoteIdent(table.name)} select ${names.map(() => `'${value}' || g`).join(", ")} from generate_series(1, 20) g`,
    );
  };
  beforeAll(async () => {
    server = await startTestServer();
    const auth = await adminHeaders(server);
    const p = await createTestProject(server, auth, "fuzz-target");
    const other = await createTestProject(server, auth, "fuzz-other");
    await createTable(p.credentials.owner.connection_string, "own-");
    await createTable(other.credentials.owner.connection_string, OTHER_PROJECT_MARK);
    const res = await server.fetch(`/admin/api/projects/${p.id}/keys`, jsonRequest("POST", { name: "fuzz", kind: "secret" }, auth));
    key = (await res.json()).key;
    registerSecret(key);
  });
  afterAll(async () => {
    await clients.endAll();
    await server.stop();
  });

  it("never answers 5xx nor another project's rows to hostile requests on /v1/db and /rest/v1 (1000 cases)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("/v1/db/", "/rest/v1/"), fc.constantFrom("GET", "POST", "PATCH", "DELETE"), queryString, fc.anything(), async (mount, method, pairs, body) => {
        const path = `${mount}${encodeURIComponent(table.name)}?${new URLSearchParams(pairs)}`;
        const init = method === "GET" || method === "DELETE" ? { method, headers: { "x-api-key": key } } : jsonRequest(method, body ?? null, { "x-api-key": key });
        const res = await server.fetch(path, init);
        expect(res.status).toBeLessThan(500);
        expect(await res.text()).not.toContain(OTHER_PROJECT_MARK);
      }),
      { numRuns: 1000 },
    );
  }, 180_000);
});

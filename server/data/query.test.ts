// parse → plan → render, without a database.
import { describe, expect, it } from "bun:test";
import { parseFilters, parsePrefer, parseReadRequest } from "./parse";
import { planRead } from "./plan";
import { quoteIdent, readResult, renderCount, renderRead } from "./render";
import type { Schema } from "./schema";

const schema: Schema = new Map([
  ["items", { name: "items", kind: "table", primaryKey: ["id"], columns: [
    { name: "id", type: "integer", nullable: false },
    { name: "Label Text", type: "text", nullable: true },
    { name: 'we"ird', type: "text", nullable: true },
  ] }],
]);

const render = (qs: string) => renderRead(planRead(schema, "items", parseReadRequest(new URLSearchParams(qs))));
const error = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return err as { status: number; code: string; message: string };
  }
  throw new Error("expected an error");
};

describe("parse → plan → render", () => {
  it("selects every column by default with limit 100 offset 0 as parameters", () => {
    expect(render("")).toEqual({
      text: `select coalesce(json_agg(r), '[]')::text as body, count(*)::int as shown from (select "id", "Label Text", "we""ird" from "items" limit $1::bigint offset $2::bigint) r`,
      params: ["100", "0"],
    });
  });

  it("renders every operator with values as parameters, never as text", () => {
    const qs = new URLSearchParams({ id: "gte.5", "Label Text": "ilike.*x*", 'we"ird': 'not.in.(a,"b,c",d)' }).toString();
    const r = render(qs + "&order=id.desc.nullslast,Label Text&limit=10&offset=20");
    expect(r.text).toContain(`where "id" >= $1 and "Label Text"::text ilike $2 and not ("we""ird" in ($3, $4, $5)) order by "id" desc nulls last, "Label Text" asc limit $6::bigint offset $7::bigint`);
    expect(r.params).toEqual(["5", "%x%", "a", "b,c", "d", "10", "20"]);
  });

  it("supports is, eq/neq/lt/lte/gt and like", () => {
    const r = render("id=is.null&Label%20Text=not.is.true&we%22ird=like.a*&select=id");
    expect(r.text).toContain(`where "id" is null and not ("Label Text" is true) and "we""ird"::text like $1`);
    for (const [op, sym] of [["eq", "="], ["neq", "<>"], ["lt", "<"], ["lte", "<="], ["gt", ">"]]) {
      expect(render(`id=${op}.1`).text).toContain(`"id" ${sym} $1`);
    }
    expect(render("id=in.()").text).toContain("where false");
  });

  it("renders or=(…)/and=(…) groups, nested and negated, with every value a parameter", () => {
    const r = render('or=(id.eq.1,Label Text.in.(a,"b,c"),and(id.gt.5,not.or(id.is.null,id.lt.9)))&not.and=(id.eq.7,Label Text.like."x,(y)*")&id=neq.3');
    expect(r.text).toContain(
      `where ("id" = $1 or "Label Text" in ($2, $3) or ("id" > $4 and not ("id" is null or "id" < $5))) and not ("id" = $6 and "Label Text"::text like $7) and "id" <> $8`,
    );
    expect(r.params.slice(0, 8)).toEqual(["1", "a", "b,c", "5", "9", "7", "x,(y)%", "3"]);
    // A column named "or" is filtered as usual.
    expect(parseFilters(new URLSearchParams("or=eq.1"))).toEqual([{ column: "or", op: "eq", negate: false, value: "1" }]);
  });

  it("looks a row up by its primary key as one JSON object per row, with no aggregate, the limit still in the SQL", () => {
    expect(render("id=eq.5&Label Text=like.a*&offset=2")).toEqual({
      text: `select row_to_json(r)::text as body from (select "id", "Label Text", "we""ird" from "items" where "id" = $1 and "Label Text"::text like $2 limit $3::bigint offset $4::bigint) r`,
      params: ["5", "a%", "100", "2"],
      perRow: true,
    });
    // Anything that does not pin the key to one value keeps the aggregate.
    for (const qs of ["id=gt.5", "id=not.eq.5", "or=(id.eq.5)", "id=in.(5)", "Label Text=eq.5"]) expect(render(qs).text).toStartWith("select coalesce(json_agg(r)");
  });

  it("joins a point lookup's rows into one array (children of an inherited table may share the key)", () => {
    const rows = [{ body: '{"id":5}' }, { body: '{"id":5,"x":1}' }];
    expect(readResult(render("id=eq.5"), rows)).toEqual({ body: '[{"id":5},{"id":5,"x":1}]', shown: 2 });
    expect(readResult(render("id=eq.5"), [])).toEqual({ body: "[]", shown: 0 });
    expect(readResult(render("id=gt.5"), [{ body: "[]", shown: 0 }])).toEqual({ body: "[]", shown: 0 });
  });

  it("counts with the same filters", () => {
    const plan = planRead(schema, "items", parseReadRequest(new URLSearchParams("id=gt.3&limit=5")));
    expect(renderCount(plan)).toEqual({ text: `select count(*)::text as total from "items" where "id" > $1`, params: ["3"] });
  });

  const bad: [string, string, string][] = [
    ["an unknown table", "", "unknown_table"],
    ["an unknown column in select", "select=id,nope", "unknown_column"],
    ["an unknown column in a filter", "nope=eq.1", "unknown_column"],
    ["an unknown column in order", "order=nope.desc", "unknown_column"],
    ["an unknown operator", "id=between.1", "unknown_operator"],
    ["a filter without a value", "id=eq", "invalid_filter"],
    ["is with another value", "id=is.maybe", "invalid_filter"],
    ["in without parentheses", "id=in.1,2", "invalid_filter"],
    ["a bad order modifier", "order=id.sideways", "invalid_order"],
    ["an empty or=()", "or=()", "invalid_filter"],
    ["an unbalanced or=(…", "or=(id.eq.1,and(id.eq.2)", "invalid_filter"],
    ["a condition without an operator in or=(…)", "or=(id,id.eq.2)", "invalid_filter"],
    ["an unknown column inside or=(…)", "or=(id.eq.1,and(nope.eq.2))", "unknown_column"],
    ["or=(…) nested past 8 levels", "or=(" + "and(".repeat(8) + "id.eq.1" + ")".repeat(9), "invalid_filter"],
    ["a limit over 1000", "limit=1001", "invalid_limit"],
    ["a negative offset", "offset=-1", "invalid_offset"],
  ];
  for (const [what, qs, code] of bad) {
    it(`answers 400 ${code} for ${what}`, () => {
      const table = what === "an unknown table" ? "ghosts" : "items";
      const err = error(() => planRead(schema, table, parseReadRequest(new URLSearchParams(qs))));
      expect({ status: err.status, code: err.code }).toEqual({ status: 400, code });
    });
  }

  it("takes quoted names in select, so a name may hold commas, and refuses embedding and casts", () => {
    expect(render('select="Label Text",id,"we""ird"').text).toContain(`select "Label Text", "id", "we""ird" from`);
    expect(render('select= id , "Label Text"').text).toContain(`select "id", "Label Text" from`);
    for (const qs of ["select=id,other(*)", "select=alias:id", "select=id::text", "select=id->a", 'select="id'] as const) {
      expect(error(() => render(qs)).status).toBe(400);
    }
  });

  it("caps the limit quietly under PostgREST's rule, with 1000 rows by default", () => {
    const limits = { defaultLimit: 1000, overMax: "cap" } as const;
    expect(parseReadRequest(new URLSearchParams(""), limits).limit).toBe(1000);
    expect(parseReadRequest(new URLSearchParams("limit=5000"), limits).limit).toBe(1000);
    expect(parseReadRequest(new URLSearchParams("limit=7"), limits).limit).toBe(7);
  });

  it("reads Prefer values from one or several comma-separated headers", () => {
    expect(parsePrefer("return=representation, count=exact")).toEqual({ returnRows: true, count: true, resolution: undefined });
    expect(parsePrefer("resolution=ignore-duplicates,count=planned")).toEqual({ returnRows: false, count: true, resolution: "ignore" });
    expect(parsePrefer(undefined)).toEqual({ returnRows: false, count: false, resolution: undefined });
  });

  it("quotes identifiers so no name can end the identifier", () => {
    expect(quoteIdent('a"; drop table x; --')).toBe('"a""; drop table x; --"');
  });
});

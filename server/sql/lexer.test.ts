import { describe, expect, it } from "bun:test";
import fc from "fast-check";
import { characterPosition, lex, splitStatements, StatementScanner, type Token } from "./lexer";

const words = (text: string) => lex(text).filter((t) => t.kind === "word").map((t) => t.value);
const kinds = (text: string) => lex(text).map((t) => `${t.kind}:${t.value}`);
const count = (text: string) => splitStatements(lex(text)).length;

describe("lex", () => {
  it("lowercases words, keeps quoted identifiers as written and undoubles their quotes", () => {
    expect(kinds('SELECT "Mixed ""Case""", x FROM t')).toEqual(["word:select", 'word:Mixed "Case"', "symbol:,", "word:x", "word:from", "word:t"]);
  });

  it("reads standard strings with doubled quotes, and a backslash as an ordinary character", () => {
    expect(kinds("select 'it''s', '\\'")).toEqual(["word:select", "string:it's", "symbol:,", "string:\\"]);
  });

  it("reads E'' strings with backslash escapes, so \\' does not end them", () => {
    expect(kinds("select E'a\\'; do', 1")).toEqual(["word:select", "string:a\\'; do", "symbol:,", "number:1"]);
    expect(lex("select e'x'")[1]).toMatchObject({ kind: "string", plain: false });
  });

  it("reads dollar quotes with and without a tag, and $1 as a parameter", () => {
    expect(kinds("select $$a;'b$$, $fn$ $$ ; $fn$, $1")).toEqual(["word:select", "string:a;'b", "symbol:,", "string: $$ ; ", "symbol:,", "symbol:$1"]);
  });

  it("keeps $ inside an identifier (a$b$ is one word, not the start of a dollar quote)", () => {
    expect(words("select a$b$ from t where x = $b$")).toEqual(["select", "a$b$", "from", "t", "where", "x"]);
  });

  it("drops -- comments to the end of the line and nested /* */ comments", () => {
    expect(words("select 1 -- do\n, /* a /* do */ still ; comment */ 2 from t")).toEqual(["select", "from", "t"]);
  });

  it("decodes U&\"…\" identifiers, with UESCAPE too", () => {
    expect(words('select U&"\\0070g_read_file"(1)')).toEqual(["select", "pg_read_file"]);
    expect(words(`select U&"!0070g_read_file" UESCAPE '!'(1)`)).toContain("pg_read_file");
    expect(words('select U&"\\+000064o"')).toEqual(["select", "do"]);
  });

  it("lets an unterminated string or comment run to the end without throwing", () => {
    expect(kinds("select 'abc; drop")).toEqual(["word:select", "string:abc; drop"]);
    expect(kinds("select 1 /* ; drop")).toEqual(["word:select", "number:1"]);
    expect(kinds("select $x$ ; drop")).toEqual(["word:select", "string: ; drop"]);
  });

  it("reads B'', X'' and N'' as strings and leaves other words alone (xe'…' is a word then a string)", () => {
    expect(kinds("select b'101', X'ff', n'x', xe'y'")).toEqual(["word:select", "string:101", "symbol:,", "string:ff", "symbol:,", "string:x", "symbol:,", "word:xe", "string:y"]);
  });

  it("never throws, and its tokens start at increasing offsets", () => {
    const alphabet = fc.constantFrom(..."'\"$;-/*eEuU&!\\ \n\tabc1._(),".split(""), "$$", "$a$", "--", "/*", "*/", "U&\"", "E'");
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 60 }), (parts) => {
        const tokens: Token[] = lex(parts.join(""));
        tokens.forEach((t, i) => i > 0 && expect(t.start).toBeGreaterThan(tokens[i - 1]!.start));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("splitStatements", () => {
  it.each([
    ["select 1", 1],
    ["select 1;", 1],
    [";; select 1 ;; -- trailing\n /* c */", 1],
    ["select ';'; ", 1],
    ["select $$;$$", 1],
    ['select 1 as ";"', 1],
    ["select 1 -- ; select 2", 1],
    ["select 1 /* ; /* ; */ ; */", 1],
    ["select (1;2)", 1],
    ["select 1; select 2", 2],
    ["select 1;/**/do $$ begin end $$", 2],
    ["select ';'; select $$;$$; select 3", 3],
    ["  -- only a comment", 0],
    ["", 0],
  ])("%p holds %p statement(s)", (text, n) => {
    expect(count(text)).toBe(n);
  });

  it("keeps the ; of a BEGIN ATOMIC body (with CASE … END inside) in one CREATE FUNCTION", () => {
    const body = "create or replace function f() returns int language sql begin atomic select case when true then 1 end; select 2; end";
    expect(count(body)).toBe(1);
    expect(count(`${body}; select 3`)).toBe(2);
    expect(count("create procedure p() language sql begin atomic insert into t values (1); end; select 1")).toBe(2);
  });

  it("splits whatever strings, quoted names, comments and dollar quotes with ; are joined by ;", () => {
    const atom = fc.constantFrom("select 1", "select ';'", "select 'it'';s'", "select $$;$$", "select $q$ $$; $q$", 'select 1 as "a;b"', "select E'\\';'", "select 1 /* ; /* ; */ */", "select 1 -- ;\n");
    fc.assert(
      fc.property(fc.array(atom, { minLength: 1, maxLength: 8 }), (statements) => {
        expect(count(statements.join(";"))).toBe(statements.length);
      }),
    );
  });
});

/** The statements StatementScanner finds in `text` fed line by line; undefined when it meets a backslash in code. */
function scanned(text: string) {
  const scanner = new StatementScanner();
  const found: { text: string; line: number }[] = [];
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    for (let from = 0; ; ) {
      const event = scanner.scan(lines[n]!, n + 1, from);
      if (!event) break;
      if (event.kind === "backslash") return undefined;
      found.push({ text: event.text, line: event.line });
      from = event.next;
    }
  }
  const rest = scanner.finish();
  if (rest) found.push(rest);
  return found;
}

const values = (tokens: Token[]) => tokens.map((t) => `${t.kind}:${t.value}`);

describe("StatementScanner", () => {
  it("splits line by line as splitStatements splits the whole text, whatever the text", () => {
    const alphabet = fc.constantFrom(
      ..."'\"$;-/*eEuUbxnN&! \n\r\tabc1._(),".split(""),
      "$$", "$a$", "$1", "--", "/*", "*/", 'U&"', "U&'", "E'", "\\", "1e5", "1_0", " begin ", " end ", " case ", " atomic ", "create ", "function ", "procedure ", "or replace ", "create function f() begin atomic ",
    );
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 80 }), (parts) => {
        const text = parts.join("");
        const found = scanned(text);
        if (!found) return; // a backslash in code: reported, not split
        expect(found.map((s) => values(lex(s.text)))).toEqual(splitStatements(lex(text)).map(values));
      }),
      { numRuns: 5000 },
    );
  });

  it("leaves a comment over several lines out of the statement after it", () => {
    // Found by the property above: the comment's first line was kept, and re-lexed it swallowed the statement.
    expect(scanned("/*\n*/\n'")!.map((s) => values(lex(s.text)))).toEqual([["string:"]]);
    expect(scanned("/* a\n b */ select 1; /*\n*/ select\n 2")!.map((s) => s.text)).toEqual(["select 1", "select\n 2"]);
  });

  it("gives each statement the line its first token is on, across lines and several on one line", () => {
    const found = scanned("-- header\n\nselect 1;  select\n 2; /* c */\ncreate function f() returns int language sql\nbegin atomic\n select 1;\nend;\ncopy t from stdin;");
    expect(found!.map((s) => s.line)).toEqual([3, 3, 5, 9]);
    expect(found![3]!.text).toBe("copy t from stdin");
  });

  it("reports a backslash in code, not one in a string, comment or dollar quote", () => {
    const scanner = new StatementScanner();
    expect(scanner.scan("select E'\\'', '\\', $$\\$$ -- \\", 1)).toBeUndefined();
    expect(scanner.scan("\\! touch /tmp/x", 2)).toEqual({ kind: "backslash", command: "\\! touch /tmp/x", line: 2, empty: false });
    const fresh = new StatementScanner();
    expect(fresh.scan("\\restrict abc", 1)).toEqual({ kind: "backslash", command: "\\restrict abc", line: 1, empty: true });
  });
});

describe("characterPosition", () => {
  it("counts characters from 1, as Postgres does, not UTF-16 units", () => {
    const text = "select '😀é', nope";
    expect(text.indexOf("nope") + 1).toBe(15); // counted in UTF-16 units
    expect(characterPosition(text, text.indexOf("nope"))).toBe(14);
  });
});

// A lexer for Postgres SQL text, just deep enough to know what is code and what is not: strings
// ('…', E'…' with backslash escapes, U&'…', B/X/N'…', $$…$$ and $tag$…$tag$), quoted identifiers
// ("…", U&"…" with UESCAPE), -- and nested /* */ comments. The SQL editor uses it to count the
// statements of a query and to look for denied commands among the words that are code. Postgres
// itself (the extended protocol) remains the boundary for "one statement"; this gives the early,
// clear error and the deny list something sound to match on. Pure: no Postgres, no I/O.

export interface Token {
  kind: "word" | "string" | "number" | "symbol";
  /** word: lowercased, or exactly as written when quoted; string: its text when `plain`; symbol: the character. */
  value: string;
  /** Offset in the query text (UTF-16 code units). */
  start: number;
  /** word: written as a quoted identifier. */
  quoted?: boolean;
  /** string: `value` is exactly the string's content ('…' or $$…$$); false for E'', U&'', B'', X'', N''. */
  plain?: boolean;
  /** U&"…" before its UESCAPE clause is applied: the raw body. */
  unicodeRaw?: string;
}

// Postgres 16 added \v to its whitespace; treating it as such here errs on the side of "nothing there".
const SPACE = /[ \t\n\r\f\v]/;
const IDENT_START = /[A-Za-z_\u0080-\uffff]/;
const IDENT_CONT = /[A-Za-z0-9_$\u0080-\uffff]/;
const DOLLAR_DELIMITER = /\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/y;
const NUMBER = /(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?/y;

/** The tokens of `text` that are code; whitespace and comments are dropped. Never throws: an unterminated string or comment runs to the end, as Postgres would read it before reporting it. */
export function lex(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const start = i;
    if (SPACE.test(c)) {
      i++;
    } else if (text.startsWith("--", i)) {
      i = skipLineComment(text, i);
    } else if (text.startsWith("/*", i)) {
      i = skipBlockComment(text, i);
    } else if (c === "'") {
      const s = readQuoted(text, i, "'", false);
      tokens.push({ kind: "string", value: s.value, start, plain: true });
      i = s.end;
    } else if (c === '"') {
      const s = readQuoted(text, i, '"', false);
      tokens.push({ kind: "word", value: s.value, start, quoted: true });
      i = s.end;
    } else if (c === "$") {
      i = readDollar(text, i, tokens);
    } else if (IDENT_START.test(c)) {
      i = readWordOrPrefixedString(text, i, tokens);
    } else if (/[0-9.]/.test(c) && matchAt(NUMBER, text, i)) {
      i = NUMBER.lastIndex;
      tokens.push({ kind: "number", value: text.slice(start, i), start });
    } else {
      tokens.push({ kind: "symbol", value: c, start });
      i++;
    }
  }
  return applyUescape(tokens);
}

function matchAt(sticky: RegExp, text: string, i: number) {
  sticky.lastIndex = i;
  return sticky.exec(text)?.[0];
}

function skipLineComment(text: string, i: number) {
  while (i < text.length && text[i] !== "\n" && text[i] !== "\r") i++;
  return i;
}

/** Postgres' block comments nest: /* a /* b *\/ still a comment *\/. */
function skipBlockComment(text: string, i: number) {
  let depth = 0;
  while (i < text.length) {
    if (text.startsWith("/*", i)) {
      depth++;
      i += 2;
    } else if (text.startsWith("*/", i)) {
      depth--;
      i += 2;
      if (depth === 0) return i;
    } else {
      i++;
    }
  }
  return i;
}

/** A '…' or "…" run starting at `i` (the opening quote); a doubled quote is one quote; with `backslashes`, \x takes the next character (E'' strings). */
function readQuoted(text: string, i: number, quote: string, backslashes: boolean) {
  let value = "";
  i++;
  while (i < text.length) {
    const c = text[i]!;
    if (backslashes && c === "\\") {
      value += text.slice(i, i + 2);
      i += 2;
    } else if (c === quote) {
      if (text[i + 1] !== quote) return { value, end: i + 1 };
      value += quote;
      i += 2;
    } else {
      value += c;
      i++;
    }
  }
  return { value, end: i };
}

/** $1 (a parameter), $tag$…$tag$ (a string), or a lone $ (a symbol Postgres will complain about). */
function readDollar(text: string, i: number, tokens: Token[]) {
  if (/[0-9]/.test(text[i + 1] ?? "")) {
    let end = i + 1;
    while (/[0-9]/.test(text[end] ?? "")) end++;
    tokens.push({ kind: "symbol", value: text.slice(i, end), start: i });
    return end;
  }
  const delimiter = matchAt(DOLLAR_DELIMITER, text, i);
  if (!delimiter) {
    tokens.push({ kind: "symbol", value: "$", start: i });
    return i + 1;
  }
  const bodyStart = i + delimiter.length;
  const close = text.indexOf(delimiter, bodyStart);
  const end = close === -1 ? text.length : close + delimiter.length;
  tokens.push({ kind: "string", value: text.slice(bodyStart, close === -1 ? text.length : close), start: i, plain: true });
  return end;
}

/**
 * An identifier or keyword; `$` continues one (a$b$ is one identifier, not a dollar quote). A lone
 * E, B, X or N right before a quote starts a string of that kind, U& a Unicode string or identifier.
 */
function readWordOrPrefixedString(text: string, i: number, tokens: Token[]) {
  const start = i;
  const next = text[i + 1];
  const prefix = text[i]!.toLowerCase();
  if (next === "'" && "ebxn".includes(prefix)) {
    const s = readQuoted(text, i + 1, "'", prefix === "e");
    tokens.push({ kind: "string", value: s.value, start, plain: false });
    return s.end;
  }
  if (prefix === "u" && next === "&" && (text[i + 2] === "'" || text[i + 2] === '"')) {
    const s = readQuoted(text, i + 2, text[i + 2]!, false);
    if (text[i + 2] === "'") tokens.push({ kind: "string", value: s.value, start, plain: false });
    else tokens.push({ kind: "word", value: decodeUnicodeEscapes(s.value, "\\"), start, quoted: true, unicodeRaw: s.value });
    return s.end;
  }
  i++;
  while (i < text.length && IDENT_CONT.test(text[i]!)) i++;
  tokens.push({ kind: "word", value: text.slice(start, i).toLowerCase(), start });
  return i;
}

/** U&"…" UESCAPE '!': the identifier is decoded with the escape character given after it. */
function applyUescape(tokens: Token[]) {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    const clause = tokens[i + 1];
    const escape = tokens[i + 2];
    if (t.unicodeRaw !== undefined && clause?.kind === "word" && !clause.quoted && clause.value === "uescape" && escape?.kind === "string" && escape.value.length === 1) {
      t.value = decodeUnicodeEscapes(t.unicodeRaw, escape.value);
    }
  }
  return tokens;
}

/** \XXXX and \+XXXXXX (with `escape` for \) as code points, a doubled escape as itself. */
export function decodeUnicodeEscapes(body: string, escape: string) {
  let out = "";
  for (let i = 0; i < body.length; ) {
    if (body[i] !== escape) {
      out += body[i++];
      continue;
    }
    if (body[i + 1] === escape) {
      out += escape;
      i += 2;
      continue;
    }
    const long = body[i + 1] === "+";
    const hex = long ? body.slice(i + 2, i + 8) : body.slice(i + 1, i + 5);
    const width = long ? 6 : 4;
    if (hex.length === width && /^[0-9a-fA-F]+$/.test(hex) && parseInt(hex, 16) <= 0x10ffff) {
      out += String.fromCodePoint(parseInt(hex, 16));
      i += (long ? 2 : 1) + width;
    } else {
      out += body[i++];
    }
  }
  return out;
}

/**
 * The statements of the token list: split at `;` outside parentheses, empty ones dropped (Postgres
 * drops them too). Like psql, a `;` inside the BEGIN ATOMIC … END body of CREATE [OR REPLACE]
 * FUNCTION|PROCEDURE does not end the statement.
 */
export function splitStatements(tokens: Token[]): Token[][] {
  const statements: Token[][] = [];
  let current: Token[] = [];
  let parens = 0;
  let blocks = 0;
  for (const t of tokens) {
    if (t.kind === "symbol" && t.value === ";" && parens === 0 && blocks === 0) {
      if (current.length > 0) statements.push(current);
      current = [];
      continue;
    }
    if (t.kind === "symbol" && t.value === "(") parens++;
    if (t.kind === "symbol" && t.value === ")") parens = Math.max(0, parens - 1);
    if (t.kind === "word" && !t.quoted && parens === 0 && definesRoutine(current)) {
      if (t.value === "begin" || (t.value === "case" && blocks > 0)) blocks++;
      if (t.value === "end" && blocks > 0) blocks--;
    }
    current.push(t);
  }
  if (current.length > 0) statements.push(current);
  return statements;
}

/** CREATE [OR REPLACE] FUNCTION|PROCEDURE: psql's test for a body whose `;` are its own. */
function definesRoutine(tokens: Token[]) {
  const words = tokens.slice(0, 4).map((t) => (t.kind === "word" && !t.quoted ? t.value : ""));
  const routine = (w: string | undefined) => w === "function" || w === "procedure";
  return words[0] === "create" && (routine(words[1]) || (words[1] === "or" && words[2] === "replace" && routine(words[3])));
}

/** Postgres counts error positions in characters (code points) from 1; `offset` is in UTF-16 code units. */
export function characterPosition(text: string, offset: number) {
  return [...text.slice(0, offset)].length + 1;
}

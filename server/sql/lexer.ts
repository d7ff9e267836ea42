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

/**
 * The tokens of `text` that are code; whitespace and comments are dropped. Never throws: an unterminated string or comment runs to the end, as Postgres would read it before reporting it.
 * With `max`, it stops once it has more than `max` tokens (a token is ~80 bytes: a long statement can have millions).
 */
export function lex(text: string, max = Infinity): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length && tokens.length <= max) {
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
  // The value as slices of the text between doubled quotes (a string of one character appended per
  // character would cost ~32 bytes each: a 60 MB literal took 2 GB).
  const parts: string[] = [];
  i++;
  let from = i;
  while (i < text.length) {
    const c = text[i]!;
    if (backslashes && c === "\\") {
      i += 2;
    } else if (c === quote) {
      if (text[i + 1] !== quote) {
        parts.push(text.slice(from, i));
        return { value: parts.join(""), end: i + 1 };
      }
      parts.push(text.slice(from, i + 1));
      i += 2;
      from = i;
    } else {
      i++;
    }
  }
  parts.push(text.slice(from, i));
  return { value: parts.join(""), end: i };
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

export type ScanEvent =
  /** A statement ended by `;` (not included in `text`); the line goes on from `next`. */
  | { kind: "statement"; text: string; line: number; next: number }
  /** A backslash in code: a psql meta-command, `command` the rest of the line from it. `empty`: no statement was begun. */
  | { kind: "backslash"; command: string; line: number; empty: boolean };

/**
 * The statements of SQL text read one line at a time, split by the same rules as lex + splitStatements
 * (strings, quoted identifiers, dollar quotes, comments, parentheses, BEGIN ATOMIC bodies) while
 * holding only the statement being read: for scripts too large to lex whole (a plain pg_dump file).
 * Lines are given without their line break; nothing a token needs to look ahead at crosses one.
 */
export class StatementScanner {
  private mode: "code" | "quote" | "equote" | "ident" | "dollar" | "block" = "code";
  private tag = "";
  private depth = 0;
  private parens = 0;
  private blocks = 0;
  /** The first four tokens of the statement: an unquoted word's value, "" for any other token. */
  private first: string[] = [];
  private tokens = 0;
  /** The statement's text so far: lines not yet joined, and blocks of them joined (one string per line would cost more than the text). */
  private parts: string[] = [];
  private joined: string[] = [];
  private startLine = 0;
  /** Characters held for the statement being read. */
  size = 0;

  /** Reads `line` from `from`: the first statement it ends or backslash it meets, else undefined (all of it read). */
  scan(line: string, lineNo: number, from = 0): ScanEvent | undefined {
    const n = line.length;
    let i = from;
    let segment = from;
    const push = (value: string) => {
      // A statement's text starts at its first token: comments before it (also ones over several lines) are not part of it.
      if (this.tokens === 0) {
        this.startLine = lineNo;
        segment = i;
      }
      if (this.first.length < 4) this.first.push(value);
      this.tokens++;
    };
    while (i < n) {
      if (this.mode === "block") {
        const open = line.indexOf("/*", i);
        const close = line.indexOf("*/", i);
        if (open === -1 && close === -1) i = n;
        else if (open !== -1 && (close === -1 || open < close)) {
          this.depth++;
          i = open + 2;
        } else {
          i = close + 2;
          if (--this.depth === 0) this.mode = "code";
        }
        continue;
      }
      if (this.mode === "quote" || this.mode === "ident") {
        const quote = this.mode === "quote" ? "'" : '"';
        const at = line.indexOf(quote, i);
        if (at === -1) i = n;
        else if (line[at + 1] === quote) i = at + 2;
        else {
          i = at + 1;
          this.mode = "code";
        }
        continue;
      }
      if (this.mode === "equote") {
        const c = line[i]!;
        if (c === "\\") i += 2;
        else if (c === "'") {
          if (line[i + 1] === "'") i += 2;
          else {
            i++;
            this.mode = "code";
          }
        } else i++;
        continue;
      }
      if (this.mode === "dollar") {
        const at = line.indexOf(this.tag, i);
        if (at === -1) i = n;
        else {
          i = at + this.tag.length;
          this.mode = "code";
        }
        continue;
      }
      const c = line[i]!;
      if (SPACE.test(c)) {
        i++;
      } else if (line.startsWith("--", i)) {
        const cr = line.indexOf("\r", i);
        i = cr === -1 ? n : cr;
      } else if (line.startsWith("/*", i)) {
        this.mode = "block";
        this.depth = 1;
        i += 2;
      } else if (c === "'" || c === '"') {
        push("");
        this.mode = c === "'" ? "quote" : "ident";
        i++;
      } else if (c === "$") {
        push("");
        if (/[0-9]/.test(line[i + 1] ?? "")) {
          i++;
          while (/[0-9]/.test(line[i] ?? "")) i++;
        } else {
          const delimiter = matchAt(DOLLAR_DELIMITER, line, i);
          if (delimiter) {
            this.tag = delimiter;
            this.mode = "dollar";
            i += delimiter.length;
          } else i++;
        }
      } else if (IDENT_START.test(c)) {
        const prefix = c.toLowerCase();
        const next = line[i + 1];
        if (next === "'" && "ebxn".includes(prefix)) {
          push("");
          this.mode = prefix === "e" ? "equote" : "quote";
          i += 2;
        } else if (prefix === "u" && next === "&" && (line[i + 2] === "'" || line[i + 2] === '"')) {
          push("");
          this.mode = line[i + 2] === "'" ? "quote" : "ident";
          i += 3;
        } else {
          let end = i + 1;
          while (end < n && IDENT_CONT.test(line[end]!)) end++;
          const word = line.slice(i, end).toLowerCase();
          if (this.parens === 0 && this.definesRoutine()) {
            if (word === "begin" || (word === "case" && this.blocks > 0)) this.blocks++;
            if (word === "end" && this.blocks > 0) this.blocks--;
          }
          push(word);
          i = end;
        }
      } else if (/[0-9.]/.test(c) && matchAt(NUMBER, line, i)) {
        push("");
        i = NUMBER.lastIndex;
      } else if (c === "\\") {
        this.hold(line.slice(segment, i));
        return { kind: "backslash", command: line.slice(i), line: lineNo, empty: this.tokens === 0 };
      } else if (c === ";" && this.parens === 0 && this.blocks === 0) {
        const text = this.text() + line.slice(segment, i);
        const found = this.tokens > 0;
        const startLine = this.startLine;
        this.reset();
        if (found) return { kind: "statement", text, line: startLine, next: i + 1 };
        segment = ++i;
      } else {
        if (c === "(") this.parens++;
        if (c === ")") this.parens = Math.max(0, this.parens - 1);
        push("");
        i++;
      }
    }
    this.hold(line.slice(segment) + "\n");
    return undefined;
  }

  /** What is left at the end of the text (its last line scanned too): a statement without its `;`, if it has a token. */
  finish(): { text: string; line: number } | undefined {
    // Without the line break scan() put after the last line, which the text does not have.
    const rest = this.tokens > 0 ? { text: this.text().replace(/\n$/, ""), line: this.startLine } : undefined;
    this.reset();
    return rest;
  }

  /** Whether no statement has been begun (only blanks and comments read since the last one). */
  get empty() {
    return this.tokens === 0 && this.mode === "code";
  }

  /** definesRoutine on the first tokens. */
  private definesRoutine() {
    const [a, b, c, d] = this.first;
    const routine = (w: string | undefined) => w === "function" || w === "procedure";
    return a === "create" && (routine(b) || (b === "or" && c === "replace" && routine(d)));
  }

  private hold(text: string) {
    if (this.tokens === 0) return; // blanks and comments between statements
    this.parts.push(text);
    this.size += text.length;
    if (this.parts.length >= 1024) {
      this.joined.push(this.parts.join(""));
      this.parts = [];
    }
  }

  private text() {
    return this.joined.join("") + this.parts.join("");
  }

  private reset() {
    this.mode = "code";
    this.parens = 0;
    this.blocks = 0;
    this.first = [];
    this.tokens = 0;
    this.parts = [];
    this.joined = [];
    this.size = 0;
  }
}

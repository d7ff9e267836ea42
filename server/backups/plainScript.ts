// Reading a plain-format SQL dump (pg_dump's default output, or any .sql script) as a stream of
// statements and COPY data, without psql and without holding the file in memory. psql would run the
// meta-commands a file holds (\! runs a shell command as the server's user); we run none: the two
// pg_dump writes itself — \restrict and \unrestrict, which only switch psql's own meta-commands off
// and on — are passed over, and any other backslash command refuses the whole file with its line.
// COPY … FROM stdin is followed by its data lines up to the `\.` line, handed on as they come.
// Pure: bytes in, items out; what to run and as whom is plainRestore.ts's.
import { lex, StatementScanner, type Token } from "../sql/lexer";

export type ScriptItem =
  | { kind: "statement"; text: string; line: number; tokens: Token[]; copy: boolean }
  /** Lines of the COPY begun by the last statement, each with its line break. */
  | { kind: "copy-data"; data: string }
  | { kind: "copy-end" };

/** A file this reader will not run: `line` is where (1-based). */
export class ScriptRefused extends Error {
  constructor(
    readonly line: number,
    readonly reason: string,
  ) {
    super(`line ${line}: ${reason}`);
  }
}

export interface ScriptInfo {
  /** From pg_dump's header comment ("-- Dumped by pg_dump version 15.20 (…)"). */
  dumpedBy?: string;
}

// A statement (or a line of one) is held whole before it runs; COPY data is not.
export const MAX_STATEMENT_CHARS = 64 * 1024 * 1024;
const COPY_BATCH_CHARS = 256 * 1024;
const HEADER_LINES = 40;
const PG_DUMP_META = /^\\(restrict|unrestrict)\s+[A-Za-z0-9]+\s*$/;

/**
 * The statements and COPY data of `body` in order. Throws ScriptRefused for a psql meta-command other
 * than \restrict/\unrestrict, a COPY other than FROM stdin, a client encoding or string syntax the
 * reader does not read as Postgres would (client_encoding other than UTF8, standard_conforming_strings
 * off), text that is not UTF-8, COPY data without its `\.`, or a statement over 64 MB.
 */
export async function* readScript(body: ReadableStream<Uint8Array>, info: ScriptInfo = {}): AsyncGenerator<ScriptItem> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const scanner = new StatementScanner();
  let lineNo = 0;
  let copying: { line: number; batch: string } | undefined;
  // The start of a line not yet ended by a line break, and (in COPY data) whether it is already handed on in part.
  let pending = "";
  let searched = 0;
  let continued = false;

  // One whole line (without its break): SQL to scan, or a line of COPY data.
  function* line(text: string, hasBreak: boolean): Generator<ScriptItem> {
    lineNo++;
    if (copying) {
      if (!continued && (text === "\\." || text === "\\.\r")) {
        if (copying.batch) yield { kind: "copy-data", data: copying.batch };
        copying = undefined;
        yield { kind: "copy-end" };
        return;
      }
      copying.batch += hasBreak ? text + "\n" : text;
      continued = false;
      if (copying.batch.length >= COPY_BATCH_CHARS) {
        yield { kind: "copy-data", data: copying.batch };
        copying.batch = "";
      }
      return;
    }
    if (lineNo <= HEADER_LINES && !info.dumpedBy) info.dumpedBy = /^-- Dumped by pg_dump version (.+)$/.exec(text)?.[1]?.trim();
    for (let from = 0; ; ) {
      const event = scanner.scan(text, lineNo, from);
      if (!event) break;
      if (event.kind === "backslash") {
        if (event.empty && PG_DUMP_META.test(event.command)) break;
        const name = /^\\[^\s\\]*/.exec(event.command)![0];
        throw new ScriptRefused(lineNo, `the psql meta-command ${name} is not run here (only \\restrict and \\unrestrict, which pg_dump writes, are passed over)`);
      }
      const item = statement(event.text, event.line);
      yield item;
      if (item.copy) {
        if (text.slice(event.next).trim() !== "") throw new ScriptRefused(lineNo, "COPY … FROM stdin must end its line; its data starts on the next one");
        copying = { line: event.line, batch: "" };
        break;
      }
      from = event.next;
    }
    if (scanner.size > MAX_STATEMENT_CHARS) throw new ScriptRefused(lineNo, "a statement is longer than 64 MB");
  }

  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      let text: string;
      try {
        text = done ? decoder.decode() : decoder.decode(value, { stream: true });
      } catch {
        throw new ScriptRefused(lineNo + 1, "the file is not UTF-8 text");
      }
      pending += text;
      let newline: number;
      let start = 0;
      while ((newline = pending.indexOf("\n", Math.max(start, searched))) >= 0) {
        yield* line(pending.slice(start, newline), true);
        start = newline + 1;
        searched = start;
      }
      pending = pending.slice(start);
      searched = pending.length;
      if (done) break;
      if (copying && pending.length > COPY_BATCH_CHARS) {
        // A long line of COPY data goes on in pieces (it cannot be the `\.` line).
        yield { kind: "copy-data", data: copying.batch + pending };
        copying.batch = "";
        pending = "";
        searched = 0;
        continued = true;
      } else if (!copying && pending.length > MAX_STATEMENT_CHARS) {
        throw new ScriptRefused(lineNo + 1, "a statement is longer than 64 MB");
      }
    }
    if (pending || continued) yield* line(pending, false);
    if (copying) throw new ScriptRefused(copying.line, "the data of this COPY … FROM stdin does not end with a \\. line");
    const rest = scanner.finish();
    if (rest) {
      const item = statement(rest.text, rest.line);
      if (item.copy) throw new ScriptRefused(rest.line, "the data of this COPY … FROM stdin does not end with a \\. line");
      yield item;
    }
  } finally {
    reader.releaseLock();
  }
}

// A statement is lexed whole up to this many tokens (~8 MB of them); past it only its first ones are
// kept, which is all that is looked at — except in the statements below, refused then.
export const MAX_READ_TOKENS = 100_000;
const HEAD_TOKENS = 16;

// What Postgres reads as a boolean false: off (and "of"), false and its prefixes, no, n, 0.
const FALSE = /^(of|off|f|fa|fal|fals|false|n|no|0)$/;
const SCS_OFF = "standard_conforming_strings = off is not supported (backslashes would then escape in '…' strings)";

function statement(text: string, line: number): Extract<ScriptItem, { kind: "statement" }> {
  let tokens = lex(text, MAX_READ_TOKENS);
  const word = (i: number) => (tokens[i]?.kind === "word" && !tokens[i]!.quoted ? tokens[i]!.value : undefined);
  if (tokens.length > MAX_READ_TOKENS) {
    // COPY (FROM stdin anywhere), ALTER (… OWNER TO at its end), GRANT/REVOKE (every role named), CREATE EXTENSION (its schema): read whole by plainRestore.ts.
    const first = word(0) ?? "";
    if (["copy", "alter", "grant", "revoke"].includes(first) || (first === "create" && word(1) === "extension")) {
      throw new ScriptRefused(line, `this ${first.toUpperCase()} statement has too many tokens (over ${MAX_READ_TOKENS.toLocaleString("en")}) to be read here`);
    }
    tokens = tokens.slice(0, HEAD_TOKENS);
  }
  let copy = false;
  if (word(0) === "copy") {
    copy = tokens.some((t, i) => word(i) === "from" && word(i + 1) === "stdin");
    if (!copy) throw new ScriptRefused(line, "only COPY … FROM stdin is run from a script (not COPY TO, nor from a file or program)");
  }
  if (word(0) === "set") {
    // SET [SESSION | LOCAL] name { TO | = } value, or SET NAMES value.
    const at = word(1) === "session" || word(1) === "local" ? 2 : 1;
    const name = word(at);
    const value = tokens[name === "names" ? at + 1 : at + 2]?.value.toLowerCase();
    if ((name === "client_encoding" || name === "names") && value?.replace(/[-_]/g, "") !== "utf8" && value !== "unicode") {
      throw new ScriptRefused(line, "only scripts in UTF8 are read (this one sets client_encoding to another encoding)");
    }
    if (name === "standard_conforming_strings" && value !== undefined && FALSE.test(value)) throw new ScriptRefused(line, SCS_OFF);
  }
  // The same through set_config() (in a function body or a DO block it is not seen; the split goes by on, and what Postgres then reads differently fails).
  const setsScsOff = (i: number) => {
    const value = tokens[i + 4];
    return tokens[i + 2]?.kind === "string" && tokens[i + 2]!.value.trim().toLowerCase() === "standard_conforming_strings" && !(value?.kind === "string" && !FALSE.test(value.value.trim().toLowerCase()));
  };
  if (tokens.some((_, i) => word(i) === "set_config" && setsScsOff(i))) {
    throw new ScriptRefused(line, SCS_OFF);
  }
  return { kind: "statement", text, line, tokens, copy };
}

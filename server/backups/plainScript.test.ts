import { describe, expect, it } from "bun:test";
import { readScript, ScriptRefused, type ScriptItem } from "./plainScript";

/** `text` as a stream of `chunk`-byte pieces (1: every boundary a chunk can fall on). */
function streamOf(text: string | Uint8Array, chunk = 7): ReadableStream<Uint8Array> {
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + chunk));
      at += chunk;
    },
  });
}

async function read(text: string | Uint8Array, chunk?: number) {
  const items: ScriptItem[] = [];
  for await (const item of readScript(streamOf(text, chunk))) items.push(item);
  // Adjacent COPY data joined: how it is cut into pieces is not the reader's promise.
  const joined: { kind: string; text?: string; line?: number; data?: string }[] = [];
  for (const item of items) {
    const last = joined.at(-1);
    if (item.kind === "copy-data" && last?.kind === "copy-data") last.data += item.data;
    else if (item.kind === "statement") joined.push({ kind: "statement", text: item.text.trim(), line: item.line });
    else joined.push({ ...item });
  }
  return joined;
}

async function refusal(text: string) {
  try {
    await read(text);
  } catch (err) {
    if (err instanceof ScriptRefused) return { line: err.line, reason: err.reason };
    throw err;
  }
  throw new Error("not refused");
}

const DUMP = `--
-- PostgreSQL database dump
--

\\restrict 7mcqqZ7ulqIGCGus6ABbQR8TI7LCIMpCxj0dDf8sZu2nMXVipOTvor4z1jJsuEU

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
CREATE FUNCTION public.f() RETURNS integer
    LANGUAGE sql
    BEGIN ATOMIC
 SELECT 1;
 SELECT 2;
END;

COPY public.items (id, name, v) FROM stdin;
1\ta\\tb\\\\c\t[1,2]
2\t\t\\N
3\t\\N\t\\\\.
4\t\\! touch /tmp/x; select 1;\t$$
\\.
SELECT pg_catalog.setval('public.items_id_seq', 4, true); select ';\\';
\\unrestrict 7mcqqZ7ulqIGCGus6ABbQR8TI7LCIMpCxj0dDf8sZu2nMXVipOTvor4z1jJsuEU
`;

describe("readScript", () => {
  it("reads pg_dump's plain output: statements with their lines, COPY data verbatim, \\restrict and \\unrestrict passed over", async () => {
    const expected = [
      { kind: "statement", text: "SET client_encoding = 'UTF8'", line: 10 },
      { kind: "statement", text: "SET standard_conforming_strings = on", line: 11 },
      { kind: "statement", text: "CREATE FUNCTION public.f() RETURNS integer\n    LANGUAGE sql\n    BEGIN ATOMIC\n SELECT 1;\n SELECT 2;\nEND", line: 12 },
      { kind: "statement", text: "COPY public.items (id, name, v) FROM stdin", line: 19 },
      { kind: "copy-data", data: "1\ta\\tb\\\\c\t[1,2]\n2\t\t\\N\n3\t\\N\t\\\\.\n4\t\\! touch /tmp/x; select 1;\t$$\n" },
      { kind: "copy-end" },
      { kind: "statement", text: "SELECT pg_catalog.setval('public.items_id_seq', 4, true)", line: 25 },
      { kind: "statement", text: "select ';\\'", line: 25 },
    ];
    expect(await read(DUMP)).toEqual(expected);
    // Wherever the chunks of the stream end.
    expect(await read(DUMP, 1)).toEqual(expected);
    expect(await read(DUMP.replaceAll("\n", "\r\n"), 3)).toHaveLength(expected.length);
  });

  it("notes the pg_dump version of the header", async () => {
    const info: { dumpedBy?: string } = {};
    for await (const _ of readScript(streamOf(DUMP), info));
    expect(info.dumpedBy).toBe("15.20 (Debian 15.20-0+deb12u1)");
  });

  it.each([
    ["\\! touch /tmp/x\n", 1, "\\!"],
    ["select 1;\n\\copy t from '/etc/passwd'\n", 2, "\\copy"],
    ["\\i /etc/passwd\n", 1, "\\i"],
    ["\\o /tmp/out\n", 1, "\\o"],
    ["\\set ON_ERROR_STOP off\n", 1, "\\set"],
    ["\\connect other\n", 1, "\\connect"],
    ["select 1 \\g /tmp/x\n", 1, "\\g"],
    ["select\n\\restrict abc\n1;", 2, "\\restrict"],
  ])("refuses the meta-command of %p with its line", async (text, line, command) => {
    const refused = await refusal(text as string);
    expect(refused.line).toBe(line as number);
    expect(refused.reason).toContain(`meta-command ${command}`);
  });

  it("passes over \\restrict between statements, even indented", async () => {
    expect(await read("select 1;\n  \\restrict abc\nselect 2;")).toHaveLength(2);
  });

  it.each([
    ["COPY t TO stdout;\n", "only COPY … FROM stdin"],
    ["copy t from '/etc/passwd';\n", "only COPY … FROM stdin"],
    ["copy t from program 'id';\n", "only COPY … FROM stdin"],
    ["copy t from stdin;\n1\n2\n", "does not end with a \\. line"],
    ["copy t from stdin; select 1;\n1\n\\.\n", "must end its line"],
    ["SET client_encoding = 'LATIN1';\n", "only scripts in UTF8"],
    ["set names 'sql_ascii';\n", "only scripts in UTF8"],
    ["SET standard_conforming_strings = off;\n", "standard_conforming_strings"],
    // Every spelling Postgres takes for off.
    ["set standard_conforming_strings to false;\n", "standard_conforming_strings"],
    ["SET LOCAL standard_conforming_strings = 'no';\n", "standard_conforming_strings"],
    ["set session standard_conforming_strings = 0;\n", "standard_conforming_strings"],
    ["set standard_conforming_strings = OF;\n", "standard_conforming_strings"],
    ["select set_config('standard_conforming_strings', 'off', false);\n", "standard_conforming_strings"],
  ])("refuses %p", async (text, reason) => {
    expect((await refusal(text)).reason).toContain(reason);
  });

  it("refuses bytes that are not UTF-8", async () => {
    const bytes = new Uint8Array([...new TextEncoder().encode("select '"), 0xff, 0xfe, ...new TextEncoder().encode("';\n")]);
    await expect(read(bytes)).rejects.toThrow("not UTF-8");
  });

  it("runs a last statement without its ; and hands a long COPY line on in pieces", async () => {
    expect(await read("select 1;\nselect 2")).toEqual([
      { kind: "statement", text: "select 1", line: 1 },
      { kind: "statement", text: "select 2", line: 2 },
    ]);
    const long = "x".repeat(600_000);
    const items: ScriptItem[] = [];
    for await (const item of readScript(streamOf(`copy t from stdin;\n${long}\n\\.\n`, 65536))) items.push(item);
    const pieces = items.filter((i) => i.kind === "copy-data") as { data: string }[];
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.map((p) => p.data).join("")).toBe(long + "\n");
    expect(items.at(-1)).toEqual({ kind: "copy-end" });
  });
});

describe("readScript's memory on statements of many tokens", () => {
  const { heapStats } = require("bun:jsc") as { heapStats: () => { heapSize: number } };
  const heap = () => {
    Bun.gc(true);
    return heapStats().heapSize;
  };

  it("does not keep a token for each of the millions of a long statement (a 6 MB one took ~500 MB)", async () => {
    const n = 3_000_000;
    const before = heap();
    let peak = 0;
    let tokens = 0;
    for await (const item of readScript(streamOf(`select ${"1,".repeat(n)}1;\nselect 2;\n`, 1 << 16))) {
      if (item.kind !== "statement") continue;
      peak = Math.max(peak, heap() - before);
      tokens = Math.max(tokens, item.tokens.length);
    }
    expect(tokens).toBeLessThan(100_000);
    expect(peak).toBeLessThan(64 * 1024 * 1024);
  }, 60_000);

  it("holds a statement of millions of short lines in little more than its text (5 M lines took ~370 MB)", async () => {
    const n = 3_000_000;
    const before = heap();
    let peak = 0;
    for await (const item of readScript(streamOf(`insert into t values\n${"(1),\n".repeat(n)}(1);\n`, 1 << 16))) {
      if (item.kind === "statement") peak = Math.max(peak, heap() - before);
    }
    expect(peak).toBeLessThan(96 * 1024 * 1024);
  }, 60_000);

  it("refuses a statement it leaves out or rewrites (GRANT, ALTER …) when it has too many tokens to read whole", async () => {
    const grant = `GRANT SELECT ON TABLE t TO ${"p_x_app, ".repeat(200_000)}p_x_app;\n`;
    expect((await refusal(grant)).reason).toContain("too many tokens");
  }, 60_000);
});

it("reads a statement holding a string of tens of MB without a heap cell per character (20 MB took 640 MB of heap)", async () => {
  const { heapStats } = require("bun:jsc") as { heapStats: () => { heapSize: number } };
  const heap = () => {
    Bun.gc(true);
    return heapStats().heapSize;
  };
  const before = heap();
  let peak = 0;
  let length = 0;
  for await (const item of readScript(streamOf(`select '${"a''".repeat(7_000_000)}';\n`, 1 << 16))) {
    if (item.kind !== "statement") continue;
    peak = Math.max(peak, heap() - before);
    length = item.tokens[1]!.value.length;
  }
  expect(length).toBe(14_000_000);
  expect(peak).toBeLessThan(64 * 1024 * 1024);
}, 60_000);

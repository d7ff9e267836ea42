import { describe, expect, it } from "bun:test";
import { resolveRange } from "./range";

describe("resolveRange", () => {
  const cases: [string | undefined, number, ReturnType<typeof resolveRange>][] = [
    [undefined, 10, { kind: "whole" }],
    ["bytes=0-0", 10, { kind: "partial", start: 0, end: 0 }],
    ["bytes=2-5", 10, { kind: "partial", start: 2, end: 5 }],
    ["bytes=2-", 10, { kind: "partial", start: 2, end: 9 }],
    ["bytes=5-100", 10, { kind: "partial", start: 5, end: 9 }],
    ["bytes=-3", 10, { kind: "partial", start: 7, end: 9 }],
    ["bytes=-30", 10, { kind: "partial", start: 0, end: 9 }],
    ["bytes=9-9", 10, { kind: "partial", start: 9, end: 9 }],
    ["bytes=10-", 10, { kind: "unsatisfiable" }],
    ["bytes=10-20", 10, { kind: "unsatisfiable" }],
    ["bytes=-0", 10, { kind: "unsatisfiable" }],
    ["bytes=0-", 0, { kind: "unsatisfiable" }],
    ["bytes=-1", 0, { kind: "unsatisfiable" }],
    ["bytes=5-2", 10, { kind: "whole" }],
    ["bytes=0-1,4-5", 10, { kind: "whole" }],
    ["items=0-1", 10, { kind: "whole" }],
    ["bytes=-", 10, { kind: "whole" }],
    ["bytes=a-b", 10, { kind: "whole" }],
    ["bytes=99999999999999999999-", 10, { kind: "unsatisfiable" }],
  ];
  for (const [header, size, answer] of cases) {
    it(`${JSON.stringify(header)} on ${size} bytes → ${answer.kind}`, () => {
      expect(resolveRange(header, size)).toEqual(answer);
    });
  }
});

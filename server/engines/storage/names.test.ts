import { describe, expect, it } from "bun:test";
import { isBucketName, objectKeyProblem } from "./names";

describe("objectKeyProblem", () => {
  const accepted = [
    "a",
    "avatar.png",
    "users/42/avatar.png",
    "...",
    "a..b",
    "..a",
    "naïve café/日本語.txt",
    "emoji 😀.txt",
    "with space and %41 and ?#&=+",
    ".hidden",
    "x".repeat(255),
    ["x".repeat(255), "y".repeat(255), "z".repeat(255), "w".repeat(255)].join("/"), // 1023 bytes
  ];
  for (const key of accepted) {
    it(`accepts ${JSON.stringify(key.length > 40 ? key.slice(0, 40) + "…" : key)}`, () => {
      expect(objectKeyProblem(key)).toBeUndefined();
    });
  }

  const rejected: [string, string][] = [
    ["empty", ""],
    ["absolute", "/etc/passwd"],
    ["a parent segment", "../x"],
    ["a parent segment inside", "a/../../x"],
    ["a bare parent", ".."],
    ["a current-dir segment", "a/./b"],
    ["a trailing slash", "a/"],
    ["an empty segment", "a//b"],
    ["a backslash", "a\\b"],
    ["a backslash traversal", "..\\..\\x"],
    ["NUL", "a\u0000b"],
    ["a newline", "a\nb"],
    ["DEL", "a\u007fb"],
    ["a C1 control", "a\u0085b"],
    ["a right-to-left override", "gpj\u202e.exe"],
    ["a lone surrogate", "a\ud800b"],
    ["fullwidth dots", "\uff0e\uff0e/x"],
    ["one-dot leaders", "\u2024\u2024/x"],
    ["a two-dot leader", "\u2025/x"],
    ["a small full stop", "a/\ufe52"],
    ["a fullwidth solidus", "a\uff0f..\uff0fb"],
    ["a fullwidth reverse solidus", "a\uff3cb"],
    ["a reserved temp-file name", "a/.ah-tmp-123"],
    ["more than 1024 bytes", "é".repeat(513)],
    ["a segment over 255 bytes", "x".repeat(256)],
  ];
  for (const [name, key] of rejected) {
    it(`rejects ${name}`, () => {
      expect(objectKeyProblem(key)).toEqual(expect.any(String));
    });
  }
});

describe("isBucketName", () => {
  it("takes 3–63 lowercase letters, digits, - and _", () => {
    for (const ok of ["private", "uploads", "a-b", "x_1", "abc", "a".repeat(63)]) expect(isBucketName(ok)).toBe(true);
    for (const bad of ["ab", "a".repeat(64), "Upper", "-lead", "trail-", "a.b", "a/b", "..", "a b", ""]) expect(isBucketName(bad)).toBe(false);
  });
});

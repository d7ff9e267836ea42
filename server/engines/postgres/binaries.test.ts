import { describe, expect, it } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { findPgBinDir } from "./binaries";
import { EngineError } from "./engine";
import { tempDir } from "../../test/harness";

describe("findPgBinDir", () => {
  it("finds the real directory of initdb and postgres (not a symlink farm like /usr/local/bin)", () => {
    const dir = findPgBinDir(undefined);
    for (const name of ["initdb", "postgres", "pg_dump"]) expect(existsSync(join(dir, name))).toBe(true);
    expect(dir).toMatch(/^\/usr\/lib\/postgresql\/\d+\/bin$/);
  });

  it("takes ATLASHUB_PG_BIN_DIR as given and says what is missing from it", () => {
    expect(findPgBinDir("/usr/lib/postgresql/15/bin")).toBe("/usr/lib/postgresql/15/bin");
    const empty = tempDir("nobin");
    expect(() => findPgBinDir(empty)).toThrow(EngineError);
    expect(() => findPgBinDir(empty)).toThrow(`ATLASHUB_PG_BIN_DIR=${empty} does not contain initdb, postgres`);
  });
});

import { describe, expect, it } from "bun:test";
import { pgDumpRefusal } from "./pgTools";

describe("pgDumpRefusal", () => {
  it("refuses a pg_dump older than the CVE-2024-7348 fix of its major, naming the version needed", () => {
    for (const [version, needed] of [["15.7", "15.8"], ["16.3", "16.4"], ["14.12", "14.13"], ["13.15", "13.16"], ["12.19", "12.20"], ["11.22", "12.20"], ["15", "15.8"]]) {
      expect(pgDumpRefusal(version!)).toContain(`install pg_dump ${needed}`);
    }
  });

  it("accepts the fixed minor releases and anything from 17 on", () => {
    for (const version of ["15.8", "15.20", "16.4", "14.13", "13.16", "12.20", "17.0", "17", "18.1"]) expect(pgDumpRefusal(version)).toBeUndefined();
  });
});

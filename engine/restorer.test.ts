import { mkdtempSync, rmSync, statSync, writeFileSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { nsToSeconds } from "./restorer.js";

describe("nsToSeconds", () => {
  it("sets a file's mtime in the same microsecond, also for times just below a microsecond boundary", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "cairn-mtime-"));
    try {
      const file = path.join(dir, "f");
      writeFileSync(file, "x");
      // Values a nanosecond clock really produces, including .999 ns tails that a plain
      // seconds + ns / 1e9 conversion rounds up into the next microsecond.
      for (const ns of ["1795326211032489999", "1795326211032489000", "1700000000000000999", "1000000000123456789", "1795326211999999999"]) {
        utimesSync(file, nsToSeconds(ns), nsToSeconds(ns));
        const got = statSync(file, { bigint: true }).mtimeNs / 1000n;
        expect(got).toBe(BigInt(ns) / 1000n);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

import { describe, expect, it } from "vitest";
import { parseBackupLabel } from "./basebackup.js";
import { formatLsn, parseHistory, parseLsn, parseSegmentName, segmentName, segnoOf, walFileKind } from "./wal.js";

const MiB16 = 16 * 1024 * 1024;

describe("WAL names and positions", () => {
  it("reads and prints LSNs as PostgreSQL does", () => {
    expect(parseLsn("16/B374D848")).toBe(0x16b374d848n);
    expect(formatLsn(0x16b374d848n)).toBe("16/B374D848");
    expect(() => parseLsn("12345")).toThrow(/not an LSN/);
  });

  it("names segments from timeline and LSN, and back", () => {
    const segno = segnoOf(parseLsn("1/A3000028"), MiB16);
    expect(segmentName(2, segno, MiB16)).toBe("0000000200000001000000A3");
    expect(parseSegmentName("0000000200000001000000A3", MiB16)).toEqual({ timeline: 2, segno });
    // With 1 GiB segments there are only 4 per 4 GiB "log id".
    expect(segmentName(1, segnoOf(parseLsn("1/C0000000"), 1 << 30), 1 << 30)).toBe("000000010000000100000003");
  });

  it("tells which files PostgreSQL archives", () => {
    expect(walFileKind("000000010000000000000003")).toBe("segment");
    expect(walFileKind("00000002.history")).toBe("history");
    expect(walFileKind("000000010000000000000003.00000028.backup")).toBe("backup");
    expect(walFileKind("000000010000000000000003.partial")).toBe("partial");
    expect(walFileKind("../etc/passwd")).toBeUndefined();
  });

  it("reads timeline history and backup labels", () => {
    expect(parseHistory("1\t0/3000000\tno recovery target specified\n\n2\t0/5000000\tat restore point\n")).toEqual([
      { parent: 1, switchLsn: 0x3000000n },
      { parent: 2, switchLsn: 0x5000000n },
    ]);
    const label = parseBackupLabel("START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\nCHECKPOINT LOCATION: 0/3000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2025-01-31 12:00:01 UTC\nLABEL: x\nSTART TIMELINE: 1\n");
    expect(label).toEqual({ startLsn: 0x3000028n, timeline: 1, startTime: "2025-01-31T12:00:01.000Z" });
  });
});

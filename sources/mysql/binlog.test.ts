import { describe, expect, it } from "vitest";
import type { SnapshotEntry } from "../../engine/snapshot.js";
import { planRecovery, recoveryWindow } from "./binlog.js";
import { MYSQL_PHYSICAL_TAG } from "./physical.js";

const SERVER = "db1:3306";
let n = 0;
const entry = (time: string, host: string, tags: string[], source: SnapshotEntry["source"]): SnapshotEntry =>
  ({ id: `${(++n).toString(16).padStart(8, "0")}aaaa`, time, host, username: "root", paths: [], tags, tree: "00", program: "cairn", source }) as SnapshotEntry;
const backup = (stopTime: string, binlogFile: string, server = SERVER) =>
  entry(stopTime, "plan-p", [MYSQL_PHYSICAL_TAG], { type: "mysql", mode: "physical", server, serverVersion: "10.11", startTime: stopTime, stopTime, binlogFile, binlogPosition: 400 });
const archive = (time: string, files: string[], server = SERVER) => entry(time, "plan-p-binlogs", ["mysql-binlog"], { type: "mysql", mode: "binlog", server, files: files.map((name) => ({ name, size: 1000 })) });

describe("recoveryWindow", () => {
  it("reaches from the oldest backup's end to the last archived log that continues the newest backup's chain", () => {
    const snaps = [backup("2026-11-30T10:00:00.000Z", "binlog.000001"), archive("2026-11-30T10:00:05.000Z", ["binlog.000001"]), backup("2026-11-30T11:00:00.000Z", "binlog.000002"), archive("2026-11-30T11:00:05.000Z", ["binlog.000002", "binlog.000003"])];
    expect(recoveryWindow(snaps)).toEqual({
      server: SERVER,
      physicalBackups: 2,
      archivedBinlogs: 3,
      earliest: { time: "2026-11-30T10:00:00.000Z", snapshotId: snaps[0].id, binlogFile: "binlog.000001", binlogPosition: 400 },
      latest: { time: "2026-11-30T11:00:05.000Z", binlogFile: "binlog.000003" },
    });
  });

  it("ends at the newest backup when no log after it is archived, and names a log missing from the chain", () => {
    expect(recoveryWindow([backup("2026-11-30T10:00:00.000Z", "binlog.000004")]).latest).toEqual({ time: "2026-11-30T10:00:00.000Z", binlogFile: "binlog.000004" });
    const gap = recoveryWindow([backup("2026-11-30T10:00:00.000Z", "binlog.000004"), archive("2026-11-30T10:10:00.000Z", ["binlog.000004"]), archive("2026-11-30T10:20:00.000Z", ["binlog.000006"])]);
    expect(gap.missing).toBe("binlog.000005");
    expect(gap.latest).toEqual({ time: "2026-11-30T10:10:00.000Z", binlogFile: "binlog.000004" });
  });

  it("is empty without a physical backup, and looks at one server only", () => {
    expect(recoveryWindow([archive("2026-11-30T10:00:00.000Z", ["binlog.000001"])])).toEqual({ physicalBackups: 0, archivedBinlogs: 0 });
    const w = recoveryWindow([backup("2026-11-30T10:00:00.000Z", "binlog.000001"), backup("2026-11-30T10:05:00.000Z", "binlog.000009", "other:3306")], SERVER);
    expect(w.physicalBackups).toBe(1);
  });
});

describe("the continuous archiver's partial of the current log", () => {
  const partial = (name: string, through: string, server = SERVER) => ({ server, name, size: 5000, through, segments: [`binlog/x/${name}@0-5000`] });

  it("extends the window to the time it was stored through when it continues the chain, and is left out when a whole copy exists", () => {
    const snaps = [backup("2026-11-30T10:00:00.000Z", "binlog.000001"), archive("2026-11-30T10:10:00.000Z", ["binlog.000001"])];
    const w = recoveryWindow(snaps, SERVER, partial("binlog.000002", "2026-11-30T10:20:07.000Z"));
    expect(w.latest).toEqual({ time: "2026-11-30T10:20:07.000Z", binlogFile: "binlog.000002" });
    expect(w.partial).toEqual({ binlogFile: "binlog.000002", size: 5000, through: "2026-11-30T10:20:07.000Z" });
    expect(recoveryWindow(snaps, SERVER, partial("binlog.000001", "2026-11-30T10:05:00.000Z")).latest).toEqual({ time: "2026-11-30T10:10:00.000Z", binlogFile: "binlog.000001" });
    expect(recoveryWindow(snaps, SERVER, partial("binlog.000002", "2026-11-30T10:20:07.000Z", "other:3306")).latest).toEqual({ time: "2026-11-30T10:10:00.000Z", binlogFile: "binlog.000001" });
  });

  it("is replayed after the whole logs up to a time it reaches, and alone when the backup's own log is the one still written", () => {
    const snaps = [backup("2026-11-30T10:00:00.000Z", "binlog.000001"), archive("2026-11-30T10:10:00.000Z", ["binlog.000001"])];
    expect(planRecovery(snaps, { kind: "time", time: new Date("2026-11-30T10:20:00Z") }, SERVER, partial("binlog.000002", "2026-11-30T10:20:07.000Z")).binlogs).toEqual(["binlog.000001", "binlog.000002"]);
    expect(planRecovery([backup("2026-11-30T10:00:00.000Z", "binlog.000003")], { kind: "latest" }, SERVER, partial("binlog.000003", "2026-11-30T10:20:07.000Z")).binlogs).toEqual(["binlog.000003"]);
  });
});

describe("planRecovery", () => {
  it("chooses the newest backup that ended before the target time and every archived log from its position", () => {
    const snaps = [backup("2026-11-30T10:00:00.000Z", "binlog.000001"), archive("2026-11-30T10:30:00.000Z", ["binlog.000001", "binlog.000002"]), backup("2026-11-30T11:00:00.000Z", "binlog.000003")];
    const plan = planRecovery(snaps, { kind: "time", time: new Date("2026-11-30T10:20:00Z") });
    expect(plan.backup.id).toBe(snaps[0].id);
    expect(plan.binlogs).toEqual(["binlog.000001", "binlog.000002"]);
    expect(() => planRecovery(snaps, { kind: "time", time: new Date("2026-11-30T09:00:00Z") })).toThrow(/no physical backup of db1:3306 ended before the target/);
  });
});

import { mkdtempSync, rmSync, statfsSync } from "node:fs";
import { tmpdir, totalmem } from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { resourceTargetsFromEnvironment } from "../worker.js";
import { cpuBusy, measureWorker, reportIntervalFromEnvironment } from "./worker-report.js";

describe("worker reports", () => {
  it("measures CPU busy share between two readings, 0 when no time passed", () => {
    expect(cpuBusy({ idle: 100, total: 200 }, { idle: 130, total: 300 })).toBe(0.7);
    expect(cpuBusy({ idle: 100, total: 200 }, { idle: 100, total: 200 })).toBe(0);
    expect(cpuBusy({ idle: 0, total: 0 }, { idle: 0, total: 10 })).toBe(1);
  });

  it("reports the machine's memory and the data directory's file system", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "cairn-report-"));
    try {
      const report = await measureWorker({ identity: "1@h", taskQueue: "cairn", dataDir: dir, intervalMs: 15_000, slots: { tuner: "fixed", activities: 2 }, activitiesRunning: () => 1 }, 0.25, new Date("2026-03-01T00:00:00Z"));
      const fs = statfsSync(dir);
      expect(report).toMatchObject({ identity: "1@h", at: "2026-03-01T00:00:00.000Z", cpu: 0.25, activitiesRunning: 1, disk: { path: dir, totalBytes: fs.blocks * fs.bsize } });
      expect(report.memory.totalBytes).toBe(totalmem());
      expect(report.memory.usedBytes).toBeGreaterThan(0);
      expect(report.memory.usedBytes).toBeLessThanOrEqual(report.memory.totalBytes);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it("reads CAIRN_WORKER_REPORT_INTERVAL_MS, and refuses what is not whole milliseconds of 1000 or more", () => {
    expect(reportIntervalFromEnvironment({})).toBe(15_000);
    expect(reportIntervalFromEnvironment({ CAIRN_WORKER_REPORT_INTERVAL_MS: "5000" })).toBe(5000);
    expect(() => reportIntervalFromEnvironment({ CAIRN_WORKER_REPORT_INTERVAL_MS: "10" })).toThrow(/1000 or more/);
  });

  it("reads the tuner's targets as shares or percentages, and refuses anything else with what to give", () => {
    expect(resourceTargetsFromEnvironment({})).toEqual({ cpu: 0.8, memory: 0.8 });
    expect(resourceTargetsFromEnvironment({ CAIRN_WORKER_TARGET_CPU: "0.7", CAIRN_WORKER_TARGET_MEMORY: "90%" })).toEqual({ cpu: 0.7, memory: 0.9 });
    expect(() => resourceTargetsFromEnvironment({ CAIRN_WORKER_TARGET_CPU: "80" })).toThrow(/CAIRN_WORKER_TARGET_CPU=80 is not a share.*0\.8.*80%/);
    expect(() => resourceTargetsFromEnvironment({ CAIRN_WORKER_TARGET_MEMORY: "lots" })).toThrow(/CAIRN_WORKER_TARGET_MEMORY/);
  });
});

import { describe, expect, it } from "vitest";
import { DAY, maintenanceJob } from "../test/synthetic-history.js";
import { assessRisk } from "./risk.js";
import type { JobRecord } from "./types.js";

const now = new Date("2026-03-01T12:00:00.000Z");

function drill(id: string, daysAgo: number, outcome: "success" | "failure", extra: Partial<JobRecord> = {}): JobRecord {
  const finishedAt = new Date(now.getTime() - daysAgo * DAY);
  return { id, kind: "drill", planId: "www", outcome, startedAt: new Date(finishedAt.getTime() - 30_000), finishedAt, durationSeconds: 30, ...extra };
}

const restoreTest = (jobs: JobRecord[]) => assessRisk({ now, rpoSeconds: 86_400, jobs, destinations: [], anomalies: [] }).factors.find((f) => f.kind === "restore-test")!;

describe("risk: the restore-test factor reads recovery drills", () => {
  it("counts a drill that passed as a tested restore, with its RTO", () => {
    const f = restoreTest([drill("drill-1", 2, "success", { rtoSeconds: 12.34 })]);
    expect(f.points).toBe(0);
    expect(f.detail).toBe("last recovery drill passed (RTO 12.3 s) 2 days ago");
  });

  it("weighs fully when the last drill failed, even after a restore that worked, and says why", () => {
    const f = restoreTest([maintenanceJob("restore", "restore-1", now, 1), drill("drill-1", 3, "failure", { error: "pack 1a2b is damaged" })]);
    expect(f.points).toBe(15);
    expect(f.detail).toContain("failed: pack 1a2b is damaged");
  });

  it("forgets a failed drill once a later one passed, and ages an old pass", () => {
    expect(restoreTest([drill("drill-1", 50, "failure"), drill("drill-2", 40, "success", { rtoSeconds: 5 })]).points).toBe(10);
  });
});

import { describe, expect, it } from "vitest";
import { alertKeys, alertsForFinishedJob, defaultRpoMinutes, overdueAlerts, planRpoMinutes, quotaAlerts, walArchiveAlerts } from "./alerts.js";
import type { Anomaly } from "./anomalies.js";

const keys = (list: { dedupeKey: string }[]) => list.map((x) => x.dedupeKey);

describe("alertsForFinishedJob", () => {
  it("a failed backup opens backup_failed with the job's error, a later success clears it and backup_overdue", () => {
    const failed = alertsForFinishedJob({ id: "backup-p1-1", kind: "backup", status: "failed", planId: "p1", planName: "www", error: "disk on fire" });
    expect(failed.raise).toHaveLength(1);
    expect(failed.raise[0]).toMatchObject({ kind: "backup_failed", severity: "critical", planId: "p1", dedupeKey: alertKeys.backupFailed("p1"), title: "Backup of plan www failed" });
    expect(failed.raise[0].detail).toContain("disk on fire");
    expect(keys(failed.resolve)).not.toContain(alertKeys.backupFailed("p1"));

    const ok = alertsForFinishedJob({ id: "backup-p1-2", kind: "backup", status: "completed", planId: "p1", planName: "www" });
    expect(ok.raise).toEqual([]);
    expect(keys(ok.resolve)).toEqual(expect.arrayContaining([alertKeys.backupFailed("p1"), alertKeys.backupOverdue("p1"), alertKeys.verificationOfPlan("p1")]));
  });

  it("a backup whose verify step failed also opens verification_failed; a cancelled job decides nothing", () => {
    const d = alertsForFinishedJob({ id: "b", kind: "backup", status: "failed", planId: "p1", error: "pack abc is damaged", failedSteps: ["verify"] });
    expect(d.raise.map((r) => r.kind)).toEqual(["backup_failed", "verification_failed"]);
    expect(alertsForFinishedJob({ id: "c", kind: "backup", status: "cancelled", planId: "p1" })).toEqual({ raise: [], resolve: [] });
  });

  it("a failed drill opens its plan's critical drill_failed with the cause; a drill that passes clears it", () => {
    const failed = alertsForFinishedJob({ id: "drill-p1-1", kind: "drill", status: "failed", planId: "p1", planName: "www", error: "pack abc is damaged" });
    expect(failed.raise).toEqual([expect.objectContaining({ kind: "drill_failed", severity: "critical", planId: "p1", dedupeKey: alertKeys.drillFailed("p1"), title: "Recovery drill of plan www failed" })]);
    expect(failed.raise[0].detail).toContain("pack abc is damaged");
    const passed = alertsForFinishedJob({ id: "drill-p1-2", kind: "drill", status: "completed", planId: "p1" });
    expect(passed).toEqual({ raise: [], resolve: [{ dedupeKey: alertKeys.drillFailed("p1"), resolution: "drill job drill-p1-2 passed" }] });
  });

  it("a verify job with errors opens its repository's verification_failed; a clean one clears it", () => {
    const bad = alertsForFinishedJob({ id: "verify-r1-1", kind: "verify", status: "completed", repositoryId: "r1", verifyErrors: ["pack 12 missing"] });
    expect(bad.raise[0]).toMatchObject({ kind: "verification_failed", repositoryId: "r1", dedupeKey: alertKeys.verificationOfRepository("r1") });
    expect(bad.raise[0].detail).toContain("pack 12 missing");
    const good = alertsForFinishedJob({ id: "check-r1-2", kind: "check", status: "completed", repositoryId: "r1", verifyErrors: [] });
    expect(good.raise).toEqual([]);
    expect(keys(good.resolve)).toEqual([alertKeys.verificationOfRepository("r1")]);
  });

  it("an anomaly of this very job opens an anomaly alert for its metric; an earlier job's does not, and a usual run clears the metric", () => {
    const anomalies: Anomaly[] = [
      { kind: "metric", metric: "bytesAdded", jobId: "b9", at: "2026-01-09T00:00:00Z", value: 5e9, mean: 1e6, stdDev: 1e4, sigmas: 40, direction: "high" },
      { kind: "metric", metric: "durationSeconds", jobId: "b5", at: "2026-01-05T00:00:00Z", value: 900, mean: 60, stdDev: 3, sigmas: 28, direction: "high" },
    ];
    const d = alertsForFinishedJob({ id: "b9", kind: "backup", status: "completed", planId: "p1" }, anomalies);
    expect(d.raise.map((r) => r.dedupeKey)).toEqual([alertKeys.anomaly("p1", "bytesAdded")]);
    expect(d.raise[0].title).toContain("bytes added");
    expect(keys(d.resolve)).toContain(alertKeys.anomaly("p1", "durationSeconds"));
    expect(keys(d.resolve)).not.toContain(alertKeys.anomaly("p1", "bytesAdded"));
  });

  it("a failure rate anomaly opens while it lasts and clears after", () => {
    const rate: Anomaly = { kind: "failure-rate", at: "2026-01-09T00:00:00Z", windowDays: 7, runs: 10, failures: 4, rate: 0.4 };
    expect(keys(alertsForFinishedJob({ id: "b", kind: "backup", status: "failed", planId: "p1" }, [rate]).raise)).toContain(alertKeys.anomaly("p1", "failure-rate"));
    expect(keys(alertsForFinishedJob({ id: "b", kind: "backup", status: "completed", planId: "p1" }, []).resolve)).toContain(alertKeys.anomaly("p1", "failure-rate"));
  });
});

describe("RPO", () => {
  it("derives the RPO from the schedule: the longest wait between runs plus a twelfth (at least 30 min)", () => {
    expect(defaultRpoMinutes("0 3 * * *")).toBe(26 * 60);
    expect(defaultRpoMinutes("@daily")).toBe(26 * 60);
    expect(defaultRpoMinutes("15 * * * *")).toBe(90);
    expect(defaultRpoMinutes("0 */6 * * *")).toBe(6 * 60 + 30);
    expect(defaultRpoMinutes("0 1,5 * * *")).toBe(20 * 60 + 100);
    expect(defaultRpoMinutes("*/5 * * * *")).toBe(35);
    expect(defaultRpoMinutes("0 3 * * SUN")).toBe(7 * 1440 + 14 * 60);
    expect(defaultRpoMinutes("0 3 1 * *")).toBe(31 * 1440 + 62 * 60);
  });

  it("a plan's own RPO wins; a paused or unscheduled plan without one has none", () => {
    expect(planRpoMinutes({ rpoMinutes: 120, schedule: { cron: "0 3 * * *" }, paused: true })).toBe(120);
    expect(planRpoMinutes({ rpoMinutes: null, schedule: { cron: "0 3 * * *" }, paused: false })).toBe(26 * 60);
    expect(planRpoMinutes({ rpoMinutes: null, schedule: { cron: "0 3 * * *" }, paused: true })).toBeUndefined();
    expect(planRpoMinutes({ rpoMinutes: null, schedule: null, paused: false })).toBeUndefined();
  });

  it("opens backup_overdue past the RPO, counted from the last success or else the plan's creation, and clears it within", () => {
    const now = new Date("2026-03-10T12:00:00Z");
    const base = { name: "www", schedule: { cron: "0 3 * * *" }, paused: false, createdAt: new Date("2026-03-01T00:00:00Z") };
    const d = overdueAlerts(now, [
      { ...base, id: "late", lastSuccessAt: new Date("2026-03-09T09:00:00Z") }, // 27 h > 26 h
      { ...base, id: "fine", lastSuccessAt: new Date("2026-03-09T11:00:00Z") }, // 25 h
      { ...base, id: "never" },
      { ...base, id: "new", createdAt: new Date("2026-03-10T11:00:00Z") },
      { ...base, id: "own", rpoMinutes: 60, lastSuccessAt: new Date("2026-03-10T10:30:00Z") },
    ]);
    expect(d.raise.map((r) => r.planId)).toEqual(["late", "never", "own"]);
    expect(d.raise[0]).toMatchObject({ kind: "backup_overdue", dedupeKey: alertKeys.backupOverdue("late") });
    expect(d.raise[0].detail).toContain("derived from its schedule");
    expect(d.raise[1].detail).toContain("no successful backup yet");
    expect(keys(d.resolve)).toEqual([alertKeys.backupOverdue("fine"), alertKeys.backupOverdue("new")]);
  });
});

describe("walArchiveAlerts", () => {
  it("opens wal_archive_stale when the newest archived segment is older than the plan's RPO, and clears it within or without an RPO", () => {
    const now = new Date("2026-03-10T12:00:00Z");
    const base = { name: "db1", schedule: null, paused: false };
    const d = walArchiveAlerts(now, [
      { ...base, id: "stale", rpoMinutes: 15, lastArchivedAt: new Date("2026-03-10T11:40:00Z") }, // 20 min > 15
      { ...base, id: "fresh", rpoMinutes: 15, lastArchivedAt: new Date("2026-03-10T11:50:00Z") },
      { ...base, id: "derived", rpoMinutes: null, schedule: { cron: "0 3 * * *" }, lastArchivedAt: new Date("2026-03-09T09:00:00Z") }, // 27 h > 26 h
      { ...base, id: "none", rpoMinutes: null, lastArchivedAt: new Date("2026-01-01T00:00:00Z") },
    ]);
    expect(d.raise.map((r) => r.planId)).toEqual(["stale", "derived"]);
    expect(d.raise[0]).toMatchObject({ kind: "wal_archive_stale", severity: "critical", dedupeKey: alertKeys.walArchiveStale("stale"), title: "WAL archive of plan db1 is stale" });
    expect(d.raise[0].detail).toMatch(/2026-03-10T11:40:00.000Z.*past the plan's RPO.*archive_command/);
    expect(d.raise[1].detail).toContain("derived from its schedule");
    expect(keys(d.resolve)).toEqual([alertKeys.walArchiveStale("fresh"), alertKeys.walArchiveStale("none")]);
  });
});

describe("quotaAlerts", () => {
  it("warns from 80%, is critical from 100%, and clears below 80% or without a quota", () => {
    const d = quotaAlerts([
      { id: "a", name: "a", quotaBytes: 1000, usedBytes: 799 },
      { id: "b", name: "b", quotaBytes: 1000, usedBytes: 800, fillsAt: "2026-04-02T22:33:36.000Z" },
      { id: "c", name: "c", quotaBytes: 1000, usedBytes: 1200 },
      { id: "d", name: "d", quotaBytes: null, usedBytes: 5000 },
      { id: "e", name: "e", quotaBytes: 1000 },
    ]);
    expect(d.raise.map((r) => [r.repositoryId, r.severity])).toEqual([
      ["b", "warning"],
      ["c", "critical"],
    ]);
    expect(d.raise[0].title).toBe("Repository b is nearly full (80% of its quota)");
    expect(d.raise[0].detail).toContain("fills at 2026-04-02T22:33:36.000Z");
    expect(d.raise[1].detail).toMatch(/raise the quota .* or prune/);
    expect(keys(d.resolve)).toEqual(["a", "d", "e"].map(alertKeys.storage));
  });
});

import { describe, expect, it } from "vitest";
import { dailyBackups } from "../test/synthetic-history.js";
import { DEFAULT_ANOMALY_OPTIONS, detectAnomalies } from "./anomalies.js";

const now = new Date("2026-03-01T12:00:00.000Z");
const tiny = { planId: "etc", now, runs: 30, seed: 5, durationSeconds: 2, bytesProcessed: 40_000, bytesAdded: 3_000, files: 12, compressionRatio: 3, noise: 0.01 };
const flagged = (a: ReturnType<typeof detectAnomalies>) => a.map((x) => (x.kind === "metric" ? `${x.metric}:${x.jobId}` : x.kind));

describe("detectAnomalies", () => {
  it("keeps a tiny plan's jitter unflagged because of the floors, and would flag it without them", () => {
    const jobs = dailyBackups({ ...tiny, overrides: { 25: { durationSeconds: 4.5, files: 15 } } });
    expect(detectAnomalies(jobs, now)).toEqual([]);
    const noFloors = Object.fromEntries(Object.keys(DEFAULT_ANOMALY_OPTIONS.floors).map((m) => [m, { absolute: 0, relative: 0 }]));
    expect(flagged(detectAnomalies(jobs, now, { floors: noFloors as typeof DEFAULT_ANOMALY_OPTIONS.floors }))).toEqual(
      expect.arrayContaining(["durationSeconds:etc-25", "files:etc-25"]),
    );
  });

  it("still flags a tiny plan's real jump past its floor", () => {
    const jobs = dailyBackups({ ...tiny, overrides: { 25: { durationSeconds: 300, files: 900 } } });
    expect(flagged(detectAnomalies(jobs, now))).toEqual(["durationSeconds:etc-25", "files:etc-25"]);
  });

  it("judges nothing before a metric has minSamples runs of history", () => {
    const jobs = dailyBackups({ ...tiny, runs: 12, overrides: { 9: { durationSeconds: 900 }, 11: { durationSeconds: 900 } } });
    expect(flagged(detectAnomalies(jobs, now))).toEqual(["durationSeconds:etc-11"]);
  });

  it("keeps a flagged run out of the baseline, so a second outlier right after is flagged too", () => {
    const jobs = dailyBackups({ ...tiny, overrides: { 20: { durationSeconds: 900 }, 21: { durationSeconds: 900 } } });
    expect(flagged(detectAnomalies(jobs, now))).toEqual(["durationSeconds:etc-20", "durationSeconds:etc-21"]);
  });

  it("reports a failure rate over 20% in the last 7 days only with at least 5 runs in them", () => {
    expect(flagged(detectAnomalies(dailyBackups({ ...tiny, outcomes: { 27: "failure", 28: "failure" } }), now))).toEqual(["failure-rate"]);
    expect(flagged(detectAnomalies(dailyBackups({ ...tiny, outcomes: { 28: "failure" } }), now))).toEqual([]);
    expect(flagged(detectAnomalies(dailyBackups({ ...tiny, runs: 3, outcomes: { 1: "failure", 2: "failure" } }), now))).toEqual([]);
    const cancelled = dailyBackups({ ...tiny, outcomes: { 25: "cancelled", 26: "cancelled", 27: "cancelled", 28: "failure" } });
    expect(flagged(detectAnomalies(cancelled, now))).toEqual([]);
  });
});

/**
 * The analytics on synthetic histories, against golden outputs in
 * test/golden/analytics (rewrite them with CAIRN_UPDATE_GOLDEN=1 after a deliberate
 * change, and read the diff). Each case also asserts what a user relies on, so a
 * golden file rewritten by mistake cannot hide a broken behaviour.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { dailyBackups, DAY, linearUsage, maintenanceJob, MiB } from "../test/synthetic-history.js";
import { analyzeOverall, analyzePlan, type PlanAnalytics, type PlanAnalyticsInput } from "./plan.js";
import type { DestinationHealth } from "./types.js";

const GOLDEN = path.join(import.meta.dirname, "..", "test", "golden", "analytics");
const now = new Date("2026-03-01T12:00:00.000Z");
const GiB = 1024 * MiB;

const healthy: DestinationHealth[] = [
  { repositoryId: "r-nas", name: "nas", primary: true, healthy: true },
  { repositoryId: "r-s3", name: "offsite", primary: false, healthy: true },
];

const www = { planId: "www", now, runs: 60, seed: 7, durationSeconds: 600, bytesProcessed: 20 * GiB, bytesAdded: 800 * MiB, files: 120_000, compressionRatio: 2.4, noise: 0.05 };

interface Case {
  description: string;
  input: () => PlanAnalyticsInput;
  check: (result: PlanAnalytics) => void;
}

const cases: Record<string, Case> = {
  steady: {
    description: "60 daily backups with ±5% noise on every metric, a restore test 10 days ago: nothing flagged, low risk",
    input: () => ({
      now,
      plan: { id: "www", name: "www", rpoSeconds: 86_400 },
      jobs: [...dailyBackups(www), maintenanceJob("restore", "restore-1", now, 10)],
      usage: [],
      destinations: healthy,
    }),
    check: (r) => {
      expect(r.anomalies).toEqual([]);
      expect(r.successRate.rate).toBe(1);
      expect(r.forecast.trend).toBe("stable");
      expect(r.forecast.rate).toBe(1);
      expect(r.risk.score).toBe(0);
      expect(r.recommendations).toEqual([]);
    },
  },
  "duration-outlier": {
    description: "the steady plan where run 50 took five times as long: that run, and only it, is flagged",
    input: () => ({
      now,
      plan: { id: "www", name: "www", rpoSeconds: 86_400 },
      jobs: [...dailyBackups({ ...www, overrides: { 50: { durationSeconds: 3000 } } }), maintenanceJob("restore", "restore-1", now, 10)],
      usage: [],
      destinations: healthy,
    }),
    check: (r) => {
      expect(r.anomalies.map((a) => (a.kind === "metric" ? [a.metric, a.jobId, a.direction] : a.kind))).toEqual([["durationSeconds", "www-50", "high"]]);
      // Nine days ago: outside the risk window, still listed and recommended on.
      expect(r.risk.factors.find((f) => f.kind === "anomalies")!.points).toBe(0);
      expect(r.recommendations.map((x) => x.type)).toEqual(["anomaly"]);
    },
  },
  "ransomware-like": {
    description: "the last run adds twelve times the usual data that no longer compresses, and the file count drops by a third",
    input: () => ({
      now,
      plan: { id: "www", name: "www", rpoSeconds: 86_400 },
      jobs: [
        ...dailyBackups({ ...www, overrides: { 59: { bytesAdded: 10 * GiB, compressionRatio: 1.0, files: 80_000 } } }),
        maintenanceJob("restore", "restore-1", now, 10),
      ],
      usage: [],
      destinations: healthy,
    }),
    check: (r) => {
      const flagged = r.anomalies.map((a) => (a.kind === "metric" ? `${a.metric}:${a.jobId}:${a.direction}` : a.kind));
      expect(flagged.sort()).toEqual(["bytesAdded:www-59:high", "compressionRatio:www-59:low", "files:www-59:low"]);
      expect(r.risk.factors.find((f) => f.kind === "anomalies")!.points).toBe(15);
      expect(r.risk.level).toBe("low");
    },
  },
  "tiny-plan": {
    description: "a plan of a dozen small files whose run times jitter by a second or two: its tiny spread does not make the jitter an anomaly",
    input: () => ({
      now,
      plan: { id: "etc", name: "etc", rpoSeconds: 86_400 },
      jobs: [
        ...dailyBackups({
          planId: "etc",
          now,
          runs: 40,
          seed: 3,
          durationSeconds: 2,
          bytesProcessed: 40_000,
          bytesAdded: 3_000,
          files: 12,
          compressionRatio: 3,
          noise: 0.01,
          overrides: { 30: { durationSeconds: 4.5 }, 35: { files: 15, bytesAdded: 9_000 }, 38: { compressionRatio: 2.8 } },
        }),
        maintenanceJob("restore", "restore-etc", now, 3),
      ],
      usage: [],
      destinations: healthy,
    }),
    check: (r) => expect(r.anomalies).toEqual([]),
  },
  "new-plan": {
    description: "a plan with six runs, one of them much slower: too few samples to call anything an anomaly, and one failure is not a failure rate",
    input: () => ({
      now,
      plan: { id: "new", name: "new", rpoSeconds: 86_400 },
      jobs: dailyBackups({ ...www, planId: "new", runs: 6, overrides: { 5: { durationSeconds: 6000 } }, outcomes: { 2: "failure" } }),
      usage: [],
      destinations: healthy,
    }),
    check: (r) => {
      expect(r.anomalies).toEqual([]);
      expect(r.forecast.trend).not.toBe("unknown");
      expect(r.forecast.confidence).toBeLessThan(0.5);
      expect(r.risk.factors.find((f) => f.kind === "restore-test")!.points).toBe(15);
    },
  },
  "storage-growth": {
    description: "a repository growing by exactly 100 MiB a day from 2 GiB over 30 days, quota 8 GiB: full on 2026-04-02 at 22:33:36",
    input: () => ({
      now,
      plan: { id: "www", name: "www", rpoSeconds: 86_400 },
      jobs: [...dailyBackups(www), maintenanceJob("restore", "restore-1", now, 10)],
      usage: linearUsage(now, 30, 2 * GiB, 100 * MiB),
      quotaBytes: 8 * GiB,
      destinations: healthy,
    }),
    check: (r) => {
      // 2048 + 29 × 100 = 4948 MiB today; (8192 − 4948) / 100 = 32.44 days more.
      expect(r.storage!.currentBytes).toBe(4948 * MiB);
      expect(r.storage!.growthBytesPerDay).toBe(100 * MiB);
      expect(r.storage!.fillsAt).toBe(new Date(now.getTime() + 32.44 * DAY).toISOString());
      expect(r.storage!.fillsAt).toBe("2026-04-02T22:33:36.000Z");
      expect(r.storage!.status).toBe("ok");
      expect(r.storage!.projectedBytes).toBe(4948 * MiB + 30 * 100 * MiB);
    },
  },
  failing: {
    description: "backups failing more and more over the last two weeks, none good for a week, the offsite copy down, the quota at 85%",
    input: () => {
      const outcomes: Record<number, "failure"> = {};
      for (const i of [46, 49, 51, 53, 54, 55, 56, 57, 58, 59]) outcomes[i] = "failure";
      return {
        now,
        plan: { id: "db", name: "db", rpoSeconds: 86_400 },
        jobs: [...dailyBackups({ ...www, planId: "db", outcomes }), maintenanceJob("restore", "restore-db", now, 45)],
        usage: linearUsage(now, 30, 6 * GiB, 10 * MiB),
        quotaBytes: 7.5 * GiB,
        destinations: [healthy[0], { ...healthy[1], healthy: false, detail: "403 Forbidden: the access key was revoked" }],
      };
    },
    check: (r) => {
      expect(r.anomalies.filter((a) => a.kind === "failure-rate")).toHaveLength(1);
      expect(r.forecast.trend).toBe("declining");
      expect(r.risk.level).toBe("critical");
      expect(r.risk.factors.find((f) => f.kind === "rpo")!.points).toBeGreaterThanOrEqual(30);
      expect(r.recommendations[0].priority).toBe("critical");
      expect(r.recommendations.map((x) => x.type)).toEqual(expect.arrayContaining(["reliability", "destination", "capacity", "restore-test"]));
      expect(JSON.stringify(r.recommendations)).not.toMatch(/undefined|NaN/);
    },
  },
  "duration-estimate": {
    description: "runs of 1 to 10 GiB taking 20 s plus 100 MiB/s (±3%): a 50 GiB backup takes about 532 s",
    input: () => {
      const runs = dailyBackups({ ...www, planId: "sizes", runs: 30, noise: 0 });
      let seed = 11;
      const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
      for (const [i, run] of runs.entries()) {
        run.bytesProcessed = (1 + (i % 10)) * GiB;
        run.durationSeconds = Math.round((20 + run.bytesProcessed / (100 * MiB)) * (1 + 0.03 * (2 * random() - 1)) * 10) / 10;
      }
      return { now, plan: { id: "sizes", name: "sizes", rpoSeconds: 86_400 }, jobs: runs, usage: [], destinations: healthy, estimateBytes: 50 * GiB };
    },
    check: (r) => {
      const d = r.duration!;
      expect(d.method).toBe("regression");
      expect(Math.abs(d.seconds - 532)).toBeLessThan(532 * 0.05);
      expect(d.interval![0]).toBeLessThan(532);
      expect(d.interval![1]).toBeGreaterThan(532);
      expect(Math.abs(d.fixedSeconds! - 20)).toBeLessThan(10);
    },
  },
};

/** JSON as the golden files hold it (dates as ISO strings). */
function plain<T>(value: T): unknown {
  return JSON.parse(JSON.stringify(value));
}

describe("analytics golden files", () => {
  for (const [name, c] of Object.entries(cases)) {
    it(`${name}: ${c.description}`, () => {
      const result = analyzePlan(c.input());
      c.check(result);
      const file = path.join(GOLDEN, `${name}.json`);
      if (process.env.CAIRN_UPDATE_GOLDEN === "1") writeFileSync(file, `${JSON.stringify({ description: c.description, output: plain(result) }, null, 2)}\n`);
      expect(existsSync(file), `${file} is missing: run with CAIRN_UPDATE_GOLDEN=1 and read what it wrote`).toBe(true);
      const golden = JSON.parse(readFileSync(file, "utf8")) as { description: string; output: unknown };
      expect(golden.description).toBe(c.description);
      expect(plain(result)).toEqual(golden.output);
    });
  }

  it("gives the same answer twice and whatever order the jobs come in", () => {
    const input = cases.failing.input();
    const reversed = { ...input, jobs: [...input.jobs].reverse(), usage: [...input.usage].reverse() };
    expect(plain(analyzePlan(reversed))).toEqual(plain(analyzePlan(input)));
  });

  it("ignores jobs that finish after `now`", () => {
    const input = cases.steady.input();
    const later = dailyBackups({ ...www, now: new Date(now.getTime() + 30 * DAY), outcomes: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [i, "failure"])) });
    expect(plain(analyzePlan({ ...input, jobs: [...input.jobs, ...later.filter((j) => j.finishedAt > now)] }))).toEqual(plain(analyzePlan(input)));
  });

  it("ranks plans by risk overall and merges their recommendations, most urgent first", () => {
    const plans = ["steady", "failing", "ransomware-like"].map((n) => analyzePlan(cases[n].input()));
    const overall = analyzeOverall(now, [...cases.steady.input().jobs, ...cases.failing.input().jobs], plans);
    expect(overall.risk.map((p) => p.planId)).toEqual(["db", "www", "www"]);
    expect(overall.risk[0].level).toBe("critical");
    expect(overall.recommendations[0]).toMatchObject({ planId: "db", priority: "critical" });
    expect(overall.successRate.runs).toBe(14);
    expect(overall.anomalies).toBe(4);
  });
});

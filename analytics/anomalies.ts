/**
 * Runs that stand out from the plan's own history: 3-sigma outliers on duration,
 * bytes added, file count and compression ratio, and a failure rate over 20%.
 */
import { mean, sampleStandardDeviation } from "simple-statistics";
import { DAY_MS, finishedBy, round } from "./fit.js";
import type { JobRecord } from "./types.js";

export type AnomalyMetric = "durationSeconds" | "bytesAdded" | "files" | "compressionRatio";

export interface MetricAnomaly {
  kind: "metric";
  metric: AnomalyMetric;
  jobId: string;
  at: string;
  value: number;
  /** Mean and standard deviation of the runs before it (outliers left out). */
  mean: number;
  stdDev: number;
  /** Distance from the mean in the deviation actually used (the floor when the history is very steady). */
  sigmas: number;
  direction: "high" | "low";
}

export interface FailureRateAnomaly {
  kind: "failure-rate";
  at: string;
  windowDays: number;
  runs: number;
  failures: number;
  rate: number;
}

export type Anomaly = MetricAnomaly | FailureRateAnomaly;

/**
 * The smallest deviation a metric is measured against: the larger of `absolute`
 * and `relative` times the mean. A steady plan's tiny spread would otherwise turn
 * ordinary jitter (a backup of 2 s taking 3 s) into a "10-sigma" event.
 */
export interface DeviationFloor {
  absolute: number;
  relative: number;
}

export interface AnomalyOptions {
  sigmas: number;
  /** Runs of history a metric needs before any of its values is judged. */
  minSamples: number;
  /** At most this many earlier runs form the baseline. */
  window: number;
  floors: Record<AnomalyMetric, DeviationFloor>;
  failureRateThreshold: number;
  failureRateWindowDays: number;
  /** Finished runs the failure-rate window needs, so one failed run of a new plan is not "100%". */
  failureRateMinRuns: number;
}

export const DEFAULT_ANOMALY_OPTIONS: AnomalyOptions = {
  sigmas: 3,
  minSamples: 10,
  window: 30,
  floors: {
    durationSeconds: { absolute: 30, relative: 0.1 },
    bytesAdded: { absolute: 64 * 2 ** 20, relative: 0.1 },
    files: { absolute: 100, relative: 0.05 },
    compressionRatio: { absolute: 0.1, relative: 0.05 },
  },
  failureRateThreshold: 0.2,
  failureRateWindowDays: 7,
  failureRateMinRuns: 5,
};

const METRICS: AnomalyMetric[] = ["durationSeconds", "bytesAdded", "files", "compressionRatio"];

/**
 * Judges each successful backup's metrics against the runs before it, so a run is
 * compared with what was normal when it happened; a run flagged on a metric stays
 * out of that metric's baseline for later runs.
 */
export function detectAnomalies(jobs: readonly JobRecord[], now: Date, options: Partial<AnomalyOptions> = {}): Anomaly[] {
  const o = { ...DEFAULT_ANOMALY_OPTIONS, ...options, floors: { ...DEFAULT_ANOMALY_OPTIONS.floors, ...options.floors } };
  const backups = finishedBy(jobs, now).filter((j) => j.kind === "backup");
  const found: Anomaly[] = [];
  for (const metric of METRICS) {
    const baseline: number[] = [];
    for (const run of backups) {
      const value = run.outcome === "success" ? run[metric] : undefined;
      if (value === undefined) continue;
      const anomaly = baseline.length >= o.minSamples ? judge(value, baseline.slice(-o.window), o.floors[metric], o.sigmas) : undefined;
      if (anomaly) found.push({ kind: "metric", metric, jobId: run.id, at: run.finishedAt.toISOString(), value, ...anomaly });
      else baseline.push(value);
    }
  }
  const failureRate = judgeFailureRate(backups, now, o);
  if (failureRate) found.push(failureRate);
  return found.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
}

function judge(value: number, baseline: number[], floor: DeviationFloor, sigmas: number): Pick<MetricAnomaly, "mean" | "stdDev" | "sigmas" | "direction"> | undefined {
  const m = mean(baseline);
  const sd = sampleStandardDeviation(baseline);
  const used = Math.max(sd, floor.absolute, floor.relative * Math.abs(m));
  const distance = (value - m) / used;
  if (Math.abs(distance) <= sigmas) return undefined;
  return { mean: round(m, 2), stdDev: round(sd, 2), sigmas: round(Math.abs(distance), 2), direction: distance > 0 ? "high" : "low" };
}

function judgeFailureRate(backups: JobRecord[], now: Date, o: AnomalyOptions): FailureRateAnomaly | undefined {
  const since = now.getTime() - o.failureRateWindowDays * DAY_MS;
  const decided = backups.filter((j) => j.finishedAt.getTime() > since && j.outcome !== "cancelled");
  const failures = decided.filter((j) => j.outcome === "failure").length;
  if (decided.length < o.failureRateMinRuns || failures / decided.length <= o.failureRateThreshold) return undefined;
  return { kind: "failure-rate", at: now.toISOString(), windowDays: o.failureRateWindowDays, runs: decided.length, failures, rate: round(failures / decided.length) };
}

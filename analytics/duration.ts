/** How long a backup of a given size will take, from the plan's past runs. */
import { sum } from "simple-statistics";
import { fitLine, predict, predictionHalfWidth, round } from "./fit.js";
import type { JobRecord } from "./types.js";

export interface DurationEstimate {
  bytes: number;
  seconds: number;
  /** About-95% range; null when the estimate comes from throughput alone. */
  interval: [number, number] | null;
  /** "regression": duration = fixedSeconds + bytes / marginal throughput, when the runs fit a line (R² >= 0.5, positive slope); otherwise bytes / throughput. */
  method: "regression" | "throughput";
  /** All bytes processed over all seconds spent, across the runs used. */
  throughputBytesPerSecond: number;
  /** The regression's intercept: time a run takes whatever its size. */
  fixedSeconds: number | null;
  rSquared: number | null;
  samples: number;
}

/**
 * Regression of duration on bytes processed over successful backups; undefined
 * with fewer than `minSamples` of them.
 */
export function estimateDuration(jobs: readonly JobRecord[], bytes: number, minSamples = 3): DurationEstimate | undefined {
  const runs = jobs.filter((j) => j.kind === "backup" && j.outcome === "success" && j.bytesProcessed !== undefined && j.durationSeconds > 0);
  if (runs.length < minSamples) return undefined;
  const throughput = sum(runs.map((j) => j.bytesProcessed!)) / sum(runs.map((j) => j.durationSeconds));
  const points = runs.map((j): [number, number] => [j.bytesProcessed!, j.durationSeconds]);
  const distinctSizes = new Set(points.map((p) => p[0])).size;
  if (distinctSizes >= 2) {
    const fit = fitLine(points);
    if (fit.slope > 0 && fit.rSquared >= 0.5) {
      const seconds = Math.max(0, predict(fit, bytes));
      const half = predictionHalfWidth(fit, bytes);
      return {
        bytes,
        seconds: round(seconds, 1),
        interval: [round(Math.max(0, seconds - half), 1), round(seconds + half, 1)],
        method: "regression",
        throughputBytesPerSecond: Math.round(throughput),
        fixedSeconds: round(fit.intercept, 1),
        rSquared: round(fit.rSquared),
        samples: runs.length,
      };
    }
  }
  return {
    bytes,
    seconds: round(throughput > 0 ? bytes / throughput : 0, 1),
    interval: null,
    method: "throughput",
    throughputBytesPerSecond: Math.round(throughput),
    fixedSeconds: null,
    rSquared: null,
    samples: runs.length,
  };
}

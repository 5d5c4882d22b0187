/** A straight line through points, and how far a new point may fall from it. */
import { linearRegression, mean } from "simple-statistics";

export const DAY_MS = 86_400_000;

export interface LineFit {
  slope: number;
  intercept: number;
  n: number;
  /** Share of the variance the line explains (1 when the points lie on it). */
  rSquared: number;
  /** Residual standard deviation, with n - 2 degrees of freedom. */
  residualStdDev: number;
  xMean: number;
  /** Sum of squared deviations of x from its mean. */
  sxx: number;
}

/** Least squares over at least two points with two distinct x values. */
export function fitLine(points: [number, number][]): LineFit {
  const { m: slope, b: intercept } = linearRegression(points);
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const xMean = mean(xs);
  const yMean = mean(ys);
  const sxx = xs.reduce((s, x) => s + (x - xMean) ** 2, 0);
  const sst = ys.reduce((s, y) => s + (y - yMean) ** 2, 0);
  const sse = points.reduce((s, [x, y]) => s + (y - (slope * x + intercept)) ** 2, 0);
  const n = points.length;
  return {
    slope,
    intercept,
    n,
    rSquared: sst === 0 ? 1 : Math.max(0, 1 - sse / sst),
    residualStdDev: n > 2 ? Math.sqrt(sse / (n - 2)) : 0,
    xMean,
    sxx,
  };
}

export function predict(fit: LineFit, x: number): number {
  return fit.slope * x + fit.intercept;
}

/**
 * Half the width of an about-95% prediction interval at x (two residual standard
 * errors of a new observation): wide with few points or far from the data.
 */
export function predictionHalfWidth(fit: LineFit, x: number): number {
  if (fit.n < 3 || fit.sxx === 0) return Infinity;
  return 2 * fit.residualStdDev * Math.sqrt(1 + 1 / fit.n + (x - fit.xMean) ** 2 / fit.sxx);
}

/** Rounds for output, so results compare exactly and read easily. */
export function round(x: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Jobs that finished at or before `now`, oldest first. */
export function finishedBy<T extends { finishedAt: Date }>(jobs: readonly T[], now: Date): T[] {
  return jobs.filter((j) => j.finishedAt.getTime() <= now.getTime()).sort((a, b) => a.finishedAt.getTime() - b.finishedAt.getTime());
}

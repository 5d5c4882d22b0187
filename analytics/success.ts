/** How often a plan's backups succeed, and where that is heading. */
import { DAY_MS, finishedBy, fitLine, predict, predictionHalfWidth, round } from "./fit.js";
import type { JobRecord } from "./types.js";

export interface SuccessRate {
  windowDays: number;
  /** Finished runs in the window; cancelled runs count for neither side. */
  runs: number;
  successes: number;
  failures: number;
  /** successes / (successes + failures); null without a finished run. */
  rate: number | null;
}

export type Trend = "improving" | "declining" | "stable" | "unknown";

export interface SuccessForecast {
  horizonDays: number;
  /** Days of the lookback that had at least one finished run: the points of the fit. */
  daysWithRuns: number;
  /** The success rate expected on the day `horizonDays` from now; null with fewer than 3 days of runs. */
  rate: number | null;
  /** About-95% range of that day's rate. */
  interval: [number, number] | null;
  /** Change of the daily success rate over a week, from the fit. */
  changePerWeek: number | null;
  trend: Trend;
  /** 0 to 1: one minus the interval's width, scaled down when fewer than 14 days had runs. */
  confidence: number;
}

const DECIDED = (j: JobRecord) => j.outcome !== "cancelled";

export function successRate(jobs: readonly JobRecord[], now: Date, windowDays = 7): SuccessRate {
  const since = now.getTime() - windowDays * DAY_MS;
  const inWindow = finishedBy(jobs, now).filter((j) => j.finishedAt.getTime() > since);
  const successes = inWindow.filter((j) => j.outcome === "success").length;
  const failures = inWindow.filter((j) => j.outcome === "failure").length;
  return { windowDays, runs: inWindow.length, successes, failures, rate: successes + failures === 0 ? null : round(successes / (successes + failures)) };
}

/**
 * A linear trend through the daily success rates of the last `lookbackDays`,
 * extended `horizonDays` ahead. Days are 24-hour buckets counted back from `now`;
 * a change of less than 2 points a week is "stable".
 */
export function forecastSuccessRate(jobs: readonly JobRecord[], now: Date, options: { lookbackDays?: number; horizonDays?: number } = {}): SuccessForecast {
  const lookbackDays = options.lookbackDays ?? 30;
  const horizonDays = options.horizonDays ?? 7;
  const buckets = new Map<number, { ok: number; all: number }>();
  for (const j of finishedBy(jobs, now).filter(DECIDED)) {
    const daysAgo = Math.floor((now.getTime() - j.finishedAt.getTime()) / DAY_MS);
    if (daysAgo >= lookbackDays) continue;
    const b = buckets.get(daysAgo) ?? { ok: 0, all: 0 };
    b.all++;
    if (j.outcome === "success") b.ok++;
    buckets.set(daysAgo, b);
  }
  // A bucket's x is its middle, in days from now: the last 24 hours sit at -0.5.
  const points = [...buckets].map(([daysAgo, b]): [number, number] => [-daysAgo - 0.5, b.ok / b.all]).sort((a, b) => a[0] - b[0]);
  if (points.length < 3) {
    return { horizonDays, daysWithRuns: points.length, rate: null, interval: null, changePerWeek: null, trend: "unknown", confidence: 0 };
  }
  const fit = fitLine(points);
  const x = horizonDays - 0.5;
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  const half = predictionHalfWidth(fit, x);
  const interval: [number, number] = [round(clamp(predict(fit, x) - half)), round(clamp(predict(fit, x) + half))];
  const changePerWeek = round(fit.slope * 7);
  const trend: Trend = Math.abs(changePerWeek) < 0.02 ? "stable" : changePerWeek > 0 ? "improving" : "declining";
  const confidence = round((1 - Math.min(1, interval[1] - interval[0])) * Math.min(1, points.length / 14), 2);
  return { horizonDays, daysWithRuns: points.length, rate: round(clamp(predict(fit, x))), interval, changePerWeek, trend, confidence };
}

/** How fast a repository grows, and when it reaches its quota. */
import { DAY_MS, fitLine, round } from "./fit.js";
import type { UsageSample } from "./types.js";

export type StorageStatus = "ok" | "warning" | "full";

export interface StorageForecast {
  samples: number;
  /** The latest sample. */
  currentBytes: number;
  measuredAt: string;
  /** Slope of a line through the samples of the lookback. */
  growthBytesPerDay: number;
  rSquared: number;
  horizonDays: number;
  /** currentBytes grown at growthBytesPerDay until `horizonDays` from now. */
  projectedBytes: number;
  quotaBytes: number | null;
  usedFraction: number | null;
  /** "warning" from 80% of the quota, "full" from 100%. */
  status: StorageStatus;
  /** When the quota fills at the current growth; null without a quota or without growth. */
  fillsAt: string | null;
  daysUntilFull: number | null;
}

/** Share of the quota from which a repository is "nearly full". */
export const QUOTA_WARNING = 0.8;

/**
 * A linear fit of usage over the samples of the last `lookbackDays` (at least
 * `minSamples` of them, else undefined), extended from the latest sample.
 */
export function forecastStorage(
  samples: readonly UsageSample[],
  now: Date,
  options: { quotaBytes?: number; lookbackDays?: number; horizonDays?: number; minSamples?: number } = {},
): StorageForecast | undefined {
  const lookbackDays = options.lookbackDays ?? 90;
  const horizonDays = options.horizonDays ?? 30;
  const since = now.getTime() - lookbackDays * DAY_MS;
  const recent = samples.filter((s) => s.at.getTime() <= now.getTime() && s.at.getTime() >= since).sort((a, b) => a.at.getTime() - b.at.getTime());
  if (recent.length < (options.minSamples ?? 3) || recent[0].at.getTime() === recent.at(-1)!.at.getTime()) return undefined;
  const fit = fitLine(recent.map((s): [number, number] => [(s.at.getTime() - now.getTime()) / DAY_MS, s.bytes]));
  const latest = recent.at(-1)!;
  const growth = fit.slope;
  const daysSinceLatest = (now.getTime() - latest.at.getTime()) / DAY_MS;
  const quota = options.quotaBytes ?? null;
  let fillsAt: Date | null = null;
  if (quota !== null) {
    if (latest.bytes >= quota) fillsAt = latest.at;
    else if (growth > 0) fillsAt = new Date(latest.at.getTime() + ((quota - latest.bytes) / growth) * DAY_MS);
  }
  const usedFraction = quota === null ? null : latest.bytes / quota;
  return {
    samples: recent.length,
    currentBytes: latest.bytes,
    measuredAt: latest.at.toISOString(),
    growthBytesPerDay: Math.round(growth),
    rSquared: round(fit.rSquared),
    horizonDays,
    projectedBytes: Math.round(Math.max(0, latest.bytes + growth * (daysSinceLatest + horizonDays))),
    quotaBytes: quota,
    usedFraction: usedFraction === null ? null : round(usedFraction),
    status: usedFraction === null || usedFraction < QUOTA_WARNING ? "ok" : usedFraction < 1 ? "warning" : "full",
    fillsAt: fillsAt?.toISOString() ?? null,
    daysUntilFull: fillsAt === null ? null : round(Math.max(0, (fillsAt.getTime() - now.getTime()) / DAY_MS), 2),
  };
}

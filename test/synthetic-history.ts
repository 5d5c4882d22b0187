/**
 * Synthetic backup histories for the analytics tests: daily runs of one plan with
 * seeded noise, so every run of the tests sees the same numbers.
 */
import type { JobRecord, Outcome, UsageSample } from "../analytics/types.js";

const DAY = 86_400_000;
const MiB = 2 ** 20;

/** mulberry32: a small seeded generator, uniform in [0, 1). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface HistoryShape {
  planId: string;
  /** The last run finishes this long before `now`. */
  now: Date;
  lastRunHoursAgo?: number;
  runs: number;
  seed: number;
  /** Typical values and the relative spread of the uniform noise around them. */
  durationSeconds: number;
  bytesProcessed: number;
  bytesAdded: number;
  files: number;
  compressionRatio: number;
  noise: number;
  /** Run index -> outcome other than success. */
  outcomes?: Record<number, Outcome>;
  /** Run index -> values that replace the generated ones. */
  overrides?: Record<number, Partial<JobRecord>>;
}

/** Backups `runs` days apart ending `lastRunHoursAgo` (10) hours before `now`; ids are `<planId>-<index>`. */
export function dailyBackups(shape: HistoryShape): JobRecord[] {
  const random = seeded(shape.seed);
  const jitter = (v: number) => v * (1 + shape.noise * (2 * random() - 1));
  const last = shape.now.getTime() - (shape.lastRunHoursAgo ?? 10) * 3_600_000;
  const jobs: JobRecord[] = [];
  for (let i = 0; i < shape.runs; i++) {
    const finishedAt = new Date(last - (shape.runs - 1 - i) * DAY);
    const outcome = shape.outcomes?.[i] ?? "success";
    const durationSeconds = Math.round(jitter(shape.durationSeconds) * 10) / 10;
    const base: JobRecord = {
      id: `${shape.planId}-${i}`,
      kind: "backup",
      planId: shape.planId,
      outcome,
      startedAt: new Date(finishedAt.getTime() - durationSeconds * 1000),
      finishedAt,
      durationSeconds,
    };
    const figures: Partial<JobRecord> =
      outcome === "success"
        ? {
            bytesProcessed: Math.round(jitter(shape.bytesProcessed)),
            bytesAdded: Math.round(jitter(shape.bytesAdded)),
            files: Math.round(jitter(shape.files)),
            compressionRatio: Math.round(jitter(shape.compressionRatio) * 1000) / 1000,
            verified: true,
          }
        : { error: "the destination could not be reached" };
    jobs.push({ ...base, ...figures, ...shape.overrides?.[i] });
  }
  return jobs;
}

/** A successful restore test (or verify job) `daysAgo` before `now`. */
export function maintenanceJob(kind: "restore" | "verify", id: string, now: Date, daysAgo: number): JobRecord {
  const finishedAt = new Date(now.getTime() - daysAgo * DAY);
  return { id, kind, planId: null, outcome: "success", startedAt: new Date(finishedAt.getTime() - 60_000), finishedAt, durationSeconds: 60, verified: kind === "verify" ? true : undefined };
}

/** Daily usage samples growing by `perDay` bytes from `start`, the last one at `now`. */
export function linearUsage(now: Date, days: number, start: number, perDay: number): UsageSample[] {
  return Array.from({ length: days }, (_, i) => ({ at: new Date(now.getTime() - (days - 1 - i) * DAY), bytes: start + i * perDay }));
}

export { DAY, MiB };

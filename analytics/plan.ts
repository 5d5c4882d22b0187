/** Everything the analytics say about one plan, and about all of them. */
import { type Anomaly, type AnomalyOptions, detectAnomalies } from "./anomalies.js";
import { type DurationEstimate, estimateDuration } from "./duration.js";
import { recommend, type Recommendation } from "./recommendations.js";
import { assessRisk, type RiskAssessment } from "./risk.js";
import { forecastStorage, type StorageForecast } from "./storage.js";
import { forecastSuccessRate, type SuccessForecast, type SuccessRate, successRate } from "./success.js";
import type { DestinationHealth, JobRecord, UsageSample } from "./types.js";

export interface PlanAnalyticsInput {
  now: Date;
  plan: { id: string; name: string; rpoSeconds: number };
  /** The plan's backups, and the verify and restore jobs on its repository. */
  jobs: readonly JobRecord[];
  /** Usage samples of the plan's repository. */
  usage: readonly UsageSample[];
  quotaBytes?: number;
  destinations: readonly DestinationHealth[];
  /** Data size to estimate a backup's duration for; the last successful backup's size when absent. */
  estimateBytes?: number;
  anomalyOptions?: Partial<AnomalyOptions>;
}

export interface PlanAnalytics {
  planId: string;
  at: string;
  successRate: SuccessRate;
  forecast: SuccessForecast;
  duration: DurationEstimate | null;
  storage: StorageForecast | null;
  anomalies: Anomaly[];
  risk: RiskAssessment;
  recommendations: Recommendation[];
}

export function analyzePlan(input: PlanAnalyticsInput): PlanAnalytics {
  const { now, plan } = input;
  const backups = input.jobs.filter((j) => j.kind === "backup");
  const lastSize = backups.filter((j) => j.outcome === "success" && j.bytesProcessed !== undefined && j.finishedAt <= now).sort((a, b) => a.finishedAt.getTime() - b.finishedAt.getTime()).at(-1)?.bytesProcessed;
  const bytes = input.estimateBytes ?? lastSize;
  const storage = forecastStorage(input.usage, now, { quotaBytes: input.quotaBytes });
  const anomalies = detectAnomalies(backups, now, input.anomalyOptions);
  const forecast = forecastSuccessRate(backups, now);
  const risk = assessRisk({ now, rpoSeconds: plan.rpoSeconds, jobs: input.jobs, destinations: input.destinations, anomalies, storage });
  return {
    planId: plan.id,
    at: now.toISOString(),
    successRate: successRate(backups, now),
    forecast,
    duration: bytes === undefined ? null : (estimateDuration(backups, bytes) ?? null),
    storage: storage ?? null,
    anomalies,
    risk,
    recommendations: recommend({ planName: plan.name, rpoSeconds: plan.rpoSeconds, risk, anomalies, destinations: input.destinations, storage, forecast }),
  };
}

export interface OverallAnalytics {
  at: string;
  plans: number;
  successRate: SuccessRate;
  forecast: SuccessForecast;
  /** Plans by risk, highest first. */
  risk: { planId: string; score: number; level: RiskAssessment["level"] }[];
  anomalies: number;
  /** Every plan's recommendations, most urgent first, each naming its plan. */
  recommendations: (Recommendation & { planId: string })[];
}

/** All plans together: success over every backup, the plans ranked by risk, and the recommendations merged. */
export function analyzeOverall(now: Date, jobs: readonly JobRecord[], plans: readonly PlanAnalytics[]): OverallAnalytics {
  const backups = jobs.filter((j) => j.kind === "backup");
  const order = { critical: 0, high: 1, medium: 2, low: 3 };
  return {
    at: now.toISOString(),
    plans: plans.length,
    successRate: successRate(backups, now),
    forecast: forecastSuccessRate(backups, now),
    risk: plans.map((p) => ({ planId: p.planId, score: p.risk.score, level: p.risk.level })).sort((a, b) => b.score - a.score || (a.planId < b.planId ? -1 : 1)),
    anomalies: plans.reduce((s, p) => s + p.anomalies.length, 0),
    recommendations: plans.flatMap((p) => p.recommendations.map((r) => ({ ...r, planId: p.planId }))).sort((a, b) => order[a.priority] - order[b.priority]),
  };
}

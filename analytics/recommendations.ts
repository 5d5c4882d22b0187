/** What to do about a plan's risk, most urgent first. */
import type { Anomaly, AnomalyMetric } from "./anomalies.js";
import { humanDuration, type RiskAssessment, type RiskFactor } from "./risk.js";
import type { StorageForecast } from "./storage.js";
import type { SuccessForecast } from "./success.js";
import type { DestinationHealth } from "./types.js";

export type RecommendationType = "reliability" | "destination" | "verification" | "restore-test" | "capacity" | "anomaly" | "performance";
export type Priority = "critical" | "high" | "medium" | "low";

export interface Recommendation {
  type: RecommendationType;
  priority: Priority;
  title: string;
  description: string;
  /** What doing it changes, in words: the risk points it takes off, the failure it prevents. */
  impact: string;
}

export interface RecommendationInput {
  planName: string;
  rpoSeconds: number;
  risk: RiskAssessment;
  anomalies: readonly Anomaly[];
  destinations: readonly DestinationHealth[];
  storage?: StorageForecast;
  forecast: SuccessForecast;
}

const ORDER: Record<Priority, number> = { critical: 0, high: 1, medium: 2, low: 3 };

const METRIC_WORDS: Record<AnomalyMetric, string> = {
  durationSeconds: "duration",
  bytesAdded: "bytes added",
  files: "file count",
  compressionRatio: "compression ratio",
};

/** A metric's value for people: sizes in MiB or GiB, durations in minutes or hours. */
function shown(metric: AnomalyMetric, v: number): string {
  if (metric === "bytesAdded") return v >= 2 ** 30 ? `${(v / 2 ** 30).toFixed(1)} GiB` : `${(v / 2 ** 20).toFixed(1)} MiB`;
  if (metric === "durationSeconds") return v < 120 ? `${v.toFixed(1)} s` : humanDuration(v);
  if (metric === "compressionRatio") return v.toFixed(2);
  return `${Math.round(v)}`;
}

function byPoints(f: RiskFactor): Priority {
  return f.points >= 30 ? "critical" : f.points >= 15 ? "high" : f.points >= 8 ? "medium" : "low";
}

function lowers(f: RiskFactor): string {
  return `lowers the risk score by ${f.points} point${f.points === 1 ? "" : "s"}`;
}

export function recommend(input: RecommendationInput): Recommendation[] {
  const out: Recommendation[] = [];
  const plan = input.planName;
  const factor = (kind: RiskFactor["kind"]) => input.risk.factors.find((f) => f.kind === kind && f.points > 0);

  const rpo = factor("rpo");
  if (rpo) {
    out.push({
      type: "reliability",
      priority: byPoints(rpo),
      title: `Get a good backup of ${plan}`,
      description: `${rpo.detail[0].toUpperCase()}${rpo.detail.slice(1)}. Read the last failed job's error, fix its cause, then run the plan now.`,
      impact: `Brings ${plan} back within its RPO of ${humanDuration(input.rpoSeconds)}; ${lowers(rpo)}.`,
    });
  }
  for (const d of input.destinations.filter((x) => !x.healthy)) {
    out.push({
      type: "destination",
      priority: d.primary ? "critical" : "high",
      title: `Repair the destination ${d.name}`,
      description: `${d.name}${d.primary ? ", the plan's repository," : ", a secondary copy,"} does not work${d.detail ? `: ${d.detail}` : ""}. Check its location and credentials.`,
      impact: d.primary ? `Backups of ${plan} can run again.` : `Restores of ${plan} can fail over to ${d.name} again.`,
    });
  }
  const verification = factor("verification");
  if (verification) {
    out.push({
      type: "verification",
      priority: byPoints(verification),
      title: `Verify the backups of ${plan}`,
      description: `${verification.detail[0].toUpperCase()}${verification.detail.slice(1)}. Run a check that reads a subset of the data (cairn check --read-data-subset 10%).`,
      impact: `Finds damaged data while older good backups still exist; ${lowers(verification)}.`,
    });
  }
  for (const a of input.anomalies) {
    if (a.kind === "failure-rate") {
      out.push({
        type: "reliability",
        priority: "high",
        title: `${Math.round(a.rate * 100)}% of the backups of ${plan} failed in ${a.windowDays} days`,
        description: `${a.failures} of ${a.runs} runs failed. Read their errors: a recurring cause (a destination, an unreadable path, a timeout) shows in the job logs.`,
        impact: "Each failed run is a gap in the recovery points.",
      });
    } else {
      out.push({
        type: "anomaly",
        priority: "medium",
        title: `Unusual ${METRIC_WORDS[a.metric]} in job ${a.jobId} of ${plan}`,
        description: `It was ${shown(a.metric, a.value)} against a usual ${shown(a.metric, a.mean)} (± ${shown(a.metric, a.stdDev)}), ${a.sigmas} deviations ${a.direction === "high" ? "above" : "below"}. Check that the source still holds what it should${a.metric === "compressionRatio" ? " (data that stops compressing can be encrypted by ransomware)" : ""}.`,
        impact: "Catches a source that changed by mistake before retention removes the last good backup.",
      });
    }
  }
  const quota = factor("quota");
  if (quota && input.storage) {
    out.push({
      type: "capacity",
      priority: byPoints(quota),
      title: input.storage.status === "full" ? `The repository of ${plan} is full` : `The repository of ${plan} is filling up`,
      description: `${quota.detail[0].toUpperCase()}${quota.detail.slice(1)}. Raise the quota, tighten the retention policy, or prune.`,
      impact: `Backups keep running instead of failing at the quota; ${lowers(quota)}.`,
    });
  }
  const restore = factor("restore-test");
  if (restore) {
    out.push({
      type: "restore-test",
      priority: byPoints(restore),
      title: `Test a restore of ${plan}`,
      description: `${restore.detail[0].toUpperCase()}${restore.detail.slice(1)}. Restore the latest snapshot into a scratch directory with verification (cairn restore latest --target DIR --verify).`,
      impact: `Proves the backups can be brought back, and how long it takes; ${lowers(restore)}.`,
    });
  }
  if (input.forecast.trend === "declining" && input.forecast.rate !== null && input.forecast.confidence >= 0.3) {
    out.push({
      type: "reliability",
      priority: input.forecast.rate < 0.8 ? "high" : "medium",
      title: `The success rate of ${plan} is falling`,
      description: `It drops by ${Math.round(-(input.forecast.changePerWeek ?? 0) * 100)} points a week; in ${input.forecast.horizonDays} days it would be about ${Math.round(input.forecast.rate * 100)}%.`,
      impact: "Acting now keeps the plan from drifting past its RPO.",
    });
  }
  return out.sort((a, b) => ORDER[a.priority] - ORDER[b.priority]);
}

/**
 * How likely a plan is to fail its owner when a restore is needed: a score from
 * 0 (fine) to 100, the sum of named factors, each with the points it adds and why.
 */
import type { Anomaly } from "./anomalies.js";
import { DAY_MS, finishedBy, round } from "./fit.js";
import type { StorageForecast } from "./storage.js";
import type { DestinationHealth, JobRecord } from "./types.js";

export type RiskFactorKind = "rpo" | "destinations" | "verification" | "anomalies" | "restore-test" | "quota";
export type RiskLevel = "low" | "medium" | "high" | "critical";

export interface RiskFactor {
  kind: RiskFactorKind;
  points: number;
  /** The most this factor can add. */
  maxPoints: number;
  detail: string;
}

export interface RiskAssessment {
  score: number;
  level: RiskLevel;
  /** Every factor, in a fixed order, those adding nothing included. */
  factors: RiskFactor[];
}

export interface RiskInput {
  now: Date;
  /** Recovery point objective: the most data, in time, the plan's owner accepts to lose. */
  rpoSeconds: number;
  /** The plan's backups, and the verify and restore jobs on its repository. */
  jobs: readonly JobRecord[];
  destinations: readonly DestinationHealth[];
  anomalies: readonly Anomaly[];
  storage?: StorageForecast;
  /** A restore test older than this counts as none recent. */
  restoreTestMaxAgeDays?: number;
}

const MAX = { rpo: 40, destinations: 30, verification: 15, anomalies: 20, "restore-test": 15, quota: 20 } satisfies Record<RiskFactorKind, number>;
/** Anomalies older than this no longer weigh on the score. */
const ANOMALY_WINDOW_DAYS = 7;

export function assessRisk(input: RiskInput): RiskAssessment {
  const jobs = finishedBy(input.jobs, input.now);
  const factors = [rpo(input, jobs), destinations(input), verification(jobs), anomalies(input), restoreTest(input, jobs), quota(input)];
  const score = Math.min(100, factors.reduce((s, f) => s + f.points, 0));
  const level: RiskLevel = score < 25 ? "low" : score < 50 ? "medium" : score < 75 ? "high" : "critical";
  return { score, level, factors };
}

/** A duration for people: "36 h", "3.5 d", "45 min". */
export function humanDuration(seconds: number): string {
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 2 * 86400) return `${round(seconds / 3600, 1)} h`;
  return `${round(seconds / 86400, 1)} d`;
}

function factor(kind: RiskFactorKind, points: number, detail: string): RiskFactor {
  return { kind, points: Math.round(Math.min(MAX[kind], points)), maxPoints: MAX[kind], detail };
}

/** Nothing while the last good backup is within the RPO; 20 points once past it, up to 40 at twice the RPO or with no good backup at all. */
function rpo(input: RiskInput, jobs: JobRecord[]): RiskFactor {
  const lastGood = jobs.filter((j) => j.kind === "backup" && j.outcome === "success").at(-1);
  const rpoText = humanDuration(input.rpoSeconds);
  if (!lastGood) return factor("rpo", MAX.rpo, `no successful backup yet (RPO ${rpoText})`);
  const age = (input.now.getTime() - lastGood.finishedAt.getTime()) / 1000;
  if (age <= input.rpoSeconds) return factor("rpo", 0, `last good backup ${humanDuration(age)} ago, within the RPO of ${rpoText}`);
  const overdue = Math.min(1, (age - input.rpoSeconds) / input.rpoSeconds);
  return factor("rpo", 20 + 20 * overdue, `last good backup ${humanDuration(age)} ago, past the RPO of ${rpoText}`);
}

/** 25 points for a primary repository that does not work, 10 for each secondary. */
function destinations(input: RiskInput): RiskFactor {
  const failing = input.destinations.filter((d) => !d.healthy);
  if (failing.length === 0) return factor("destinations", 0, `all ${input.destinations.length} destinations work`);
  const points = failing.reduce((s, d) => s + (d.primary ? 25 : 10), 0);
  return factor("destinations", points, `failing: ${failing.map((d) => `${d.name}${d.primary ? " (primary)" : ""}${d.detail ? `: ${d.detail}` : ""}`).join("; ")}`);
}

/** 5 points for each successful backup since the last one that was verified (by its own verify step or a later verify job). */
function verification(jobs: JobRecord[]): RiskFactor {
  let lastVerified = jobs.length - 1;
  while (lastVerified >= 0 && !(jobs[lastVerified].outcome === "success" && jobs[lastVerified].verified === true)) lastVerified--;
  const unverified = jobs.slice(lastVerified + 1).filter((j) => j.kind === "backup" && j.outcome === "success").length;
  if (unverified === 0) return factor("verification", 0, "every successful backup is verified");
  return factor("verification", 5 * unverified, `${unverified} successful backup${unverified === 1 ? "" : "s"} not verified`);
}

/** 5 points for each metric anomaly of the last 7 days, 10 for a failure rate over the threshold. */
function anomalies(input: RiskInput): RiskFactor {
  const since = input.now.getTime() - ANOMALY_WINDOW_DAYS * DAY_MS;
  const recent = input.anomalies.filter((a) => new Date(a.at).getTime() > since);
  if (recent.length === 0) return factor("anomalies", 0, `no anomaly in the last ${ANOMALY_WINDOW_DAYS} days`);
  const points = recent.reduce((s, a) => s + (a.kind === "failure-rate" ? 10 : 5), 0);
  const words = recent.map((a) => (a.kind === "failure-rate" ? `failure rate ${Math.round(a.rate * 100)}% over ${a.windowDays} days` : `${a.metric} ${a.direction} in job ${a.jobId}`));
  return factor("anomalies", points, words.join("; "));
}

/**
 * 15 points when the plan's last recovery drill failed, or without any successful
 * restore or drill; 10 when the last one is older than restoreTestMaxAgeDays (30).
 * A drill that passed says its measured RTO.
 */
function restoreTest(input: RiskInput, jobs: JobRecord[]): RiskFactor {
  const maxAge = input.restoreTestMaxAgeDays ?? 30;
  const lastDrill = jobs.filter((j) => j.kind === "drill" && j.outcome !== "cancelled").at(-1);
  if (lastDrill?.outcome === "failure") return factor("restore-test", 15, `the last recovery drill (${lastDrill.finishedAt.toISOString().slice(0, 10)}) failed: ${lastDrill.error ?? "no reason recorded"}`);
  const last = jobs.filter((j) => (j.kind === "restore" || j.kind === "drill") && j.outcome === "success").at(-1);
  if (!last) return factor("restore-test", 15, "no restore has ever been tested");
  const ageDays = (input.now.getTime() - last.finishedAt.getTime()) / DAY_MS;
  const what = last.kind === "drill" ? `last recovery drill passed${last.rtoSeconds !== undefined ? ` (RTO ${round(last.rtoSeconds, 1)} s)` : ""}` : "last restore test";
  if (ageDays > maxAge) return factor("restore-test", 10, `${what} ${round(ageDays, 1)} days ago (more than ${maxAge})`);
  return factor("restore-test", 0, `${what} ${round(ageDays, 1)} days ago`);
}

/** 20 points for a full repository, 10 from 80%; 15 when it fills within a week at its growth, 5 within a month. */
function quota(input: RiskInput): RiskFactor {
  const s = input.storage;
  if (!s || s.quotaBytes === null || s.usedFraction === null) return factor("quota", 0, "no quota set");
  const used = `${Math.round(s.usedFraction * 100)}% of the quota used`;
  const byUse = s.status === "full" ? 20 : s.status === "warning" ? 10 : 0;
  const bySpeed = s.daysUntilFull === null ? 0 : s.daysUntilFull <= 7 ? 15 : s.daysUntilFull <= 30 ? 5 : 0;
  const when = s.fillsAt && s.status !== "full" ? `, full around ${s.fillsAt.slice(0, 10)}` : "";
  return factor("quota", Math.max(byUse, bySpeed), used + when);
}

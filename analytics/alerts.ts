/**
 * When an alert opens and when it clears: pure decisions over a finished job,
 * the plans' last good backups and the repositories' usage. api/alerts.ts applies
 * them to the catalog (raise = open or count again, resolve = close).
 */
import type { AlertKind, AlertSeverity } from "../workflows/messages.js";
import type { Anomaly, AnomalyMetric } from "./anomalies.js";
import { QUOTA_WARNING } from "./storage.js";

/** An alert to open (or to count again while one with the same dedupe key is not resolved). */
export interface AlertSpec {
  kind: AlertKind;
  severity: AlertSeverity;
  title: string;
  detail: string;
  /** One unresolved alert per key: the condition it stands for. */
  dedupeKey: string;
  planId?: string;
  repositoryId?: string;
}

export interface AlertDecision {
  raise: AlertSpec[];
  /** Conditions that cleared, with the reason in words. */
  resolve: { dedupeKey: string; resolution: string }[];
}

export const alertKeys = {
  backupFailed: (planId: string) => `backup_failed:plan:${planId}`,
  backupOverdue: (planId: string) => `backup_overdue:plan:${planId}`,
  storage: (repositoryId: string) => `storage_nearly_full:repository:${repositoryId}`,
  verificationOfPlan: (planId: string) => `verification_failed:plan:${planId}`,
  verificationOfRepository: (repositoryId: string) => `verification_failed:repository:${repositoryId}`,
  anomaly: (planId: string, what: AnomalyMetric | "failure-rate") => `anomaly:plan:${planId}:${what}`,
  drillFailed: (planId: string) => `drill_failed:plan:${planId}`,
  walArchiveStale: (planId: string) => `wal_archive_stale:plan:${planId}`,
};

/** A finished job as the evaluation needs it (a `jobs` row, its plan's name, the repository a verify job checked). */
export interface FinishedJob {
  id: string;
  kind: string;
  status: "completed" | "failed" | "cancelled" | "running";
  planId?: string | null;
  planName?: string;
  /** The repository a verify job checked. */
  repositoryId?: string;
  error?: string | null;
  /** The names of the steps that failed (a backup whose verify step failed). */
  failedSteps?: string[];
  /** Verify jobs: the errors the check found. */
  verifyErrors?: string[];
}

const METRIC_WORDS: Record<AnomalyMetric, string> = { durationSeconds: "duration", bytesAdded: "bytes added", files: "file count", compressionRatio: "compression ratio" };

/**
 * What a job that just finished opens and clears: a failed backup opens
 * "backup failed" (and "verification failed" when its verify step failed), a
 * successful one clears both and "backup overdue"; a verify or check job opens or clears
 * its repository's "verification failed"; the plan's anomalies after a backup
 * (`anomalies`, as analytics/anomalies.ts finds them with this job included)
 * open those this job shows and clear the metrics it shows normal again.
 */
export function alertsForFinishedJob(job: FinishedJob, anomalies: readonly Anomaly[] = []): AlertDecision {
  const decision: AlertDecision = { raise: [], resolve: [] };
  if (job.status === "cancelled" || job.status === "running") return decision;
  const plan = job.planId ? `plan ${job.planName ?? job.planId}` : undefined;
  if (job.kind === "backup" && job.planId) {
    if (job.status === "failed") {
      const error = job.error ?? "no reason recorded";
      decision.raise.push({
        kind: "backup_failed",
        severity: "critical",
        title: `Backup of ${plan} failed`,
        detail: `job ${job.id} failed: ${error}. See GET /v1/jobs/${job.id}/logs; a later successful backup of the plan resolves this alert.`,
        dedupeKey: alertKeys.backupFailed(job.planId),
        planId: job.planId,
      });
      if (job.failedSteps?.includes("verify")) {
        decision.raise.push({
          kind: "verification_failed",
          severity: "critical",
          title: `The new snapshot of ${plan} failed its verification`,
          detail: `job ${job.id}: ${error}. Check the repository (cairn check --read-data) to see what is damaged.`,
          dedupeKey: alertKeys.verificationOfPlan(job.planId),
          planId: job.planId,
        });
      }
    } else {
      const because = `backup job ${job.id} succeeded`;
      decision.resolve.push(
        { dedupeKey: alertKeys.backupFailed(job.planId), resolution: because },
        { dedupeKey: alertKeys.backupOverdue(job.planId), resolution: because },
        { dedupeKey: alertKeys.verificationOfPlan(job.planId), resolution: `${because}, its snapshot verified` },
      );
    }
    const ownAnomalies = anomalies.filter((a) => a.kind === "metric" && a.jobId === job.id);
    for (const a of ownAnomalies) {
      if (a.kind !== "metric") continue;
      decision.raise.push({
        kind: "anomaly",
        severity: "warning",
        title: `Unusual ${METRIC_WORDS[a.metric]} in a backup of ${plan}`,
        detail: `job ${job.id}: ${METRIC_WORDS[a.metric]} ${a.value} is ${a.sigmas} standard deviations ${a.direction === "high" ? "above" : "below"} the plan's usual ${a.mean}. Check what changed in the source.`,
        dedupeKey: alertKeys.anomaly(job.planId, a.metric),
        planId: job.planId,
      });
    }
    if (job.status === "completed") {
      for (const metric of Object.keys(METRIC_WORDS) as AnomalyMetric[]) {
        if (!ownAnomalies.some((a) => a.kind === "metric" && a.metric === metric)) decision.resolve.push({ dedupeKey: alertKeys.anomaly(job.planId, metric), resolution: `backup job ${job.id} showed a usual ${METRIC_WORDS[metric]}` });
      }
    }
    const rate = anomalies.find((a) => a.kind === "failure-rate");
    if (rate && rate.kind === "failure-rate") {
      decision.raise.push({
        kind: "anomaly",
        severity: "warning",
        title: `Backups of ${plan} fail often`,
        detail: `${rate.failures} of the last ${rate.runs} backups (${Math.round(rate.rate * 100)}%) in ${rate.windowDays} days failed. See GET /v1/jobs?status=failed.`,
        dedupeKey: alertKeys.anomaly(job.planId, "failure-rate"),
        planId: job.planId,
      });
    } else {
      decision.resolve.push({ dedupeKey: alertKeys.anomaly(job.planId, "failure-rate"), resolution: "the plan's failure rate is back under the threshold" });
    }
  }
  if (job.kind === "drill" && job.planId) {
    if (job.status === "failed") {
      decision.raise.push({
        kind: "drill_failed",
        severity: "critical",
        title: `Recovery drill of ${plan} failed`,
        detail: `drill job ${job.id}: ${job.error ?? "no reason recorded"}. The plan's latest backup did not restore or verify: see GET /v1/jobs/${job.id}, fix what it names, and drill again (POST /v1/plans/${job.planId}/drills); a drill that passes resolves this alert.`,
        dedupeKey: alertKeys.drillFailed(job.planId),
        planId: job.planId,
      });
    } else decision.resolve.push({ dedupeKey: alertKeys.drillFailed(job.planId), resolution: `drill job ${job.id} passed` });
  }
  if ((job.kind === "verify" || job.kind === "check") && job.repositoryId) {
    const errors = job.verifyErrors ?? [];
    if (job.status === "failed" || errors.length) {
      const why = job.status === "failed" ? (job.error ?? "no reason recorded") : `${errors.length} error${errors.length === 1 ? "" : "s"}, the first: ${errors[0]}`;
      decision.raise.push({
        kind: "verification_failed",
        severity: "critical",
        title: `Verification of repository ${job.repositoryId} failed`,
        detail: `${job.kind} job ${job.id}: ${why}. See GET /v1/jobs/${job.id}; repair or restore what is damaged, then verify again.`,
        dedupeKey: alertKeys.verificationOfRepository(job.repositoryId),
        repositoryId: job.repositoryId,
      });
    } else {
      decision.resolve.push({ dedupeKey: alertKeys.verificationOfRepository(job.repositoryId), resolution: `${job.kind} job ${job.id} found no error` });
    }
  }
  return decision;
}

/** A plan as the overdue check sees it. */
export interface PlanRpo {
  id: string;
  name: string;
  /** The plan's own RPO; absent: derived from the schedule (defaultRpoMinutes). */
  rpoMinutes?: number | null;
  schedule?: { cron: string } | null;
  paused: boolean;
  createdAt: Date;
  /** When its last successful backup finished. */
  lastSuccessAt?: Date;
}

/**
 * The RPO a plan without one of its own gets: the longest wait between two of
 * its scheduled runs (read from the cron fields, an upper bound) plus a grace of
 * a twelfth of it, at least 30 minutes, for the backup itself to run: a daily
 * plan gets 26 hours, an hourly one 90 minutes. Undefined for a cron it cannot read.
 */
export function defaultRpoMinutes(cron: string): number | undefined {
  const gap = longestGapMinutes(cron.trim());
  return gap === undefined ? undefined : Math.round(gap + Math.max(30, gap / 12));
}

const SHORTHAND_GAPS: Record<string, number> = { "@hourly": 60, "@daily": 1440, "@weekly": 7 * 1440, "@monthly": 31 * 1440, "@yearly": 366 * 1440, "@annually": 366 * 1440 };

function longestGapMinutes(cron: string): number | undefined {
  if (SHORTHAND_GAPS[cron]) return SHORTHAND_GAPS[cron];
  const [minute, hour, dayOfMonth, month, dayOfWeek] = cron.split(/\s+/);
  if (dayOfWeek === undefined) return undefined;
  if (month !== "*") return 366 * 1440;
  if (dayOfMonth !== "*") return 31 * 1440;
  if (dayOfWeek !== "*") return 7 * 1440;
  if (hour !== "*") {
    const hours = expand(hour, 0, 23);
    return hours && hours.length ? cyclicGap(hours, 24) * 60 : undefined;
  }
  const minutes = expand(minute, 0, 59);
  return minutes && minutes.length ? cyclicGap(minutes, 60) : undefined;
}

/** The values a numeric cron field names (*, n, a-b, with /step, lists); undefined for names it does not know. */
function expand(field: string, min: number, max: number): number[] | undefined {
  const values = new Set<number>();
  for (const item of field.split(",")) {
    const m = /^(\*|\d+(?:-\d+)?)(?:\/(\d+))?$/.exec(item);
    if (!m) return undefined;
    const [from, to] = m[1] === "*" ? [min, max] : m[1].split("-").map(Number).concat(m[2] && !m[1].includes("-") ? [max] : []);
    const step = m[2] ? Number(m[2]) : 1;
    for (let v = from; v <= (to ?? from); v += step) values.add(v);
  }
  return [...values].sort((a, b) => a - b);
}

/** The longest distance between consecutive values on a cycle of `period`. */
function cyclicGap(values: number[], period: number): number {
  let gap = values[0] + period - values.at(-1)!;
  for (let i = 1; i < values.length; i++) gap = Math.max(gap, values[i] - values[i - 1]);
  return gap;
}

/** The RPO in force for a plan: its own, or the one its schedule implies; undefined when it has neither (or is paused without its own). */
export function planRpoMinutes(plan: Pick<PlanRpo, "rpoMinutes" | "schedule" | "paused">): number | undefined {
  if (plan.rpoMinutes) return plan.rpoMinutes;
  if (!plan.schedule || plan.paused) return undefined;
  return defaultRpoMinutes(plan.schedule.cron);
}

/**
 * "Backup overdue" for each plan whose last good backup (or, before its first,
 * its creation) is older than its RPO; cleared for the others. A paused plan
 * without an RPO of its own is not expected to run.
 */
export function overdueAlerts(now: Date, plans: readonly PlanRpo[]): AlertDecision {
  const decision: AlertDecision = { raise: [], resolve: [] };
  for (const plan of plans) {
    const rpo = planRpoMinutes(plan);
    const key = alertKeys.backupOverdue(plan.id);
    const since = plan.lastSuccessAt ?? plan.createdAt;
    const ageMinutes = (now.getTime() - since.getTime()) / 60_000;
    if (rpo === undefined || ageMinutes <= rpo) {
      decision.resolve.push({ dedupeKey: key, resolution: rpo === undefined ? "the plan has no schedule or RPO any more" : "a backup within the RPO exists" });
      continue;
    }
    decision.raise.push({
      kind: "backup_overdue",
      severity: "critical",
      title: `Backup of plan ${plan.name} is overdue`,
      detail: `${plan.lastSuccessAt ? `the last successful backup finished at ${plan.lastSuccessAt.toISOString()}` : "the plan has no successful backup yet"}, ${hours(ageMinutes)} ago, past its RPO of ${hours(rpo)}${plan.rpoMinutes ? "" : " (derived from its schedule)"}. Check that workers run and the plan's last jobs (GET /v1/jobs?planId=${plan.id}), or run it now (POST /v1/plans/${plan.id}/run).`,
      dedupeKey: key,
      planId: plan.id,
    });
  }
  return decision;
}

/**
 * "WAL archive stale" for each physical PostgreSQL plan whose newest archived WAL
 * segment is older than its RPO: commits since then would be lost with the server.
 * Cleared once a newer segment is archived (or the plan has no RPO any more).
 */
export function walArchiveAlerts(now: Date, plans: readonly (Pick<PlanRpo, "id" | "name" | "rpoMinutes" | "schedule" | "paused"> & { lastArchivedAt: Date })[]): AlertDecision {
  const decision: AlertDecision = { raise: [], resolve: [] };
  for (const plan of plans) {
    const rpo = planRpoMinutes(plan);
    const key = alertKeys.walArchiveStale(plan.id);
    const ageMinutes = (now.getTime() - plan.lastArchivedAt.getTime()) / 60_000;
    if (rpo === undefined || ageMinutes <= rpo) {
      decision.resolve.push({ dedupeKey: key, resolution: rpo === undefined ? "the plan has no schedule or RPO any more" : `a WAL segment was archived at ${plan.lastArchivedAt.toISOString()}, within the RPO` });
      continue;
    }
    decision.raise.push({
      kind: "wal_archive_stale",
      severity: "critical",
      title: `WAL archive of plan ${plan.name} is stale`,
      detail: `the newest archived WAL segment was archived at ${plan.lastArchivedAt.toISOString()}, ${hours(ageMinutes)} ago, past the plan's RPO of ${hours(rpo)}${plan.rpoMinutes ? "" : " (derived from its schedule)"}. Check the server's archive_command (pg_stat_archiver: failed_count, last_failed_wal) and its log, and that the repository is reachable from the server; archive_timeout bounds the age on a quiet server.`,
      dedupeKey: key,
      planId: plan.id,
    });
  }
  return decision;
}

/** A repository with its quota and its last known size. */
export interface RepositoryQuota {
  id: string;
  name: string;
  quotaBytes?: number | null;
  usedBytes?: number;
  measuredAt?: Date;
  /** When the analytics' forecast says the quota fills, if it has one. */
  fillsAt?: string | null;
}

/** "Storage nearly full" at 80% of the quota (critical from 100%); cleared below, or when the quota is removed. */
export function quotaAlerts(repositories: readonly RepositoryQuota[]): AlertDecision {
  const decision: AlertDecision = { raise: [], resolve: [] };
  for (const repo of repositories) {
    const key = alertKeys.storage(repo.id);
    if (!repo.quotaBytes || repo.usedBytes === undefined || repo.usedBytes / repo.quotaBytes < QUOTA_WARNING) {
      decision.resolve.push({ dedupeKey: key, resolution: repo.quotaBytes ? "usage is below 80% of the quota" : "the repository has no quota any more" });
      continue;
    }
    const share = repo.usedBytes / repo.quotaBytes;
    decision.raise.push({
      kind: "storage_nearly_full",
      severity: share >= 1 ? "critical" : "warning",
      title: `Repository ${repo.name} is ${share >= 1 ? "full" : "nearly full"} (${Math.round(share * 100)}% of its quota)`,
      detail:
        `it holds ${repo.usedBytes} bytes of its ${repo.quotaBytes}-byte quota${repo.measuredAt ? ` (measured ${repo.measuredAt.toISOString()})` : ""}` +
        `${repo.fillsAt && share < 1 ? `; at its current growth it fills at ${repo.fillsAt}` : ""}. ` +
        "Backups that would pass the quota fail before uploading: raise the quota (PATCH /v1/repositories/{id} quotaBytes), tighten the plans' retention, or prune.",
      dedupeKey: key,
      repositoryId: repo.id,
    });
  }
  return decision;
}

function hours(minutes: number): string {
  return minutes < 120 ? `${Math.round(minutes)} min` : `${(minutes / 60).toFixed(1)} h`;
}

/**
 * The analytics' input gathered from the catalog: a plan's finished jobs (its
 * backups, the restores from its repository), its repository's usage after each
 * backup, and its destinations' health as its last runs showed it. The analytics
 * themselves are the pure functions of analytics/.
 */
import { eq, inArray, or } from "drizzle-orm";
import { analyzeOverall, analyzePlan, type OverallAnalytics, type PlanAnalytics } from "../analytics/plan.js";
import { jobRecordFromRow } from "../analytics/records.js";
import type { DestinationHealth, JobRecord, UsageSample } from "../analytics/types.js";
import type { Catalog } from "../db/client.js";
import { jobs, plans, repositories, repositoryUsage, type TokenScope } from "../db/schema.js";
import { planRpoMinutes } from "../analytics/alerts.js";
import { forecastStorage, type StorageForecast } from "../analytics/storage.js";
import type { BackupResult } from "../workflows/messages.js";
import { jobOwner, plansInScope } from "./access.js";

type PlanRow = typeof plans.$inferSelect;
type JobRow = typeof jobs.$inferSelect;

/** The recovery point objective when the request names none: a daily backup, with two hours to finish. */
export const DEFAULT_RPO_SECONDS = 26 * 3600;

export interface AnalyticsOptions {
  now?: Date;
  rpoSeconds?: number;
  /** Data size to estimate a backup's duration for (the last backup's size otherwise). */
  estimateBytes?: number;
}

/** Everything analytics/ says about the plans a token sees, and about each of them. */
/** A repository's quota and when it fills, in GET /v1/analytics. */
export interface QuotaForecast {
  repositoryId: string;
  name: string;
  quotaBytes: number;
  usedBytes: number | null;
  usedFraction: number | null;
  growthBytesPerDay: number | null;
  /** When the quota fills at the current growth (null: not growing, or fewer than 3 usage samples). */
  fillsAt: string | null;
  daysUntilFull: number | null;
}

export async function gatherAnalytics(catalog: Catalog, scope: TokenScope | undefined, options: AnalyticsOptions = {}): Promise<{ overall: OverallAnalytics & { storage: QuotaForecast[] }; plans: PlanAnalytics[] }> {
  const now = options.now ?? new Date();
  const planRows = await catalog.select().from(plans).where(scope ? plansInScope(scope) : undefined);
  const data = await catalogData(catalog, planRows);
  const perPlan = planRows.map((plan) => analyzePlan(planInput(plan, data, now, options)));
  const backups = data.records.filter((r) => r.kind === "backup" && planRows.some((p) => p.id === r.planId));
  // Each repository with a quota: its usage, and the date its quota fills at the current growth.
  const storage = [...data.quotas].map(([repositoryId, quotaBytes]) => {
    const samples = usageOf(data, repositoryId);
    const forecast: StorageForecast | undefined = forecastStorage(samples, now, { quotaBytes });
    const latest = samples.sort((a, b) => a.at.getTime() - b.at.getTime()).at(-1);
    return {
      repositoryId,
      name: data.repositoryNames.get(repositoryId) ?? repositoryId,
      quotaBytes,
      usedBytes: latest?.bytes ?? null,
      usedFraction: latest ? Math.round((latest.bytes / quotaBytes) * 1000) / 1000 : null,
      growthBytesPerDay: forecast?.growthBytesPerDay ?? null,
      fillsAt: forecast?.fillsAt ?? (latest && latest.bytes >= quotaBytes ? latest.at.toISOString() : null),
      daysUntilFull: forecast?.daysUntilFull ?? null,
    };
  });
  return { overall: { ...analyzeOverall(now, backups, perPlan), storage }, plans: perPlan };
}

/** The points the analytics were computed from, for charts: each finished backup, and the repository's size after each. */
export interface PlanSeries {
  backups: { jobId: string; at: string; outcome: JobRecord["outcome"]; durationSeconds: number; bytesAdded: number | null }[];
  usage: { at: string; bytes: number }[];
}

/** Points a series holds at most (the most recent). */
const SERIES_POINTS = 500;

export async function planAnalytics(catalog: Catalog, plan: PlanRow, options: AnalyticsOptions = {}): Promise<PlanAnalytics & { series: PlanSeries }> {
  const now = options.now ?? new Date();
  const input = planInput(plan, await catalogData(catalog, [plan]), now, options);
  const backups = input.jobs
    .filter((j) => j.kind === "backup" && j.planId === plan.id)
    .sort((a, b) => a.finishedAt.getTime() - b.finishedAt.getTime())
    .slice(-SERIES_POINTS)
    .map((j) => ({ jobId: j.id, at: j.finishedAt.toISOString(), outcome: j.outcome, durationSeconds: j.durationSeconds, bytesAdded: j.bytesAdded ?? null }));
  const usage = [...input.usage]
    .sort((a, b) => a.at.getTime() - b.at.getTime())
    .slice(-SERIES_POINTS)
    .map((u) => ({ at: u.at.toISOString(), bytes: u.bytes }));
  return { ...analyzePlan(input), series: { backups, usage } };
}

interface CatalogData {
  rows: JobRow[];
  records: JobRecord[];
  repositoryNames: Map<string, string>;
  /** Plan id -> the repository it backs up into, for every plan writing into the repositories at hand. */
  planRepositories: Map<string, string>;
  /** Repository id -> its quota, for those that have one. */
  quotas: Map<string, number>;
  /** The usage history kept after each backup (repository_usage). */
  usage: { repositoryId: string; at: Date; bytes: number; jobId: string | null }[];
}

async function catalogData(catalog: Catalog, planRows: PlanRow[]): Promise<CatalogData> {
  const repositoryIds = [...new Set(planRows.flatMap((p) => [p.repositoryId, ...p.secondaryRepositoryIds]))];
  const repos = repositoryIds.length ? await catalog.select({ id: repositories.id, name: repositories.name, quotaBytes: repositories.quotaBytes }).from(repositories).where(inArray(repositories.id, repositoryIds)) : [];
  const primaries = [...new Set(planRows.map((p) => p.repositoryId))];
  const usage = primaries.length
    ? await catalog.select({ repositoryId: repositoryUsage.repositoryId, at: repositoryUsage.at, bytes: repositoryUsage.bytes, jobId: repositoryUsage.jobId }).from(repositoryUsage).where(inArray(repositoryUsage.repositoryId, primaries))
    : [];
  // Backups of every plan writing into these repositories (their usage figures), and the restores from them.
  const writers = repositoryIds.length ? await catalog.select({ id: plans.id, repositoryId: plans.repositoryId }).from(plans).where(inArray(plans.repositoryId, repositoryIds)) : [];
  const planIds = writers.map((p) => p.id);
  const rows = (await catalog.select().from(jobs).where(or(eq(jobs.kind, "restore"), inArray(jobs.planId, planIds.length ? planIds : [""])))).filter((row) => (row.planId && planIds.includes(row.planId)) || (row.kind === "restore" && repositoryIds.includes(jobOwner(row.id)?.id ?? "")));
  const records = rows.map(jobRecordFromRow).filter((r): r is JobRecord => r !== undefined);
  return {
    rows,
    records,
    repositoryNames: new Map(repos.map((r) => [r.id, r.name])),
    planRepositories: new Map(writers.map((w) => [w.id, w.repositoryId])),
    quotas: new Map(repos.filter((r) => r.quotaBytes && primaries.includes(r.id)).map((r) => [r.id, r.quotaBytes!])),
    usage,
  };
}

function planInput(plan: PlanRow, data: CatalogData, now: Date, options: AnalyticsOptions) {
  const own = data.rows.filter((row) => row.planId === plan.id).sort((a, b) => (a.finishedAt?.getTime() ?? 0) - (b.finishedAt?.getTime() ?? 0));
  const jobIds = new Set([...own.map((r) => r.id), ...data.rows.filter((r) => r.kind === "restore" && jobOwner(r.id)?.id === plan.repositoryId).map((r) => r.id)]);
  const rpoMinutes = planRpoMinutes(plan);
  const quotaBytes = data.quotas.get(plan.repositoryId);
  return {
    now,
    plan: { id: plan.id, name: plan.name, rpoSeconds: options.rpoSeconds ?? (rpoMinutes ? rpoMinutes * 60 : DEFAULT_RPO_SECONDS) },
    jobs: data.records.filter((r) => jobIds.has(r.id)),
    usage: usageOf(data, plan.repositoryId),
    ...(quotaBytes ? { quotaBytes } : {}),
    destinations: destinations(plan, own, data.repositoryNames),
    estimateBytes: options.estimateBytes,
  };
}

/**
 * The repository's size after each successful backup into it, whichever plan made
 * it: the usage history kept, and the recorded backups it does not have yet.
 */
function usageOf(data: CatalogData, repositoryId: string): UsageSample[] {
  const kept = data.usage.filter((u) => u.repositoryId === repositoryId);
  const seen = new Set(kept.map((u) => u.jobId));
  const recorded = data.rows
    .filter((r) => !seen.has(r.id) && r.kind === "backup" && r.status === "completed" && r.finishedAt && (r.result as BackupResult | null)?.repositoryStats && planRepository(data, r) === repositoryId)
    .map((r) => ({ at: r.finishedAt!, bytes: (r.result as BackupResult).repositoryStats!.packBytes }));
  return [...kept.map((u) => ({ at: u.at, bytes: u.bytes })), ...recorded];
}

/** The repository a backup row wrote into: its plan's, as the catalog says now. */
function planRepository(data: CatalogData, row: JobRow): string | undefined {
  return data.planRepositories.get(row.planId ?? "");
}

/**
 * The plan's destinations as its last finished backup left them: the primary
 * fails when that backup failed; a secondary fails when that backup could not copy to it.
 */
function destinations(plan: PlanRow, own: JobRow[], names: Map<string, string>): DestinationHealth[] {
  const last = own.filter((r) => r.kind === "backup" && r.status !== "cancelled" && r.status !== "running").at(-1);
  const warnings = ((last?.result as BackupResult | null)?.warnings ?? []).join("\n");
  return [
    {
      repositoryId: plan.repositoryId,
      name: names.get(plan.repositoryId) ?? plan.repositoryId,
      primary: true,
      healthy: last?.status !== "failed",
      ...(last?.status === "failed" ? { detail: `the last backup failed: ${last.error ?? "no reason recorded"}` } : {}),
    },
    ...plan.secondaryRepositoryIds.map((id) => {
      const failed = warnings.includes(`secondary repository ${id}:`);
      return { repositoryId: id, name: names.get(id) ?? id, primary: false, healthy: !failed, ...(failed ? { detail: "the last backup could not copy its snapshot to it" } : {}) };
    }),
  ];
}

import { and, eq, gte, inArray, isNull } from "drizzle-orm";
import { apiTokens, jobs, plans, repositories, repositoryFacts } from "../../db/schema.js";
import { type RepositoryFacts, type RestoreResult, type VerifyResult } from "../../workflows/messages.js";
import { jobOwner } from "../access.js";
import type { AppDeps } from "../app.js";
import type { AuditTrail } from "../audit.js";
import { lastDrills, type DrillView } from "../drills.js";
import { readJob } from "../jobs.js";
import { repositoryTarget, type PlanRow, type RepositoryRow } from "../schedules.js";
import { ApiError } from "../errors.js";
import { withTemporal } from "../temporal.js";
import type { AuditVerification } from "../../db/audit-log.js";

/** How old evidence may be before a check fails (CAIRN_COMPLIANCE_*). */
export interface ComplianceThresholds {
  /** A successful restore (not a dry run) or verification of each repository within this many days (30). */
  verificationDays: number;
  /** Each repository's data key made or rotated within this many days (365). */
  keyRotationDays: number;
}

export const DEFAULT_THRESHOLDS: ComplianceThresholds = { verificationDays: 30, keyRotationDays: 365 };

export interface RepositoryEvidence {
  row: RepositoryRow;
  facts?: RepositoryFacts;
  factsReportedAt?: Date;
  /** Why the facts could not be refreshed now (no worker, repository unreachable). */
  factsProblem?: string;
  /** The newest successful restore or verification of it in the window. */
  lastVerification?: { jobId: string; kind: string; finishedAt: Date };
}

/** Everything the checks read: the catalog, what workers report, the audit log's verdict. */
export interface Evidence {
  now: Date;
  thresholds: ComplianceThresholds;
  repositories: RepositoryEvidence[];
  plans: PlanRow[];
  /** The last finished recovery drill of each plan that had one. */
  drills: Map<string, DrillView>;
  adminTokens: { id: string; name: string; expiresAt: Date | null }[];
  /** CAIRN_API_TOKEN is set: an admin token without expiry. */
  environmentAdminToken: boolean;
  audit: AuditVerification;
  secretKeyEpoch: number;
  /** Sealed values the platform key could not open (repository id and field). */
  unopenable: string[];
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Gathers the evidence: asks a worker to describe each repository (the API opens
 * none; facts stored earlier are used when none answers), mirrors recent
 * restores and verifications from Temporal into the catalog, and verifies the audit log.
 */
export async function gatherEvidence(deps: AppDeps, audit: AuditTrail, thresholds: ComplianceThresholds): Promise<Evidence> {
  const now = new Date();
  const repoRows = await deps.catalog.select().from(repositories).orderBy(repositories.createdAt);
  const problems = await describeRepositories(deps, repoRows);
  const stored = new Map((await deps.catalog.select().from(repositoryFacts)).map((f) => [f.repositoryId, f]));
  const verified = await recentVerifications(deps, new Date(now.getTime() - thresholds.verificationDays * DAY_MS));

  const unopenable: string[] = [];
  for (const r of repoRows) {
    for (const [field, sealed] of [["password", r.sealedPassword], ["credentials", r.sealedCredentials]] as const) {
      if (!sealed) continue;
      try {
        deps.secretBox.open(sealed);
      } catch {
        unopenable.push(`${r.id} ${field}`);
      }
    }
  }
  const planRows = await deps.catalog.select().from(plans).orderBy(plans.createdAt);
  return {
    now,
    thresholds,
    repositories: repoRows.map((row) => ({
      row,
      facts: stored.get(row.id)?.facts,
      factsReportedAt: stored.get(row.id)?.reportedAt,
      factsProblem: problems.get(row.id),
      lastVerification: verified.get(row.id),
    })),
    plans: planRows,
    drills: await lastDrills(deps.catalog, planRows.map((p) => p.id)),
    adminTokens: await deps.catalog
      .select({ id: apiTokens.id, name: apiTokens.name, expiresAt: apiTokens.expiresAt })
      .from(apiTokens)
      .where(and(eq(apiTokens.role, "admin"), isNull(apiTokens.revokedAt))),
    environmentAdminToken: Boolean(deps.adminToken),
    audit: await audit.verify(),
    secretKeyEpoch: deps.secretBox.epoch,
    unopenable,
  };
}

/**
 * Asks a worker for each repository's facts, in parallel, and stores them;
 * returns why it could not, per repository, in the words a caller may see (a
 * worker's refusal or ours, never a destination's own answer).
 */
async function describeRepositories(deps: AppDeps, rows: RepositoryRow[]): Promise<Map<string, string>> {
  const problems = new Map<string, string>();
  await Promise.all(
    rows.map(async (repo) => {
      try {
        const answer = await deps.workers.describeRepository({ repository: repositoryTarget(repo) });
        if (!answer.ok) {
          problems.set(repo.id, answer.refusal.message);
          return;
        }
        const facts = answer.value;
        await deps.catalog
          .insert(repositoryFacts)
          .values({ repositoryId: repo.id, facts, reportedAt: new Date() })
          .onConflictDoUpdate({ target: repositoryFacts.repositoryId, set: { facts, reportedAt: new Date() } });
      } catch (err) {
        if (!(err instanceof ApiError)) console.error(`compliance: describing repository ${repo.id} failed:`, err);
        problems.set(repo.id, err instanceof ApiError ? err.message : "the worker failed to describe it; its log says why");
      }
    }),
  );
  return problems;
}

/**
 * The newest successful restore (not a dry run) or verification without errors
 * of each repository since `since`: Temporal's recent ones are mirrored into the
 * catalog first, so the catalog answers even after Temporal forgot them.
 */
async function recentVerifications(deps: AppDeps, since: Date): Promise<Map<string, { jobId: string; kind: string; finishedAt: Date }>> {
  try {
    const listed = await withTemporal(deps.temporal, async () => {
      const ids: string[] = [];
      const query = `CairnKind IN ('restore', 'verify') AND ExecutionStatus = 'Completed' AND CloseTime >= '${since.toISOString()}'`;
      for await (const wf of deps.temporal.workflow.list({ query, pageSize: 100 })) {
        ids.push(wf.workflowId);
        if (ids.length >= 500) break;
      }
      return ids;
    });
    const mirrored = new Set(listed.length ? (await deps.catalog.select({ id: jobs.id }).from(jobs).where(inArray(jobs.id, listed))).map((j) => j.id) : []);
    for (const id of listed.filter((id) => !mirrored.has(id))) await readJob(deps.catalog, deps.temporal, id);
  } catch {
    // Temporal down: the catalog's mirror is the evidence there is.
  }
  const rows = await deps.catalog
    .select()
    .from(jobs)
    .where(and(inArray(jobs.kind, ["restore", "verify"]), eq(jobs.status, "completed"), gte(jobs.finishedAt, since)));
  const newest = new Map<string, { jobId: string; kind: string; finishedAt: Date }>();
  for (const job of rows) {
    if (job.kind === "restore" && (job.result as RestoreResult | null)?.dryRun !== false) continue;
    if (job.kind === "verify" && ((job.result as VerifyResult | null)?.errors.length ?? 1) > 0) continue;
    const repositoryId = job.kind === "restore" ? ((job.result as RestoreResult).servedBy?.repositoryId ?? jobOwner(job.id)?.id) : jobOwner(job.id)?.id;
    if (!repositoryId || !job.finishedAt) continue;
    const seen = newest.get(repositoryId);
    if (!seen || seen.finishedAt < job.finishedAt) newest.set(repositoryId, { jobId: job.id, kind: job.kind, finishedAt: job.finishedAt });
  }
  return newest;
}

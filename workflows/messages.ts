/**
 * The contract between the API, the workflows and the workers: names, inputs,
 * results and queries. Workflow code imports only this file and @temporalio/workflow.
 *
 * Payloads carry references (ids, paths, sealed secrets), never data: Temporal
 * keeps every payload in its history, so they must stay small and hold no secret
 * in clear. Repository passwords travel sealed with the platform secret key
 * (engine/secret-box.ts), which only the API and the workers hold.
 */
import { defineQuery } from "@temporalio/workflow";

/** The task queue every Cairn worker polls. */
export const TASK_QUEUE = "cairn";

/** Custom search attributes (Keyword) set on every workflow, so the API and the Web UI filter alike. */
export const SEARCH_ATTRIBUTES = { plan: "CairnPlan", source: "CairnSource", kind: "CairnKind" } as const;

export type JobKind = "backup" | "restore" | "verify" | "prune";

export type JobPhase =
  | "queued"
  | "prepare"
  | "snapshot"
  | "verify"
  | "retention"
  | "record"
  | "notify"
  | "restore"
  | "check"
  | "prune"
  | "done";

export interface JobProgress {
  filesDone: number;
  bytesDone: number;
  bytesTotal: number;
  bytesPerSecond: number;
  etaSeconds: number | null;
}

/** What the `status` query answers while a job runs and after it ends. */
export interface JobStatus {
  kind: JobKind;
  phase: JobPhase;
  progress: JobProgress;
  snapshotId?: string;
  warnings: string[];
}

export const statusQuery = defineQuery<JobStatus>("status");

/** A repository as activities need it: where it is and its password, sealed. */
export interface RepositoryTarget {
  id: string;
  url: string;
  /** The repository password sealed with the platform secret key (base64). */
  sealedPassword: string;
}

export interface RetentionSpec {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /** A duration such as "30d" or "1y6m". */
  keepWithin?: string;
}

export interface BackupInput {
  planId: string;
  planName: string;
  repository: RepositoryTarget;
  source: { type: "files"; paths: string[]; exclude?: string[] };
  retention?: RetentionSpec;
  /** Packs to read back after the backup, as a share of the new snapshot's packs (0-100). */
  verifySamplePercent?: number;
  tags?: string[];
}

export interface BackupResult {
  snapshotId: string;
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  bytesProcessed: number;
  bytesAdded: number;
  bytesStored: number;
  durationSeconds: number;
  /** Problems that did not fail the job: unreadable files, a skipped step. */
  warnings: string[];
  snapshotsRemoved: number;
}

export interface RestoreInput {
  repository: RepositoryTarget;
  snapshotId: string;
  target: string;
  include?: string[];
  exclude?: string[];
  dryRun?: boolean;
}

export interface RestoreResult {
  files: number;
  bytesWritten: number;
  totalBytes: number;
  dryRun: boolean;
  warnings: string[];
}

export interface VerifyInput {
  repository: RepositoryTarget;
  /** "10%", "1/5", or "all"; omitted means structure only. */
  readData?: string;
}

export interface VerifyResult {
  errors: string[];
  warnings: string[];
  packsRead: number;
}

export interface PruneInput {
  repository: RepositoryTarget;
  maxUnused?: string;
}

export interface PruneResult {
  packsDeleted: number;
  packsRepacked: number;
  bytesFreed: number;
}

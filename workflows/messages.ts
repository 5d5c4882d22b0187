/**
 * The contract between the API, the workflows and the workers: names, inputs,
 * results and queries. Workflow code imports only this file and @temporalio/workflow.
 *
 * Payloads carry references (ids, paths, sealed secrets), never data: Temporal
 * keeps every payload in its history, so they must stay small and hold no secret
 * in clear. Repository passwords travel sealed with the platform secret key
 * (engine/secret-box.ts), which only the API and the workers hold.
 */
import { defineSearchAttributeKey, SearchAttributeType } from "@temporalio/common";
import { defineQuery, defineSignal } from "@temporalio/workflow";

/** The task queue every Cairn worker polls. */
export const TASK_QUEUE = "cairn";

/**
 * Custom search attributes (Keyword) set on every job's workflow, so the API and the Web UI
 * filter alike: its plan (jobs of a plan), source type, kind, repository (the one it works
 * on; a copy's source) and, once it has ended, its outcome (JobOutcome).
 */
export const SEARCH_ATTRIBUTES = { plan: "CairnPlan", source: "CairnSource", kind: "CairnKind", repository: "CairnRepository", outcome: "CairnOutcome" } as const;

/** The same attributes as typed keys, for `typedSearchAttributes` when starting a workflow and inside workflows. */
export const SEARCH_ATTRIBUTE_KEYS = {
  plan: defineSearchAttributeKey(SEARCH_ATTRIBUTES.plan, SearchAttributeType.KEYWORD),
  source: defineSearchAttributeKey(SEARCH_ATTRIBUTES.source, SearchAttributeType.KEYWORD),
  kind: defineSearchAttributeKey(SEARCH_ATTRIBUTES.kind, SearchAttributeType.KEYWORD),
  repository: defineSearchAttributeKey(SEARCH_ATTRIBUTES.repository, SearchAttributeType.KEYWORD),
  outcome: defineSearchAttributeKey(SEARCH_ATTRIBUTES.outcome, SearchAttributeType.KEYWORD),
} as const;

/**
 * How a job ended, as its CairnOutcome says (the API's job statuses): a job that was
 * terminated or timed out has none (its ExecutionStatus says so).
 */
export type JobOutcome = "completed" | "failed" | "cancelled";

/**
 * verify: one snapshot's trees and a sample of its data; check: the whole repository
 * (verifyWorkflow), with a share of its data read back; copy: a snapshot into another repository.
 */
export const JOB_KINDS = ["backup", "restore", "verify", "check", "prune", "copy", "recovery", "drill"] as const;
export type JobKind = (typeof JOB_KINDS)[number];

export type JobPhase =
  | "queued"
  | "prepare"
  | "snapshot"
  | "verify"
  | "replicate"
  | "retention"
  | "record"
  | "notify"
  | "restore"
  | "check"
  | "prune"
  | "copy"
  | "waiting"
  | "validate"
  | "recover"
  | "promote"
  | "discard"
  | "binlogs"
  | "replay"
  | "start"
  | "done";

export interface JobProgress {
  filesDone: number;
  bytesDone: number;
  bytesTotal: number;
  bytesPerSecond: number;
  etaSeconds: number | null;
  /** Set once the worker running the step has received the job's cancellation: the step stops at its next safe point. */
  stopping?: boolean;
}

/** What the `status` query answers while a job runs and after it ends. */
export interface JobStatus {
  kind: JobKind;
  phase: JobPhase;
  progress: JobProgress;
  snapshotId?: string;
  warnings: string[];
  /** While the phase is "waiting": the concurrency slot the job waits for. */
  waitingFor?: string;
}

export const statusQuery = defineQuery<JobStatus>("status");

/**
 * Sent by a running activity to its workflow every few seconds, so `status` answers
 * with progress while a step runs (a workflow cannot read its activities' heartbeats).
 */
export const progressSignal = defineSignal<[JobProgress]>("progress");

/**
 * Failure types no retry can fix. Activities raise them as non-retryable
 * ApplicationFailures; workflows also list them in their retry policies.
 */
export const PERMANENT_FAILURES = {
  wrongPassword: "WrongPasswordError",
  repositoryNotFound: "RepositoryNotFoundError",
  sourceMissing: "SourceMissingError",
  unsupportedRepository: "UnsupportedRepositoryError",
  secretKeyMismatch: "SecretKeyMismatchError",
  invalidRequest: "InvalidRequestError",
  verificationFailed: "VerificationFailedError",
  /** The execution policy refuses a path or a destination (details[0] names the rule). */
  policyRefused: "PolicyRefusedError",
  /** The backup would pass the repository's quota (checked before anything is uploaded). */
  quotaExceeded: "QuotaExceededError",
} as const;

/** Workflow type names, as the API starts them. */
export const WORKFLOW_TYPES = {
  backup: "backupWorkflow",
  restore: "restoreWorkflow",
  verify: "verifySnapshotWorkflow",
  /** verifyWorkflow checks a whole repository (its name predates the snapshot verify). */
  check: "verifyWorkflow",
  prune: "pruneWorkflow",
  copy: "copyWorkflow",
  recovery: "recoveryWorkflow",
  drill: "drillWorkflow",
} as const satisfies Record<JobKind, string>;

/**
 * The details a snapshot activity heartbeats: progress, and the point the next
 * attempt resumes from. Packs written before `packsIndexed` was counted are in
 * the repository's index, so a retried attempt deduplicates them instead of
 * uploading them again.
 */
export interface SnapshotHeartbeat {
  progress: JobProgress;
  resume: {
    /** Attempt that wrote this checkpoint. */
    attempt: number;
    /** Packs this attempt has uploaded and indexed. */
    packsIndexed: number;
    /** Bytes of those packs. */
    bytesIndexed: number;
    /** The file being read when the checkpoint was taken. */
    currentPath?: string;
  };
}

/** A repository as activities need it: where it is, its password and credentials, sealed. */
export interface RepositoryTarget {
  id: string;
  url: string;
  /** The repository password sealed with the platform secret key (base64). */
  sealedPassword: string;
  /** The destination's credentials (environment variables by name, JSON) sealed the same way. */
  sealedCredentials?: string;
  /**
   * The worker may use its own credentials for this repository (its environment,
   * ~/.aws, instance roles, ~/.ssh keys): an admin asked for it when registering it.
   * Otherwise only `sealedCredentials` are used.
   */
  environmentCredentials?: boolean;
  /** Jobs that may work on this repository at once; the others wait for a slot (no limit when absent). */
  maxConcurrentJobs?: number;
}

/**
 * Concurrency slots, on Temporal's mutex pattern: a long-lived slots workflow per
 * limit (one per repository with maxConcurrentJobs, one global for the workers'
 * CAIRN_MAX_JOBS) takes requests by signal-with-start, grants a slot by signalling
 * the job, and takes it back when the job signals that it is done.
 */
export const JOB_SLOTS_WORKFLOW = "jobSlotsWorkflow";

/** The slots workflow's state: also its query's answer and its continue-as-new input. */
export interface JobSlotsState {
  /** Its workflow id: cairn-slots-global, or cairn-slots-repository-<id>. */
  key: string;
  limit: number;
  /** Jobs (workflow ids) holding a slot, and those waiting, first come first served. */
  holders: string[];
  waiting: string[];
}

export const requestSlotSignal = defineSignal<[{ workflowId: string; limit: number }]>("requestSlot");
export const releaseSlotSignal = defineSignal<[string]>("releaseSlot");
/** Sent to a job: it holds a slot of the slots workflow named. */
export const slotGrantedSignal = defineSignal<[string]>("slotGranted");
export const slotsQuery = defineQuery<JobSlotsState>("slots");

export interface SlotRequest {
  scope: "repository" | "global";
  repositoryId?: string;
  /** The repository's limit (scope repository); the global one is the worker's CAIRN_MAX_JOBS. */
  limit?: number;
  /** The job asking. */
  workflowId: string;
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

/** A plan's files: paths on the worker, with exclude patterns. */
export interface FileSource {
  type: "files";
  paths: string[];
  exclude?: string[];
}

/**
 * A plan's PostgreSQL server: logical (pg_dump of each database and the globals)
 * or physical (a base backup, the start of point-in-time recovery). The URL
 * carries no password; the password travels sealed like a repository's.
 */
export interface PostgresSource {
  type: "postgres";
  mode: "logical" | "physical";
  /** postgresql://user@host:port/database, without password. */
  url: string;
  /** The password sealed with the platform secret key (base64); absent when the server needs none. */
  sealedPassword?: string;
  /** Logical only: the databases to dump (default: every database that accepts connections). */
  databases?: string[];
  /** Logical only: pg_dump -t / -T / -n patterns. */
  includeTables?: string[];
  excludeTables?: string[];
  includeSchemas?: string[];
}

/**
 * A plan's MySQL / MariaDB server: logical (mariadb-dump --single-transaction, one
 * entry per table) or physical (mariadb-backup, on the database host). The URL carries
 * no password; the password travels sealed.
 */
export interface MysqlSource {
  type: "mysql";
  mode: "logical" | "physical";
  /** mysql://user@host:port, without password. */
  url: string;
  /** The password sealed with the platform secret key (base64); absent when the server needs none. */
  sealedPassword?: string;
  /** Logical only: the databases to dump (default: every database but the system ones). */
  databases?: string[];
  /** Logical only: only these tables, as TABLE or DATABASE.TABLE. */
  includeTables?: string[];
  /** Physical only: each run also archives the server's closed binary logs (after FLUSH BINARY LOGS), for point-in-time recovery. */
  binlogs?: boolean;
}

export type PlanSourceSpec = FileSource | PostgresSource | MysqlSource;

export interface BackupInput {
  planId: string;
  planName: string;
  repository: RepositoryTarget;
  source: PlanSourceSpec;
  /** Compression for data this plan adds: "zstd[:level]", "gzip[:1-9]", "brotli[:level]", "none"; the repository's default when absent. */
  compression?: string;
  retention?: RetentionSpec;
  /** Packs to read back after the backup, as a share of the new snapshot's packs (0-100). */
  verifySamplePercent?: number;
  tags?: string[];
  /** Where to POST a JSON summary when the backup ends; nothing is sent when absent. */
  notify?: { webhookUrl?: string };
  /** Repositories that get a copy of each new snapshot; one that cannot be reached makes a warning, not a failed backup. */
  secondaries?: RepositoryTarget[];
  /** The plan's retry policy for every step, in place of each step's own; absent keeps the built-in ones. */
  retry?: StepRetry;
  /** Where the outcome is sent (secrets sealed); each channel is one notify step, retried on its own. */
  notifications?: NotificationChannel[];
  /** The repository's quota in bytes: the prepare step fails the backup, before anything is uploaded, when it would pass it. */
  quotaBytes?: number;
}

/** A plan's notification channel as the catalog keeps it and workflows carry it: secrets sealed with the platform secret key. */
export type NotificationChannel =
  | { type: "webhook"; url: string; sealedSecret?: string; on: NotifyOn[] }
  | { type: "slack"; sealedUrl: string; host: string; on: NotifyOn[] }
  | { type: "email"; to: string[]; on: NotifyOn[] };

/**
 * What an alert is about (api/alerts.ts). A channel whose `on` names a kind is sent
 * that kind's alerts when they open and when they resolve.
 */
export const ALERT_KINDS = ["backup_failed", "backup_overdue", "storage_nearly_full", "verification_failed", "anomaly", "drill_failed", "wal_archive_stale"] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];
export type AlertSeverity = "info" | "warning" | "critical";

/** A job outcome (success, failure) or an alert kind. */
export type NotifyOn = "success" | "failure" | AlertKind;

/** What an alert's notification says: its kind, title and detail, never a secret. */
export interface AlertNotificationEvent {
  type: "alert";
  alertId: string;
  kind: AlertKind;
  severity: AlertSeverity;
  /** "opened" when it is raised, "resolved" when its condition cleared. */
  state: "opened" | "resolved";
  title: string;
  detail: string;
  planId?: string;
  repositoryId?: string;
  at: string;
}

/** What a notification says: the job's outcome and figures, never a secret. */
export interface NotificationEvent {
  status: "succeeded" | "failed";
  planId: string;
  planName: string;
  jobId: string;
  at: string;
  snapshotId?: string;
  /** The innermost cause of a failure. */
  error?: string;
  filesTotal?: number;
  bytesAdded?: number;
  durationSeconds?: number;
  warnings?: number;
}

/** How a plan's steps are retried: attempts in all (1 = never retried), the first wait and how it grows. */
export interface StepRetry {
  maxAttempts?: number;
  initialIntervalSeconds?: number;
  backoffCoefficient?: number;
}

export interface ReplicateInput {
  from: RepositoryTarget;
  to: RepositoryTarget;
  /** The new snapshot; every earlier snapshot of the same plan (host) the secondary lacks is copied too. */
  snapshotId: string;
}

/** One snapshot copied to one secondary repository. */
export interface ReplicaRecord {
  repositoryId: string;
  /** The snapshot's id in the secondary (ids differ between repositories). */
  snapshotId: string;
  blobsSent: number;
  /** Pack bytes written to the secondary. */
  bytesSent: number;
  /** Earlier snapshots of the plan the secondary lacked (a copy that failed in an earlier run) and got in this run. */
  caughtUp: number;
}

/** True when a retention spec has at least one rule; an empty one keeps everything, so there is nothing to apply. */
export function hasRetentionRules(spec: RetentionSpec | undefined): spec is RetentionSpec {
  return spec !== undefined && Object.values(spec).some((v) => v !== undefined);
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
  /** Archived WAL files the retention step deleted with the base backups it forgot (physical PostgreSQL plans). */
  walFilesExpired?: number;
  /** Copies of the snapshot in the plan's secondary repositories; a secondary missing here is named in `warnings`. */
  replicas?: ReplicaRecord[];
  /** The repository after the run, for the catalog's record. */
  repositoryStats?: { snapshots: number; packs: number; packBytes: number };
  /** A physical MySQL / MariaDB plan with binlogs: the binary logs this run archived (none new: empty). */
  binlogs?: string[];
}

/** What tells one backup apart in every repository that holds a copy of it (snapshot ids differ between repositories). */
export interface SnapshotIdentity {
  time: string;
  host: string;
  paths: string[];
}

/**
 * What a restore does with what is already in its target: `always` replaces what
 * the snapshot has, `if-changed` rewrites only what differs, `never` adds only what
 * is missing. A target that holds anything needs one of them said explicitly.
 */
export type OverwriteMode = "always" | "if-changed" | "never";

export interface RestoreInput {
  repository: RepositoryTarget;
  /** The snapshot's id in `repository`. */
  snapshotId: string;
  target: string;
  /** Only this directory of the snapshot, its content written straight into `target` (as restic's snapshot:subfolder). */
  path?: string;
  /** Required when the target holds anything; absent for an empty or missing target. */
  overwrite?: OverwriteMode;
  /**
   * Before anything in a non-empty target is replaced, back the target up into the
   * repository serving the restore (default true); the result names that snapshot.
   */
  safetySnapshot?: boolean;
  include?: string[];
  exclude?: string[];
  dryRun?: boolean;
  /**
   * Repositories that hold copies of `repository`'s snapshots, tried in order when
   * `repository` cannot be reached; a copy is found by `snapshot`.
   */
  secondaries?: RepositoryTarget[];
  /** The snapshot's time, host and paths, to find its copy in a secondary; no secondary can serve without it. */
  snapshot?: SnapshotIdentity;
}

export interface RestoreResult {
  files: number;
  bytesWritten: number;
  totalBytes: number;
  dryRun: boolean;
  warnings: string[];
  /** The repository the data came from: a secondary (`failover`) when the requested one could not be reached. */
  servedBy: { repositoryId: string; url: string; failover: boolean };
  /**
   * The target as it was before this restore replaced anything, backed up into the
   * serving repository: restore `snapshotId` with `path` into the same target to undo.
   */
  safetySnapshot?: { repositoryId: string; snapshotId: string; path: string };
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
  /** Forget first: the snapshots of this host (a plan's, `plan-<id>`) the retention does not keep are removed, then prune runs. */
  forget?: { host: string; retention: RetentionSpec };
}

export interface PruneResult {
  packsDeleted: number;
  packsRepacked: number;
  bytesFreed: number;
  /** Snapshots the retention removed (with `forget`). */
  snapshotsRemoved?: number;
  /** Archived WAL files deleted with the base backups the retention removed. */
  walFilesExpired?: number;
  /** Set when a cancellation came after the prune wrote its new index: it finished rather than stop. */
  warnings?: string[];
}

/** Verifies one snapshot: every tree it needs, and a share of the packs holding its data read back. */
export interface VerifySnapshotInput {
  repository: RepositoryTarget;
  /** "latest" or an id prefix. */
  snapshotRef: string;
  /** Packs to read back, as a share of the snapshot's data packs (0-100). */
  samplePercent: number;
}

export interface VerifySnapshotResult extends VerifyResult {
  snapshotId: string;
}

/** Copies one snapshot (and the blobs it needs that the destination lacks) into another repository. */
export interface CopyInput {
  from: RepositoryTarget;
  to: RepositoryTarget;
  /** "latest" or an id prefix, in `from`. */
  snapshotRef: string;
}

export interface CopyResult {
  /** The snapshot's id in `from`, and in `to` (ids differ between repositories). */
  snapshotId: string;
  copiedSnapshotId: string;
  /** False when `to` had the snapshot already: nothing was written. */
  copied: boolean;
  blobsSent: number;
  bytesSent: number;
}

/**
 * Why a worker turned down a request the API made of it: an expected answer, not
 * a failure. The API turns each reason into its HTTP status.
 */
export type RefusalReason =
  | "policy"
  | "wrongPassword"
  | "repositoryMissing"
  | "notRepository"
  | "unusable"
  | "snapshotNotFound"
  | "snapshotAmbiguous"
  | "targetNotEmpty"
  /** The request cannot be done as asked (a table the dump lacks); the message says what to change. */
  | "invalid"
  | "pathNotFound"
  | "wrongFormat";

export interface Refusal {
  reason: RefusalReason;
  /** A sentence for the caller: what is wrong and what to do. Never a server's raw answer. */
  message: string;
  /** The request field it concerns, as the API names it (`target`, `source.paths.0`). */
  field?: string;
}

/** A worker's answer to the API: a value, or a refusal the caller can act on. */
export type Answer<T> = { ok: true; value: T } | { ok: false; refusal: Refusal };

/** Workflow types the API runs and waits for, to have a worker do what the API may not (open a repository, look at a path). */
export const REQUEST_WORKFLOW_TYPES = {
  registerRepository: "registerRepositoryWorkflow",
  listSnapshots: "listSnapshotsWorkflow",
  prepareRestore: "prepareRestoreWorkflow",
  checkSources: "checkSourcesWorkflow",
  describeRepository: "describeRepositoryWorkflow",
  recoveryWindow: "recoveryWindowWorkflow",
  mysqlRecoveryWindow: "mysqlRecoveryWindowWorkflow",
  previewMysqlRestore: "previewMysqlRestoreWorkflow",
  snapshotTree: "snapshotTreeWorkflow",
  snapshotDiff: "snapshotDiffWorkflow",
} as const;

/** The workflow that streams a snapshot's file or folder to the API (not a request: it runs as long as the transfer). */
export const DOWNLOAD_WORKFLOW_TYPE = "downloadSnapshotWorkflow";

export interface SnapshotTreeInput {
  repository: RepositoryTarget;
  /** A snapshot id or unique prefix. */
  snapshotRef: string;
  /** The directory to list, slash-separated ("/" the snapshot's root). */
  path: string;
  /** Entries skipped and returned at most, in name order: an answer stays small whatever the directory holds. */
  offset: number;
  limit: number;
}

/** One entry of a snapshot's directory. */
export interface SnapshotTreeEntry {
  name: string;
  type: string;
  /** Bytes of a file. */
  size?: number;
  /** ISO 8601. */
  mtime: string;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  linktarget?: string;
}

export interface SnapshotTreeListing {
  snapshotId: string;
  path: string;
  entries: SnapshotTreeEntry[];
  /** Entries the directory holds in all. */
  total: number;
  /** True when entries follow the last one given (ask again with a larger offset). */
  truncated: boolean;
}

export interface SnapshotDiffInput {
  repository: RepositoryTarget;
  from: string;
  to: string;
  /** Changes returned at most; the totals count them all. */
  limit: number;
}

export interface SnapshotDiffChange {
  change: "added" | "removed" | "changed" | "metadata";
  path: string;
  type: string;
  size?: number;
  sizeBefore?: number;
}

export interface SnapshotDiff {
  from: string;
  to: string;
  changes: SnapshotDiffChange[];
  totals: { added: number; removed: number; changed: number; metadata: number };
  truncated: boolean;
}

export interface DownloadSnapshotInput {
  repository: RepositoryTarget;
  snapshotRef: string;
  /** The file or directory to send, slash-separated ("/" the whole snapshot). */
  path: string;
  /** raw: a file as itself; tar: an archive. Absent: raw for a file, tar for a directory. */
  format?: "raw" | "tar";
  /** Where the worker sends the bytes: the API's one-time upload address (its secret is in the path). */
  upload: { url: string };
}

/** What the worker sent once the API took it all. */
export interface DownloadResult {
  bytes: number;
}

export interface DescribeRepositoryInput {
  repository: RepositoryTarget;
}

/**
 * What a worker reports of a repository for compliance reports, read from its
 * config and keyring (the API never opens a repository itself).
 */
export interface RepositoryFacts {
  cipher: string;
  /** The retention S3 Object Lock gives its objects; null on storage without it. */
  objectLock: { mode: string; days: number } | null;
  /** The current data-key epoch, and when that key was made (rotation, or creation). */
  keyEpoch: number;
  keyCreatedAt: string;
  createdAt: string;
}

export interface RegisterRepositoryInput {
  repository: RepositoryTarget;
}

export interface RegisterRepositoryResult {
  /** True when the repository was initialised by this request. */
  created: boolean;
}

export interface ListSnapshotsInput {
  repository: RepositoryTarget;
  /** Start after this snapshot in (time, id) order: where the previous page ended. */
  after?: { time: string; id: string };
  /** Snapshots in the page at most: an answer stays small whatever the repository holds. */
  limit: number;
}

/** Snapshots oldest first, in (time, id) order. */
export interface SnapshotPage {
  snapshots: SnapshotListing[];
  /** True when more snapshots follow the last one. */
  more: boolean;
}

/** A snapshot as listings show it. */
export interface SnapshotListing {
  id: string;
  time: string;
  host: string;
  paths: string[];
  tags: string[];
  parent?: string;
  summary?: Record<string, number>;
}

export interface PrepareRestoreInput {
  repository: RepositoryTarget;
  /** Tried in order when `repository` cannot be reached. */
  fallbacks: RepositoryTarget[];
  /** "latest" or an id prefix. */
  snapshotRef: string;
  target: string;
  path?: string;
  overwrite?: OverwriteMode;
}

export interface PreparedRestore {
  /** The snapshot's id in the repository that answered. */
  snapshotId: string;
  snapshot: SnapshotIdentity;
  /** The repository that answered: `repository`, or a fallback when it could not be reached. */
  resolvedIn: string;
  /** True when the target holds anything (an overwrite mode was then given). */
  targetInUse: boolean;
  /** The bytes of the files the snapshot holds, as its backup counted them. */
  totalBytes?: number;
}

export interface CheckSourcesInput {
  paths: string[];
}

/** Where a point-in-time recovery stops: one of these, as the API takes it. */
export type RecoveryTargetSpec = { time: string } | { lsn: string } | { xid: string } | { name: string } | { latest: true };

/** Data directories a recovery writes: absolute, and no character a shell or a configuration file would read specially. */
export const SAFE_DATA_DIR = /^\/[A-Za-z0-9._/-]+$/;

export interface RecoveryInput {
  planId: string;
  planName: string;
  repository: RepositoryTarget;
  /** The plan's server: its user and sealed password sign in to the recovered copy (it has the same roles). */
  source: PostgresSource;
  target: RecoveryTargetSpec;
  /** A new or empty directory under the restore roots, and the loopback port the recovered server listens on. */
  into: { dataDir: string; port: number };
  /** Queries run on the recovered server before it is promoted; one that fails stops the recovery unpromoted. */
  verify?: { sql: string[] };
  /** A recovery drill's throwaway copy: `into.dataDir` lies under the worker's drill directory (CAIRN_DRILL_DIR), not the restore roots. */
  drill?: boolean;
  /** Restore over `into.dataDir`, the stopped data directory of the plan's cluster, writing only what differs from the base backup. */
  delta?: boolean;
}

/** What the validate step chose: the base backup and the WAL to replay. */
export interface RecoveryChoice {
  systemId: string;
  snapshotId: string;
  stopTime: string;
  stopLsn: string;
  segmentsToReplay: number;
  reason: string;
  /** When validation began (ISO), to measure the time until the server accepts connections. */
  startedAt: string;
}

/** Where the recovered server stands once it is paused at the target (or, for latest, promoted). */
export interface RecoveryLanding {
  lsn: string;
  /** The time of the last transaction replayed, when there was one. */
  time?: string;
}

export interface RecoveryResult {
  lsn: string;
  time?: string;
  /** The timeline the server continues on after promotion. */
  timeline: number;
  baseBackup: { snapshotId: string; stopTime: string; stopLsn: string };
  secondsToAcceptingConnections: number;
  dataDir: string;
  port: number;
  /** Each verification query with the first rows it returned. */
  verified: { sql: string; rows: string[] }[];
}

export interface RecoveryWindowInput {
  repository: RepositoryTarget;
  planId: string;
}

export interface RecoveryWindow {
  systemId?: string;
  baseBackups: number;
  earliest?: { time: string; lsn: string; snapshotId: string };
  latest?: { time?: string; lsn: string; timeline: number };
  /** When the newest archived WAL segment (lastArchivedWal) was archived: how fresh the archive is. */
  lastArchivedAt?: string;
  lastArchivedWal?: string;
  /** Each base backup, oldest first, with how far its WAL chain reaches (where it breaks: a gap). */
  backups?: { snapshotId: string; endTime: string; endLsn: string; until: { time: string; lsn: string; timeline: number }; breaksAt?: string }[];
}

/** The workflow type of a logical plan's restore (a job of kind restore). */
export const LOGICAL_RESTORE_WORKFLOW = "logicalRestoreWorkflow";

export interface LogicalRestoreInput {
  planId: string;
  planName: string;
  repository: RepositoryTarget;
  /** The plan's server: the dump is restored into it, with the plan's user and sealed password. */
  source: PostgresSource;
  /** "latest" or an id prefix of one of the plan's dumps. */
  snapshotRef: string;
  database: string;
  /** The database to restore into (default: the dumped one's name). */
  into?: string;
  tables?: string[];
  clean?: boolean;
}

export interface LogicalRestoreJobResult {
  snapshotId: string;
  database: string;
  into: string;
  created: boolean;
  /** Entries of the dump's table of contents restored. */
  items: number;
}

/**
 * A recovery drill of a plan: its latest backup restored into a scratch place
 * on the worker (under CAIRN_DRILL_DIR), verified, timed and thrown away. Files:
 * every file's content re-read and compared with the snapshot's content ids.
 * PostgreSQL physical: the latest base backup and its WAL recovered into a
 * scratch data directory, started on a free loopback port, the check SQL run.
 */
export interface DrillInput {
  planId: string;
  planName: string;
  repository: RepositoryTarget;
  source: PlanSourceSpec;
  /** PostgreSQL: the query that must succeed on the restored server (default SELECT 1). */
  checkSql?: string;
}

/** Where a drill works: a fresh directory under the drill directory, and for a database a free loopback port. */
export interface DrillScratch {
  dir: string;
  port?: number;
}

/** What a drill measured; a drill that failed fails its job with the cause and leaves these in the job's status. */
export interface DrillResult {
  planId: string;
  outcome: "passed";
  snapshotId: string;
  /** When the restore began (ISO). */
  startedAt: string;
  /** From the restore's start to the restored copy verified: the recovery time the plan's owner can expect. */
  rtoSeconds: number;
  /** Files whose content was read back and matched (files plans); files of the data directory written (PostgreSQL). */
  filesVerified: number;
  bytes: number;
  /** PostgreSQL: the check query and its first rows. */
  check?: { sql: string; rows: string[] };
  warnings: string[];
}

/** The failure type of a drill whose backup did not restore or verify: the job fails, no retry. */
export const DRILL_FAILED = "DrillFailedError";

/** Where a MySQL / MariaDB point-in-time recovery stops, as the API takes it: a time, a binary log position (FILE:OFFSET), or the end of the archive. */
export type MysqlRecoveryTargetSpec = { time: string } | { position: string } | { latest: true };

/** The workflow types of a MySQL / MariaDB plan's point-in-time recovery (kind recovery) and of a logical plan's restore (kind restore). */
export const MYSQL_RECOVERY_WORKFLOW = "mysqlRecoveryWorkflow";
export const MYSQL_RESTORE_WORKFLOW = "mysqlRestoreWorkflow";

export interface MysqlRecoveryInput {
  planId: string;
  planName: string;
  repository: RepositoryTarget;
  /** The plan's server: its user and sealed password sign in to the recovered copy (it has the same grants). */
  source: MysqlSource;
  target: MysqlRecoveryTargetSpec;
  /** A new or empty directory under the restore roots, and the loopback port the recovered server listens on. */
  into: { dataDir: string; port: number };
  /** Queries run on the recovered server; one that fails fails the recovery (and stops the server). */
  verify?: { sql: string[] };
}

/** What the validate step chose: the physical backup and the archived binary logs to replay from its position. */
export interface MysqlRecoveryChoice {
  server: string;
  snapshotId: string;
  stopTime: string;
  binlogFile?: string;
  binlogPosition?: number;
  binlogs: string[];
  /** When validation began (ISO), to measure the time until the server accepts connections. */
  startedAt: string;
}

export interface MysqlRecoveryResult {
  server: string;
  backup: { snapshotId: string; stopTime: string; binlogFile?: string; binlogPosition?: number };
  /** The archived binary logs replayed up to the target, in order. */
  binlogsReplayed: string[];
  target: MysqlRecoveryTargetSpec;
  dataDir: string;
  port: number;
  /** The recovered server's process id (also in <dataDir>/cairn-recovered.pid); it runs on after the job. */
  pid: number;
  secondsToAcceptingConnections: number;
  /** Each verification query with the first rows it returned. */
  verified: { sql: string; rows: string[] }[];
}

export interface MysqlRecoveryWindowInput {
  repository: RepositoryTarget;
  planId: string;
}

/** What a physical MySQL / MariaDB plan can recover: from the end of its oldest backup to the end of the archived binary logs after its newest. */
export interface MysqlRecoveryWindow {
  server?: string;
  physicalBackups: number;
  archivedBinlogs: number;
  earliest?: { time: string; snapshotId: string; binlogFile?: string; binlogPosition?: number };
  latest?: { time: string; binlogFile?: string };
  /** A binary log missing from the archive after the newest backup: recovery cannot go past it. */
  missing?: string;
  /** The log the server writes now, as far as the continuous archiver stored it (every event before through). */
  partial?: { binlogFile: string; size: number; through: string };
}

export interface MysqlRestoreInput {
  planId: string;
  planName: string;
  repository: RepositoryTarget;
  /** The plan's server: the dump is restored into it, with the plan's user and sealed password. */
  source: MysqlSource;
  /** "latest" or an id prefix of one of the plan's dumps. */
  snapshotRef: string;
  database: string;
  /** The database to restore into (default: the dumped one's name). */
  into?: string;
  tables?: string[];
  clean?: boolean;
}

export interface MysqlRestoreJobResult {
  snapshotId: string;
  database: string;
  into: string;
  created: boolean;
  tables: string[];
}

/** What a MySQL / MariaDB logical restore would do, read from the dump and the server, nothing changed. */
export interface MysqlRestorePreview {
  snapshotId: string;
  snapshotTime: string;
  database: string;
  into: string;
  /** The tables that would be restored. */
  tables: string[];
  intoExists: boolean;
  /** Restored tables that exist in `into` already. */
  existing: string[];
  /** What would be dropped first (with clean only), as KIND `name`. */
  drops: string[];
  /** Why the restore would be refused; absent when it would run. */
  refusal?: string;
}
/**
 * The workers' register: a long-lived workflow (id cairn-workers) that every worker
 * signals its report to every CAIRN_WORKER_REPORT_INTERVAL_MS, and that keeps the
 * latest report of each in its memo, so the API reads them (GET /v1/workers) with a
 * describe, even when no worker runs to answer a query. Workers need no database.
 */
export const WORKER_REGISTER_WORKFLOW = "workerRegisterWorkflow";
export const WORKER_REGISTER_ID = "cairn-workers";
/** The memo key holding the reports (WorkerReport[]). */
export const WORKER_REPORTS_MEMO = "workers";

/** How a worker hands out activity slots: Temporal's resource-based tuner, or a fixed number. */
export type WorkerSlots = { tuner: "resource-based"; targetCpu: number; targetMemory: number; maxActivities: number } | { tuner: "fixed"; activities: number };

/** What a worker reports of itself and of the machine it runs on. */
export interface WorkerReport {
  /** Its Temporal identity (pid@host unless set). */
  identity: string;
  host: string;
  taskQueue: string;
  /** When it measured (ISO). */
  at: string;
  /** How often it reports, in milliseconds: a report older than three of these is stale. */
  intervalMs: number;
  /** The machine's CPU busy share (0-1) since its previous report. */
  cpu: number;
  memory: { usedBytes: number; totalBytes: number };
  /** The file system of its data directory (CAIRN_DATA_DIR). */
  disk: { path: string; freeBytes: number; totalBytes: number };
  /** Activities it runs now (job steps). */
  activitiesRunning: number;
  slots: WorkerSlots;
}

export const workerReportSignal = defineSignal<[WorkerReport]>("workerReport");
/** Sent by a worker that shuts down: its report is dropped. */
export const workerGoneSignal = defineSignal<[string]>("workerGone");
/** The register's own task queue, polled by a small second worker in each worker process: its tasks never wait among the jobs'. */
export const WORKER_REGISTER_TASK_QUEUE = "cairn-workers";

/** The workflow type of a warm standby (one per plan, workflow id standby-<planId>). */
export const STANDBY_WORKFLOW = "standbyWorkflow";

/** The workflow id of a plan's standby: one per plan. */
export function standbyWorkflowId(planId: string): string {
  return `standby-${planId}`;
}

export interface StandbyInput {
  planId: string;
  planName: string;
  repository: RepositoryTarget;
  /** The plan's primary: its user and sealed password sign in to the standby (same roles) and, when it answers, to the primary for its WAL position and heartbeat. */
  source: PostgresSource;
  /** A new or empty directory under the restore roots; the standby's data directory. */
  dataDir: string;
  /** The loopback port the standby listens on. */
  port: number;
  /** Seconds between two measurements of the replay lag. */
  pollSeconds: number;
  /** Set by the workflow when it continues as new: the standby is restored and runs; its status so far. */
  carried?: StandbyStatus;
}

export type StandbyPhase = "restore" | "start" | "replaying" | "stopping" | "stopped" | "released";

/** What a standby's `status` query answers (and its workflow returns once stopped). */
export interface StandbyStatus {
  planId: string;
  phase: StandbyPhase;
  dataDir: string;
  port: number;
  /** The cluster and base backup the standby was restored from. */
  systemId?: string;
  snapshotId?: string;
  /** The cluster's WAL segment size in bytes. */
  segmentSize?: number;
  /** The standby's last replayed WAL location (pg_last_wal_replay_lsn()). */
  replayLsn?: string;
  /** Where the primary writes now (pg_current_wal_lsn()), when its URL answered the last check. */
  primaryLsn?: string;
  /** The end of the newest WAL segment archived in the repository. */
  archivedLsn?: string;
  /** Bytes of WAL the standby has not replayed: behind the primary when it answered, else behind the archive. */
  lagBytes?: number;
  /** Seconds of commits the standby has not replayed: primary heartbeat minus replayed heartbeat when both are known, else now minus the last replayed commit. */
  lagSeconds?: number;
  /** How lagSeconds was measured. */
  lagSource?: "heartbeat" | "replay-timestamp";
  /** The time of the last replayed commit (pg_last_xact_replay_timestamp()). */
  lastReplayAt?: string;
  lastCheckedAt?: string;
  /** Times the standby's PostgreSQL was found stopped and started again. */
  restarts: number;
  /** What the last check found wrong (a primary that does not answer, a standby still starting); empty when all answered. */
  warnings: string[];
  /** What happened to the standby, newest last (restarts of its PostgreSQL, a discarded directory); the last 10. */
  events: string[];
  /** The failover that released the standby (phase "released"): PostgreSQL was left running for it to promote, and nothing watches it any more. */
  releasedTo?: string;
}

/** One measurement, sent by the watch activity to its workflow. */
export type StandbyReport = Pick<StandbyStatus, "replayLsn" | "primaryLsn" | "archivedLsn" | "lagBytes" | "lagSeconds" | "lagSource" | "lastReplayAt" | "lastCheckedAt"> & {
  /** The server was found stopped and started again before this measurement; why. */
  restarted?: string;
  /** Problems of this measurement (the primary did not answer...). */
  warnings: string[];
};

export const standbyStatusQuery = defineQuery<StandbyStatus>("status");
export const standbyReportSignal = defineSignal<[StandbyReport]>("standbyReport");
/** Stops the standby (PostgreSQL shut down cleanly); its data directory is removed only with discard. */
export const stopStandbySignal = defineSignal<[{ discard: boolean }]>("stopStandby");
/**
 * Sent by a failover before it promotes the standby: the workflow stops watching
 * (no more measurements, no restarts), leaves PostgreSQL running, answers
 * standbyReleased to the failover and ends with phase "released".
 */
export const releaseStandbySignal = defineSignal<[{ failoverId: string }]>("releaseStandby");
/** The standby workflow's answer to releaseStandby: its watch has stopped. */
export const standbyReleasedSignal = defineSignal<[{ standbyWorkflowId: string }]>("standbyReleased");
/** The workflow type of a failover (not a job kind: GET /v1/failovers/{id} follows it). */
export const FAILOVER_WORKFLOW = "failoverWorkflow";

/** The steps of a failover, in order; `status.phase` names the one running. */
export type FailoverStepName = "validate" | "restore" | "archive" | "fence" | "promote" | "verify" | "cutover" | "notify";

/** How a failover switches clients to the new primary. */
export type CutoverSpec =
  /** Rewrites `database`'s entry in PgBouncer's [databases] section to the new host and port, then reloads PgBouncer (admin console RELOAD when adminUrl is given, else SIGHUP to the pid in its pidfile). */
  | { type: "pgbouncer"; configFile: string; database: string; adminUrl?: string }
  /** Runs an operator's program (allowed by the policy's hookCommands) with NEW_HOST and NEW_PORT set; exit 0 = switched. */
  | { type: "hook"; command: string[] };

/** How the old primary is fenced: stopped through its data directory on the worker's host, or by the operator's hook (exit 0 = fenced). */
export interface FenceSpec {
  dataDir?: string;
  /** Shutdown mode when the data directory is given: fast (default) or immediate. */
  mode?: "fast" | "immediate";
  hook?: string[];
}

export interface FailoverInput {
  planId: string;
  planName: string;
  repository: RepositoryTarget;
  /** The plan's server: the old primary (its URL, user and sealed password also sign in to the standby). */
  source: PostgresSource;
  /** A warm standby on the worker's host, running in recovery. */
  standby?: { dataDir: string; port: number };
  /** No standby: restore the plan's latest consistent state into this new directory (under the restore roots) and promote that. */
  into?: { dataDir: string; port: number };
  fence: FenceSpec;
  cutover?: CutoverSpec;
  reason: string;
  /** Refuse (unless force) when the standby is further behind than this. */
  rpoLimit?: { bytes?: number; seconds?: number };
  force?: boolean;
  /** The operator's queries, run on the new primary after the scratch write; one that fails stops the failover before the cut-over. */
  checkSql?: string[];
  /** Validate only, and report what each step would do; nothing changes. */
  dryRun?: boolean;
  /** The plan's standby workflow running the standby (standby-<planId>): released (it stops watching) before the promotion. */
  standbyWorkflowId?: string;
  /** The plan's notification channels: each hears the failover's outcome (completed or failed), whatever its `on`. */
  notifications?: NotificationChannel[];
}

/** What a failover's notification says: outcome, RTO and RPO, the new primary, never a secret. */
export interface FailoverNotificationEvent {
  type: "failover";
  status: "succeeded" | "failed";
  failoverId: string;
  planId: string;
  planName: string;
  reason: string;
  at: string;
  rtoMs?: number | null;
  rtoPath?: "cutover" | "direct";
  rpo?: { bytes: number | null; seconds: number | null; basis: string };
  newPrimary?: { host: string; port: number } | null;
  /** The step that failed and why. */
  error?: string;
  steps: { name: FailoverStepName; outcome: string }[];
  warnings?: string[];
}

/** The old primary as validation found it. */
export interface OldPrimaryState {
  answers: boolean;
  /** Its current WAL position when it answered. */
  lsn?: string;
  systemId?: string;
}

export interface FailoverValidation {
  startedAt: string;
  oldPrimary: OldPrimaryState;
  /** The standby's replay position and how far behind it is (bytes against the old primary, or against the archive when the primary does not answer). */
  standby?: { replayLsn: string; lagBytes: number; lagSeconds: number | null; lagAgainst: "primary" | "archive" };
  systemId: string;
  /** What each step would do, in order (the dry run's answer). */
  plan: { name: FailoverStepName; action: string }[];
}

export interface FailoverStep {
  name: FailoverStepName;
  startedAt: string;
  ms: number;
  outcome: string;
}

export interface FailoverResult {
  dryRun: boolean;
  /** From the failover's start to the new primary accepting a write through the cut-over path (or directly, with no cut-over). */
  rtoMs: number | null;
  rtoPath?: "cutover" | "direct";
  /** What the old primary had committed that the new one lacks. */
  rpo: { bytes: number | null; seconds: number | null; basis: string };
  steps: FailoverStep[];
  newPrimary: { host: string; port: number } | null;
  validation: FailoverValidation;
  warnings: string[];
}

export interface FailoverStatus {
  phase: FailoverStepName | "done" | "failed";
  steps: FailoverStep[];
  dryRun: boolean;
}

export const failoverStatusQuery = defineQuery<FailoverStatus>("failoverStatus");

/** The failure type of a failover stopped on purpose (lag too large, fencing unconfirmed, cut-over failed): no retry, the message says what to do. */
export const FAILOVER_REFUSED = "FailoverRefusedError";

/** The workflow type of a physical MySQL / MariaDB plan's continuous binary log archiver (one per plan, workflow id binlog-archiver-<planId>). */
export const BINLOG_ARCHIVER_WORKFLOW = "binlogArchiverWorkflow";

/** The workflow id of a plan's continuous binary log archiver: one per plan. */
export function binlogArchiverWorkflowId(planId: string): string {
  return `binlog-archiver-${planId}`;
}

export interface BinlogArchiverInput {
  planId: string;
  planName: string;
  repository: RepositoryTarget;
  /** The plan's server, its user and sealed password: mariadb-binlog signs in as that user (REPLICATION SLAVE, BINLOG MONITOR). */
  source: MysqlSource;
  /** The worker's directory mariadb-binlog writes into, under the restore roots. */
  spoolDir: string;
  /** Seconds between two stores of the log the server writes. */
  intervalSeconds: number;
  /** The server id mariadb-binlog connects as (unique among the server's replicas). */
  replicaId: number;
  /** Set by the workflow when it continues as new: its status so far. */
  carried?: BinlogArchiverStatus;
}

export type BinlogArchiverPhase = "starting" | "streaming" | "reconnecting" | "stopping" | "stopped";

/** What a binary log archiver's `status` query answers (and its workflow returns once stopped). */
export interface BinlogArchiverStatus {
  planId: string;
  phase: BinlogArchiverPhase;
  spoolDir: string;
  intervalSeconds: number;
  /** The server as it names itself (host:port). */
  server?: string;
  /** Where the server wrote at the last look (SHOW MASTER STATUS). */
  serverFile?: string;
  serverPosition?: number;
  /** The end of what the repository holds: the last log archived whole, or the stored part of the current one. */
  archivedFile?: string;
  archivedPosition?: number;
  /** Every event the server wrote before this time is in the repository (the recovery point). */
  archivedThrough?: string;
  /** Bytes of the current log the server wrote that the repository does not hold yet. */
  lagBytes?: number;
  /** Seconds since archivedThrough when the server wrote more since; 0 when everything is archived. */
  lagSeconds?: number;
  lastCheckedAt?: string;
  /** Logs archived whole since the archiver started. */
  logsArchived: number;
  /** Times mariadb-binlog stopped (a server restart, a lost connection) and was started again. */
  reconnects: number;
  /** What happened, newest last (reconnects, failed looks); the last 10. */
  events: string[];
}

/** One look of the archiver at the server and its spool (binlog-stream.ts BinlogStreamReport), or what went wrong. */
export type BinlogArchiverReport =
  | (Pick<BinlogArchiverStatus, "server" | "serverFile" | "serverPosition" | "archivedFile" | "archivedPosition" | "archivedThrough" | "lagBytes" | "lagSeconds" | "lastCheckedAt"> & { streaming: boolean; closed: string[] })
  | { error: string; at: string; reconnect: boolean };

export const binlogArchiverStatusQuery = defineQuery<BinlogArchiverStatus>("status");
export const binlogArchiverReportSignal = defineSignal<[BinlogArchiverReport]>("binlogArchiverReport");
/** Stops the archiver: a last store of what was streamed, then mariadb-binlog is stopped. */
export const stopBinlogArchiverSignal = defineSignal<[]>("stopBinlogArchiver");

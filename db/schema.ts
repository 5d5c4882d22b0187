/**
 * The catalog: what the platform knows besides the repositories themselves.
 * Repository passwords are stored sealed (engine/secret-box.ts), API tokens as
 * sha256 hashes, so a copy of the catalog opens nothing on its own.
 */
import { sql } from "drizzle-orm";
import { bigint, bigserial, boolean, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";
import type { AlertKind, AlertSeverity, JobKind, JobPhase, JobProgress, NotificationChannel, PlanSourceSpec, RepositoryFacts, RetentionSpec } from "../workflows/messages.js";

/** Where a plan's source comes from: files, or a PostgreSQL server (its password sealed). */
export type PlanSource = PlanSourceSpec;

/** When a plan runs: a cron expression read in an IANA time zone. */
export interface PlanSchedule {
  cron: string;
  timezone: string;
  /** What a run that comes due while the last one is still going does (Temporal's overlap policy); "skip" when absent. */
  overlap?: ScheduleOverlap;
  /** Times of the week in which no run starts (api/blackouts.ts), in `timezone`. */
  blackouts?: { days?: ("sun" | "mon" | "tue" | "wed" | "thu" | "fri" | "sat")[]; from: string; to: string }[];
}

export type ScheduleOverlap = "skip" | "buffer_one" | "buffer_all" | "cancel_other" | "terminate_other" | "allow_all";

/** How a plan's jobs are queued and retried (api/queue.ts): Temporal task priority, the steps' retry policy, a timeout for the whole job. */
export interface PlanQueue {
  priority: "high" | "normal" | "low";
  maxAttempts?: number;
  initialIntervalSeconds?: number;
  backoffCoefficient?: number;
  /** The job fails (timed out) when it has not finished this many minutes after it started. */
  timeoutMinutes?: number;
}

/** A plan's recovery drills: when they run (a cron expression in a time zone; none for drills run by hand) and, for a database, the query the restored copy must answer. */
export interface PlanDrill {
  cron?: string;
  timezone: string;
  checkSql?: string;
}

export type JobStatusName = "running" | "completed" | "failed" | "cancelled";

export const repositories = pgTable("repositories", {
  id: text("id").primaryKey(),
  name: text("name").notNull().unique(),
  url: text("url").notNull().unique(),
  /** The repository password sealed with the platform secret key (base64). */
  sealedPassword: text("sealed_password").notNull(),
  /** The destination's credentials (environment variables by name) as one JSON object sealed like the password; null when none were given. */
  sealedCredentials: text("sealed_credentials"),
  /** Workers may use their own credentials (environment, ~/.aws, instance roles, ~/.ssh keys) for it: an admin registered it so. */
  environmentCredentials: boolean("environment_credentials").notNull().default(false),
  /** The most the repository's packs may take; a backup that would pass it fails before uploading, 80% of it raises an alert. Null: no quota. */
  quotaBytes: bigint("quota_bytes", { mode: "number" }),
  /** Jobs that may work on the repository at once (backups, restores, checks, prunes, copies); null: no limit of its own. */
  maxConcurrentJobs: integer("max_concurrent_jobs"),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});

export const plans = pgTable("plans", {
  id: text("id").primaryKey(),
  name: text("name").notNull().unique(),
  repositoryId: text("repository_id")
    .notNull()
    .references(() => repositories.id, { onDelete: "restrict" }),
  source: jsonb("source").$type<PlanSource>().notNull(),
  schedule: jsonb("schedule").$type<PlanSchedule>(),
  retention: jsonb("retention").$type<RetentionSpec>(),
  verifySamplePercent: integer("verify_sample_percent"),
  /** Repositories that get a copy of each new snapshot (ids of rows in `repositories`). */
  secondaryRepositoryIds: jsonb("secondary_repository_ids").$type<string[]>().notNull().default([]),
  /** Priority, retries and timeout of the plan's jobs; null is normal priority with each step's own retries. */
  queue: jsonb("queue").$type<PlanQueue>(),
  /** Where the plan's outcomes are sent; secrets (webhook signing secrets, Slack URLs) sealed with the platform secret key. */
  notifications: jsonb("notifications").$type<NotificationChannel[]>(),
  /** Recovery drills of the plan (api/drills.ts); null when none is scheduled or set up. */
  drill: jsonb("drill").$type<PlanDrill>(),
  /** Mirrors the Temporal Schedule's paused state, so listing plans needs no Temporal call. */
  paused: boolean("paused").notNull().default(false),
  /** The recovery point objective: a "backup overdue" alert when the last good backup is older. Null: derived from the schedule (api/alerts.ts). */
  rpoMinutes: integer("rpo_minutes"),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

/** The plans and repositories a token is limited to; a token without a scope reaches all of them. */
export interface TokenScope {
  planIds?: string[];
  repositoryIds?: string[];
}

export const apiTokens = pgTable("api_tokens", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  /** sha256 of the token, hex. */
  tokenHash: text("token_hash").notNull().unique(),
  /** viewer, operator, admin or auditor (api/permissions.ts). */
  role: text("role").notNull(),
  scope: jsonb("scope").$type<TokenScope>(),
  /** Past this time the token is refused; null never expires. */
  expiresAt: timestamp("expires_at", { withTimezone: true }),
  /** Updated at most once a minute per token. */
  lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
  /** Set by DELETE /v1/tokens/{id}: the token is refused from then on; the row stays so refusals can name it. */
  revokedAt: timestamp("revoked_at", { withTimezone: true }),
  /** The id of the token that created this one (null for the first-start admin token). */
  createdBy: text("created_by"),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});

/** Lockouts and unusual use of a token, for GET /v1/security/events. */
export const securityEvents = pgTable(
  "security_events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    time: timestamp("time", { withTimezone: true }).notNull().defaultNow(),
    /** auth-lockout, restore-volume, download-volume, read-volume. */
    kind: text("kind").notNull(),
    source: text("source").notNull(),
    tokenId: text("token_id"),
    tokenName: text("token_name"),
    /** Whether the request that raised it was refused (blocked by policy) or only reported. */
    blocked: boolean("blocked").notNull().default(false),
    details: jsonb("details").$type<Record<string, unknown>>().notNull(),
  },
  (t) => [index("security_events_time_idx").on(t.time)],
);

/** One step of a finished job, read from its Temporal history (api/history.ts). */
export interface JobStepRecord {
  /** prepare, snapshot, verify, replicate, retention, record, notify, restore, check, prune (or the activity's name). */
  name: string;
  startedAt: string;
  finishedAt: string;
  /** From the step's scheduling to its end: waiting for a worker and every retry included. */
  durationSeconds: number;
  /** Attempts the step took (1 when it succeeded first time). */
  attempts: number;
  outcome: "completed" | "failed" | "timed-out" | "cancelled";
  error?: string;
}

/** A line of a job's log, made from its Temporal history when it finished. */
export interface JobLogLine {
  time: string;
  level: "info" | "warn" | "error";
  message: string;
}

/** Finished jobs, recorded by the API's job recorder as soon as Temporal shows them closed, so history outlives Temporal's retention. */
export const jobs = pgTable("jobs", {
  /** The Temporal workflow id. */
  id: text("id").primaryKey(),
  runId: text("run_id").notNull(),
  kind: text("kind").$type<JobKind>().notNull(),
  planId: text("plan_id"),
  status: text("status").$type<JobStatusName>().notNull(),
  phase: text("phase").$type<JobPhase>().notNull(),
  progress: jsonb("progress").$type<JobProgress>().notNull(),
  snapshotId: text("snapshot_id"),
  error: text("error"),
  /** The workflow's result (BackupResult, RestoreResult, ...) when it completed. */
  result: jsonb("result"),
  startedAt: timestamp("started_at", { withTimezone: true }).notNull(),
  finishedAt: timestamp("finished_at", { withTimezone: true }),
  /** Per-step timings and attempts; null for jobs recorded before they were kept. */
  steps: jsonb("steps").$type<JobStepRecord[]>(),
  log: jsonb("log").$type<JobLogLine[]>(),
  /** The most attempts any step took: 1 when nothing was retried. */
  attempts: integer("attempts"),
  /** When the alert evaluation (api/alerts.ts) looked at the finished job; null until it has. */
  alertsEvaluatedAt: timestamp("alerts_evaluated_at", { withTimezone: true }),
});

/**
 * The audit log: append-only (a trigger refuses UPDATE, DELETE and TRUNCATE), each
 * event chained to the one before by `hash = SHA-256(canonical(event) || previous hash)`
 * (api/audit-chain.ts). Signed checkpoints of the chain head are kept outside the
 * catalog, so rewriting or truncating the table is detected.
 */
export const auditEvents = pgTable(
  "audit_events",
  {
    seq: bigint("seq", { mode: "number" }).primaryKey(),
    time: timestamp("time", { withTimezone: true }).notNull(),
    actorId: text("actor_id"),
    actorName: text("actor_name"),
    role: text("role"),
    /** The route's operation id (createPlan, runPlan, ...) or an event of the platform (auth.lockout). */
    action: text("action").notNull(),
    /** What it acted on, such as plans/3f9a1c2b7d4e5f60. */
    resource: text("resource").notNull(),
    /** attempted, succeeded, failed, denied. */
    outcome: text("outcome").notNull(),
    source: text("source").notNull(),
    requestId: text("request_id"),
    /** Method, status, the validated input with secrets redacted. */
    details: jsonb("details").$type<Record<string, unknown>>().notNull(),
    /** hex SHA-256 over the canonical event and the previous event's hash. */
    hash: text("hash").notNull(),
  },
  (t) => [index("audit_events_time_idx").on(t.time)],
);

/** Ed25519 keys that sign audit checkpoints; the private key sealed with the platform secret key. */
export const auditSigningKeys = pgTable("audit_signing_keys", {
  /** First 16 hex characters of the SHA-256 of the public key. */
  id: text("id").primaryKey(),
  /** The raw 32-byte public key, base64. */
  publicKey: text("public_key").notNull(),
  sealedPrivateKey: text("sealed_private_key").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});

/** What a worker last reported of each repository (workflows/messages.ts RepositoryFacts), for compliance reports. */
export const repositoryFacts = pgTable("repository_facts", {
  repositoryId: text("repository_id")
    .primaryKey()
    .references(() => repositories.id, { onDelete: "cascade" }),
  facts: jsonb("facts").$type<RepositoryFacts>().notNull(),
  reportedAt: timestamp("reported_at", { withTimezone: true }).notNull(),
});

/** A repository's size (its packs' bytes) at one moment, kept after every backup into it for quota alerts and the storage forecast. */
export const repositoryUsage = pgTable(
  "repository_usage",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    repositoryId: text("repository_id")
      .notNull()
      .references(() => repositories.id, { onDelete: "cascade" }),
    at: timestamp("at", { withTimezone: true }).notNull(),
    bytes: bigint("bytes", { mode: "number" }).notNull(),
    snapshots: integer("snapshots"),
    /** The job that reported it. */
    jobId: text("job_id"),
  },
  (t) => [index("repository_usage_repository_at_idx").on(t.repositoryId, t.at)],
);

export type { AlertKind, AlertSeverity };
export type AlertState = "open" | "acknowledged" | "resolved";

/**
 * Conditions that need someone: at most one alert per dedupe key is not resolved
 * (a unique partial index), so a condition seen again counts an occurrence
 * instead of opening a second alert. Resolved when the condition clears.
 */
export const alerts = pgTable(
  "alerts",
  {
    id: text("id").primaryKey(),
    kind: text("kind").$type<AlertKind>().notNull(),
    severity: text("severity").$type<AlertSeverity>().notNull(),
    state: text("state").$type<AlertState>().notNull().default("open"),
    planId: text("plan_id"),
    repositoryId: text("repository_id"),
    title: text("title").notNull(),
    detail: text("detail").notNull(),
    dedupeKey: text("dedupe_key").notNull(),
    occurrences: integer("occurrences").notNull().default(1),
    openedAt: timestamp("opened_at", { withTimezone: true }).notNull(),
    lastSeenAt: timestamp("last_seen_at", { withTimezone: true }).notNull(),
    acknowledgedAt: timestamp("acknowledged_at", { withTimezone: true }),
    /** The token that acknowledged it (id and name). */
    acknowledgedBy: text("acknowledged_by"),
    resolvedAt: timestamp("resolved_at", { withTimezone: true }),
    /** Why it was resolved, in words. */
    resolution: text("resolution"),
    /** When its opening was handed to the notification workflows; null while that is still to do. */
    notifiedAt: timestamp("notified_at", { withTimezone: true }),
    /** When its resolution was handed to them. */
    resolvedNotifiedAt: timestamp("resolved_notified_at", { withTimezone: true }),
  },
  (t) => [uniqueIndex("alerts_dedupe_key_unresolved_idx").on(t.dedupeKey).where(sql`state <> 'resolved'`), index("alerts_state_idx").on(t.state, t.openedAt)],
);

/**
 * The catalog: what the platform knows besides the repositories themselves.
 * Repository passwords are stored sealed (engine/secret-box.ts), API tokens as
 * sha256 hashes, so a copy of the catalog opens nothing on its own.
 */
import { boolean, integer, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";
import type { JobKind, JobPhase, JobProgress, RetentionSpec } from "../workflows/messages.js";

/** Where a plan's source comes from; only files for now. */
export interface PlanSource {
  type: "files";
  paths: string[];
  exclude?: string[];
}

/** When a plan runs: a cron expression read in an IANA time zone. */
export interface PlanSchedule {
  cron: string;
  timezone: string;
}

export type JobStatusName = "running" | "completed" | "failed" | "cancelled";

export const repositories = pgTable("repositories", {
  id: text("id").primaryKey(),
  name: text("name").notNull().unique(),
  url: text("url").notNull().unique(),
  /** The repository password sealed with the platform secret key (base64). */
  sealedPassword: text("sealed_password").notNull(),
  /** The destination's credentials (environment variables by name) as one JSON object sealed like the password; null when the environment provides them. */
  sealedCredentials: text("sealed_credentials"),
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
  /** Mirrors the Temporal Schedule's paused state, so listing plans needs no Temporal call. */
  paused: boolean("paused").notNull().default(false),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

export const apiTokens = pgTable("api_tokens", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  /** sha256 of the token, hex. */
  tokenHash: text("token_hash").notNull().unique(),
  role: text("role").$type<"admin">().notNull(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});

/** Finished jobs, copied from Temporal when first read, so history outlives Temporal's retention. */
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
});

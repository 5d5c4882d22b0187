/**
 * What the analytics read: finished jobs and repository usage samples, as the
 * catalog holds them (db/schema.ts), and what they answer. Every function in
 * analytics/ is pure: the caller passes `now`, nothing reads the clock.
 */
import type { JobKind } from "../workflows/messages.js";

export type Outcome = "success" | "failure" | "cancelled";

/** One finished job, a `jobs` row with a backup's figures read from its result (see records.ts). */
export interface JobRecord {
  id: string;
  kind: JobKind;
  planId: string | null;
  outcome: Outcome;
  startedAt: Date;
  finishedAt: Date;
  /** The job's whole time, start to end (as the Jobs page shows it): the same measure for every outcome, so a failure's and a success's durations compare. */
  durationSeconds: number;
  /** Backups: bytes read from the source. */
  bytesProcessed?: number;
  /** Backups: new data, before compression. */
  bytesAdded?: number;
  /** Backups: files in the snapshot (new, changed and unmodified). */
  files?: number;
  /** Backups: new data before compression over what it took in the repository (2 = half the size); absent when nothing was added. */
  compressionRatio?: number;
  /** Backups: the new snapshot passed its verification step. Verify jobs: the repository check found no error. */
  verified?: boolean;
  error?: string | null;
  /** Recovery drills that passed: restore start to verified. */
  rtoSeconds?: number;
}

/** The bytes a repository used at one moment (its packs' size), kept for forecasting. */
export interface UsageSample {
  at: Date;
  bytes: number;
}

/** A destination of a plan (its repository or a secondary) and whether it works now. */
export interface DestinationHealth {
  repositoryId: string;
  name: string;
  primary: boolean;
  healthy: boolean;
  /** Why it does not work, in words, when `healthy` is false. */
  detail?: string;
}

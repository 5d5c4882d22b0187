/** Catalog rows to analytics input. */
import type { jobs } from "../db/schema.js";
import type { BackupResult, DrillResult, VerifyResult } from "../workflows/messages.js";
import type { JobRecord, Outcome } from "./types.js";

export type JobRow = typeof jobs.$inferSelect;

const OUTCOMES: Record<JobRow["status"], Outcome | undefined> = {
  completed: "success",
  failed: "failure",
  cancelled: "cancelled",
  running: undefined,
};

/**
 * The analytics' view of a finished job; undefined for a job still running.
 * A completed backup passed its verify step (the backup workflow fails when
 * verification does), and a completed verify job is verified when it found no error.
 */
export function jobRecordFromRow(row: JobRow): JobRecord | undefined {
  const outcome = OUTCOMES[row.status];
  if (outcome === undefined || row.finishedAt === null) return undefined;
  const record: JobRecord = {
    id: row.id,
    kind: row.kind,
    planId: row.planId,
    outcome,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    durationSeconds: (row.finishedAt.getTime() - row.startedAt.getTime()) / 1000,
    error: row.error,
  };
  if (row.kind === "backup" && outcome === "success" && row.result) {
    const r = row.result as BackupResult;
    record.bytesProcessed = r.bytesProcessed;
    record.bytesAdded = r.bytesAdded;
    record.files = r.filesNew + r.filesChanged + r.filesUnmodified;
    if (r.bytesStored > 0) record.compressionRatio = r.bytesAdded / r.bytesStored;
    record.verified = true;
  }
  if (row.kind === "verify" && outcome === "success") {
    record.verified = ((row.result as VerifyResult | null)?.errors ?? []).length === 0;
  }
  if (row.kind === "drill" && outcome === "success" && row.result) record.rtoSeconds = (row.result as DrillResult).rtoSeconds;
  return record;
}

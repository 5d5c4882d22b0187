import { describe, expect, it } from "vitest";
import type { BackupResult } from "../workflows/messages.js";
import { jobRecordFromRow, type JobRow } from "./records.js";

const row = (over: Partial<JobRow>): JobRow => ({
  id: "backup-1",
  runId: "run",
  alertsEvaluatedAt: null,
  kind: "backup",
  planId: "p1",
  status: "completed",
  phase: "done",
  progress: { filesDone: 0, bytesDone: 0, bytesTotal: 0, bytesPerSecond: 0, etaSeconds: null },
  snapshotId: null,
  error: null,
  result: null,
  startedAt: new Date("2026-03-01T02:00:00Z"),
  finishedAt: new Date("2026-03-01T02:10:00Z"),
  steps: null,
  log: null,
  attempts: null,
  ...over,
});

describe("jobRecordFromRow", () => {
  it("reads a backup's figures from its result", () => {
    const result: BackupResult = {
      snapshotId: "s",
      filesNew: 10,
      filesChanged: 5,
      filesUnmodified: 985,
      bytesProcessed: 5000,
      bytesAdded: 3000,
      bytesStored: 1000,
      durationSeconds: 590.5,
      warnings: [],
      snapshotsRemoved: 0,
    };
    expect(jobRecordFromRow(row({ result }))).toEqual({
      id: "backup-1",
      kind: "backup",
      planId: "p1",
      outcome: "success",
      startedAt: new Date("2026-03-01T02:00:00Z"),
      finishedAt: new Date("2026-03-01T02:10:00Z"),
      durationSeconds: 600,
      bytesProcessed: 5000,
      bytesAdded: 3000,
      files: 1000,
      compressionRatio: 3,
      verified: true,
      error: null,
    });
  });

  it("takes every job's duration from its times (the job's whole time, not only its snapshot step), and skips running jobs", () => {
    expect(jobRecordFromRow(row({ status: "failed", error: "boom" }))).toMatchObject({ outcome: "failure", durationSeconds: 600, error: "boom" });
    expect(jobRecordFromRow(row({ status: "failed" }))!.bytesAdded).toBeUndefined();
    expect(jobRecordFromRow(row({ status: "running", finishedAt: null }))).toBeUndefined();
  });

  it("leaves out the compression ratio of a backup that added nothing", () => {
    const result = { filesNew: 0, filesChanged: 0, filesUnmodified: 3, bytesProcessed: 10, bytesAdded: 0, bytesStored: 0, durationSeconds: 1 };
    expect(jobRecordFromRow(row({ result }))!.compressionRatio).toBeUndefined();
  });

  it("counts a verify job as verified only when its check found no error", () => {
    expect(jobRecordFromRow(row({ kind: "verify", result: { errors: [], warnings: [], packsRead: 4 } }))!.verified).toBe(true);
    expect(jobRecordFromRow(row({ kind: "verify", result: { errors: ["pack 1f: bad"], warnings: [], packsRead: 4 } }))!.verified).toBe(false);
  });
});

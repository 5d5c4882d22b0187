import { defaultPayloadConverter, type WorkflowExecutionDescription } from "@temporalio/client";
import { describe, expect, it } from "vitest";
import type { JobProgress, SnapshotHeartbeat } from "../workflows/messages.js";
import { heartbeatProgress, jobsQuery } from "./jobs.js";

const progress: JobProgress = { filesDone: 12, bytesDone: 3_000_000, bytesTotal: 9_000_000, bytesPerSecond: 1_500_000, etaSeconds: 4 };

/** A describe() answer whose pending activities heartbeated these details. */
function described(...details: unknown[]): WorkflowExecutionDescription {
  const pendingActivities = details.map((d) => ({ heartbeatDetails: d === undefined ? undefined : { payloads: [defaultPayloadConverter.toPayload(d)] } }));
  return { raw: { pendingActivities } } as unknown as WorkflowExecutionDescription;
}

describe("live progress from heartbeats", () => {
  it("reads a plain JobProgress and the snapshot step's {progress, resume}", () => {
    expect(heartbeatProgress(described(progress))).toEqual(progress);
    const snapshot: SnapshotHeartbeat = { progress, resume: { attempt: 1, packsIndexed: 3, bytesIndexed: 48_000_000, currentPath: "/srv/a" } };
    expect(heartbeatProgress(described(snapshot))).toEqual(progress);
  });

  it("skips activities without usable details and fills missing counts", () => {
    expect(heartbeatProgress(described(undefined, "not progress", { bytesDone: 5 }))).toEqual({ filesDone: 0, bytesDone: 5, bytesTotal: 0, bytesPerSecond: 0, etaSeconds: null });
    expect(heartbeatProgress(described())).toBeUndefined();
  });
});

describe("visibility queries", () => {
  it("filter on Cairn's search attributes as the Web UI would", () => {
    expect(jobsQuery({})).toBe("CairnKind IN ('backup', 'restore', 'verify', 'check', 'prune', 'copy', 'recovery', 'drill')");
    expect(jobsQuery({ planId: "p1", status: "failed", kind: "backup" })).toBe("CairnKind = 'backup' AND CairnPlan = 'p1' AND ExecutionStatus IN ('Failed', 'TimedOut', 'Terminated')");
  });

  it("hold a scoped token to the backups of its plans and the restores, checks, prunes and copies of its repositories", () => {
    expect(jobsQuery({ kind: "backup" }, { planIds: ["a1", "b2"], repositoryIds: ["c3"] })).toBe(
      "CairnKind = 'backup' AND (CairnPlan IN ('a1', 'b2') OR WorkflowId STARTS_WITH 'restore-c3-' OR WorkflowId STARTS_WITH 'verify-c3-' OR WorkflowId STARTS_WITH 'check-c3-' OR WorkflowId STARTS_WITH 'prune-c3-' OR WorkflowId STARTS_WITH 'copy-c3-')",
    );
    expect(jobsQuery({}, { planIds: [], repositoryIds: [] })).toBe("CairnKind IN ('backup', 'restore', 'verify', 'check', 'prune', 'copy', 'recovery', 'drill') AND CairnKind = 'none'");
  });
});

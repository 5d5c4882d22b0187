import { describe, expect, it } from "vitest";
import type { DrillView } from "../drills.js";
import type { PlanRow, RepositoryRow } from "../schedules.js";
import { runChecks } from "./checks.js";
import { DEFAULT_THRESHOLDS, type Evidence } from "./evidence.js";

const now = new Date("2026-03-01T12:00:00.000Z");
const repo = { id: "r1", name: "nas", url: "/srv/backups/nas" } as RepositoryRow;
const plan = (id: string, name: string) => ({ id, name, repositoryId: "r1", secondaryRepositoryIds: [] }) as unknown as PlanRow;

function evidence(drills: [string, Partial<DrillView>][], lastVerification?: Evidence["repositories"][number]["lastVerification"]): Evidence {
  return {
    now,
    thresholds: DEFAULT_THRESHOLDS,
    repositories: [{ row: repo, lastVerification }],
    plans: [plan("p1", "www"), plan("p2", "db")],
    drills: new Map(drills.map(([planId, d]) => [planId, { jobId: `drill-${planId}-1`, startedAt: "2026-02-27T10:00:00.000Z", finishedAt: "2026-02-27T10:01:00.000Z", outcome: "passed", snapshotId: "ab", rtoSeconds: 42.5, filesVerified: 1200, bytes: 1 << 30, error: null, ...d } as DrillView])),
    adminTokens: [],
    environmentAdminToken: false,
    audit: { ok: true, events: 0, checkpoints: 0 },
    secretKeyEpoch: 1,
    unopenable: [],
  };
}

const restoreVerification = (e: Evidence) => runChecks(e).find((c) => c.id === "restore-verification")!;

describe("compliance: recovery drills as restore verification", () => {
  it("counts a drill that passed within the window as its repository's verification, with the RTO as evidence", () => {
    const c = restoreVerification(evidence([["p1", {}]]));
    expect(c.passed).toBe(true);
    expect(c.evidence).toEqual(["repository nas: plan www: recovery drill job drill-p1-1 passed 2026-02-27T10:01:00.000Z, RTO 42.5 s, 1200 files verified"]);
  });

  it("fails when a plan's last drill failed, whatever else verified the repository, naming the cause", () => {
    const c = restoreVerification(evidence([["p2", { outcome: "failed", rtoSeconds: null, error: "recovery drill of plan db failed: the check query failed" }]], { jobId: "restore-r1-1", kind: "restore", finishedAt: now }));
    expect(c.passed).toBe(false);
    expect(c.evidence[0]).toBe("plan db: the last recovery drill (job drill-p2-1, 2026-02-27T10:01:00.000Z) failed: recovery drill of plan db failed: the check query failed");
    expect(c.remediation).toContain("POST /v1/plans/<id>/drills");
  });

  it("does not count a drill older than the window", () => {
    const c = restoreVerification(evidence([["p1", { finishedAt: "2025-12-01T00:00:00.000Z" }]]));
    expect(c.passed).toBe(false);
    expect(c.evidence[0]).toContain("no successful restore (other than a dry run), verification or recovery drill in the last 30 days");
  });
});

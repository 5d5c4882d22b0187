import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { openCatalog, type OpenCatalog } from "../db/client.js";
import { alerts, jobs, plans, repositories, repositoryUsage } from "../db/schema.js";
import { tempDir } from "../test/helpers.js";
import { acknowledgeAlert, evaluateFinishedJobs, evaluatePeriodic, raiseAlert, resolveAlert } from "./alerts.js";

describe("alerts in the catalog", () => {
  let catalog: OpenCatalog;
  const dir = tempDir("cairn-alerts-");
  beforeAll(async () => {
    catalog = await openCatalog({ dataDir: dir.dir });
  });
  afterAll(async () => {
    await catalog?.close();
    dir.cleanup();
  });

  const spec = { kind: "drill_failed" as const, severity: "critical" as const, title: "Drill of plan www failed", detail: "restore did not start", dedupeKey: "drill_failed:plan:p0", planId: "p0" };

  it("deduplicates while unresolved, counts occurrences, and opens a new alert after resolution", async () => {
    const first = await raiseAlert(catalog.db, spec);
    expect(first.opened).toBe(true);
    const again = await raiseAlert(catalog.db, { ...spec, detail: "restore timed out" });
    expect(again.opened).toBe(false);
    expect(again.alert.id).toBe(first.alert.id);
    expect(again.alert.occurrences).toBe(2);
    expect(again.alert.detail).toBe("restore timed out");

    expect((await acknowledgeAlert(catalog.db, first.alert.id, "t1 (ops)"))?.state).toBe("acknowledged");
    expect(await acknowledgeAlert(catalog.db, first.alert.id, "t1 (ops)")).toBeUndefined();
    expect((await raiseAlert(catalog.db, spec)).alert.id).toBe(first.alert.id);

    expect(await resolveAlert(catalog.db, spec.dedupeKey, "drill passed")).toBe(true);
    expect(await resolveAlert(catalog.db, spec.dedupeKey, "drill passed")).toBe(false);
    const next = await raiseAlert(catalog.db, spec);
    expect(next.opened).toBe(true);
    expect(next.alert.id).not.toBe(first.alert.id);
  });

  it("evaluates each finished job once, in order: a failure opens backup_failed, a later success resolves it and keeps the usage", async () => {
    const db = catalog.db;
    await db.insert(repositories).values({ id: "r1", name: "main", url: "/srv/r1", sealedPassword: "x", quotaBytes: 1000 });
    await db.insert(plans).values({ id: "p1", name: "www", repositoryId: "r1", source: { type: "files", paths: ["/srv/www"] } });
    const job = (id: string, status: "failed" | "completed", at: string) => ({
      id,
      runId: "r",
      kind: "backup" as const,
      planId: "p1",
      status,
      phase: "done" as const,
      progress: { filesDone: 0, bytesDone: 0, bytesTotal: 0, bytesPerSecond: 0, etaSeconds: null },
      startedAt: new Date(at),
      finishedAt: new Date(at),
      error: status === "failed" ? "source unreadable" : null,
      result:
        status === "completed"
          ? { snapshotId: "s", filesNew: 1, filesChanged: 0, filesUnmodified: 0, bytesProcessed: 10, bytesAdded: 10, bytesStored: 10, durationSeconds: 1, warnings: [], snapshotsRemoved: 0, repositoryStats: { snapshots: 1, packs: 1, packBytes: 850 } }
          : null,
    });
    await db.insert(jobs).values(job("backup-p1-1", "failed", "2026-01-01T00:00:00Z"));
    expect(await evaluateFinishedJobs(db)).toBe(1);
    expect(await evaluateFinishedJobs(db)).toBe(0);
    const [failed] = await db.select().from(alerts).where(eq(alerts.dedupeKey, "backup_failed:plan:p1"));
    expect(failed).toMatchObject({ state: "open", kind: "backup_failed", planId: "p1" });
    expect(failed.detail).toContain("source unreadable");

    await db.insert(jobs).values(job("backup-p1-2", "completed", "2026-01-02T00:00:00Z"));
    expect(await evaluateFinishedJobs(db)).toBe(1);
    const [after] = await db.select().from(alerts).where(eq(alerts.id, failed.id));
    expect(after.state).toBe("resolved");
    expect(after.resolution).toContain("backup-p1-2");
    expect(await db.select({ bytes: repositoryUsage.bytes }).from(repositoryUsage).where(eq(repositoryUsage.repositoryId, "r1"))).toEqual([{ bytes: 850 }]);

    // 850 of 1000 bytes: nearly full; the quota raised to 2000: cleared.
    await evaluatePeriodic(db, new Date("2026-01-02T01:00:00Z"));
    const [full] = await db.select().from(alerts).where(eq(alerts.dedupeKey, "storage_nearly_full:repository:r1"));
    expect(full).toMatchObject({ state: "open", severity: "warning", repositoryId: "r1" });
    await db.update(repositories).set({ quotaBytes: 2000 }).where(eq(repositories.id, "r1"));
    await evaluatePeriodic(db, new Date("2026-01-02T01:00:00Z"));
    expect((await db.select().from(alerts).where(eq(alerts.id, full.id)))[0].state).toBe("resolved");
  });
});

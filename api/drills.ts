/**
 * Recovery drills as the catalog keeps them: each drill is a job of kind
 * "drill" (workflows/drill.ts), recorded in `jobs` when it finishes like every
 * job, so a plan's drill results outlive Temporal's retention.
 */
import { and, desc, eq, inArray } from "drizzle-orm";
import type { Catalog } from "../db/client.js";
import { jobs } from "../db/schema.js";
import type { DrillResult } from "../workflows/messages.js";

type JobRow = typeof jobs.$inferSelect;

/** One drill as GET /v1/plans/{id}/drills shows it. */
export interface DrillView {
  jobId: string;
  startedAt: string;
  finishedAt: string | null;
  outcome: "passed" | "failed" | "cancelled";
  snapshotId: string | null;
  /** Restore start to verified; null when the drill did not get that far. */
  rtoSeconds: number | null;
  filesVerified: number;
  bytes: number;
  error: string | null;
  check?: { sql: string; rows: string[] };
}

/** A finished drill job as a drill result: a completed job passed; a failed one carries its cause and the bytes it restored before it stopped. */
export function drillView(row: JobRow): DrillView {
  const result = row.status === "completed" ? (row.result as DrillResult | null) : null;
  return {
    jobId: row.id,
    startedAt: (result?.startedAt ? new Date(result.startedAt) : row.startedAt).toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
    outcome: row.status === "completed" ? "passed" : row.status === "cancelled" ? "cancelled" : "failed",
    snapshotId: result?.snapshotId ?? row.snapshotId ?? null,
    rtoSeconds: result ? Math.round(result.rtoSeconds * 1000) / 1000 : null,
    // A drill that failed verified nothing it can vouch for; its bytes are what it restored before it stopped.
    filesVerified: result?.filesVerified ?? 0,
    bytes: result?.bytes ?? row.progress.bytesDone,
    error: row.error ?? null,
    ...(result?.check ? { check: result.check } : {}),
  };
}

/** A plan's finished drills, newest first. */
export async function planDrills(catalog: Catalog, planId: string, limit: number): Promise<DrillView[]> {
  const rows = await catalog
    .select()
    .from(jobs)
    .where(and(eq(jobs.kind, "drill"), eq(jobs.planId, planId), inArray(jobs.status, ["completed", "failed", "cancelled"])))
    .orderBy(desc(jobs.startedAt))
    .limit(limit);
  return rows.map(drillView);
}

/** The last finished drill (not cancelled) of each of these plans. */
export async function lastDrills(catalog: Catalog, planIds: string[]): Promise<Map<string, DrillView>> {
  if (!planIds.length) return new Map();
  const rows = await catalog
    .select()
    .from(jobs)
    .where(and(eq(jobs.kind, "drill"), inArray(jobs.planId, planIds), inArray(jobs.status, ["completed", "failed"])))
    .orderBy(desc(jobs.startedAt));
  const last = new Map<string, DrillView>();
  for (const row of rows) if (row.planId && !last.has(row.planId)) last.set(row.planId, drillView(row));
  return last;
}

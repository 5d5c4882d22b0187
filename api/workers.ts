/**
 * The workers as they report themselves (workflows/workers.ts keeps each one's
 * latest report in the register's memo): read with a describe, so the list shows
 * even when no worker runs, the silent ones marked stale.
 */
import { WorkflowNotFoundError, type Client } from "@temporalio/client";
import { findBottlenecks, isStale, usage, type Bottleneck } from "../analytics/bottlenecks.js";
import { WORKER_REGISTER_ID, WORKER_REPORTS_MEMO, type WorkerReport } from "../workflows/messages.js";
import { withTemporal } from "./temporal.js";

/** A worker as GET /v1/workers shows it: its report, with the shares in use and whether it is stale. */
export interface WorkerView extends Omit<WorkerReport, "at" | "memory" | "disk"> {
  reportedAt: string;
  /** No report for three of its intervals: stopped without saying so, or cut off from Temporal. */
  stale: boolean;
  memory: WorkerReport["memory"] & { used: number };
  disk: WorkerReport["disk"] & { used: number };
}

/** Every worker's latest report, most recent first; none when no worker ever reported. */
export async function workerReports(client: Client): Promise<WorkerReport[]> {
  const description = await withTemporal(client, () => client.workflow.getHandle(WORKER_REGISTER_ID).describe()).catch((err) => {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  });
  const reports = (description?.memo?.[WORKER_REPORTS_MEMO] as WorkerReport[] | undefined) ?? [];
  return [...reports].sort((a, b) => b.at.localeCompare(a.at) || a.identity.localeCompare(b.identity));
}

export function workerView(report: WorkerReport, now: Date): WorkerView {
  const { at, memory, disk, ...rest } = report;
  const used = usage(report);
  return { ...rest, reportedAt: at, stale: isStale(report, now), memory: { ...memory, used: used.memory }, disk: { ...disk, used: used.disk } };
}

/** The workers and their bottlenecks now. */
export async function workersNow(client: Client, now = new Date()): Promise<{ workers: WorkerView[]; bottlenecks: Bottleneck[] }> {
  const reports = await workerReports(client);
  return { workers: reports.map((r) => workerView(r, now)), bottlenecks: findBottlenecks(reports, now) };
}

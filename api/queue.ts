/**
 * The job queue as Temporal holds it: waiting work is the task queue's backlog
 * (Temporal's own count, per priority), running jobs are open workflows, and
 * finished ones come from the catalog the recorder keeps.
 */
import type { Client } from "@temporalio/client";
import proto from "@temporalio/proto";
import { and, gte, inArray, isNotNull, sql } from "drizzle-orm";
import type { Catalog } from "../db/client.js";
import { jobs } from "../db/schema.js";
import { JOB_SLOTS_WORKFLOW, slotsQuery, TASK_QUEUE } from "../workflows/messages.js";
import { jobsQuery, type JobOwners } from "./jobs.js";
import { withTemporal } from "./temporal.js";

/** Temporal priority keys (1 is served first, 5 last) for the API's priority names. */
export const PRIORITY_KEYS = { high: 1, normal: 3, low: 5 } as const;
export type PriorityName = keyof typeof PRIORITY_KEYS;

export interface QueueView {
  /** Tasks waiting for a worker slot (workflow and activity tasks of the Cairn task queue, Temporal's approximate backlog). */
  pending: number;
  pendingByPriority: Record<PriorityName, number>;
  /** Jobs waiting for a concurrency slot (counted in `pending`). */
  waitingForSlot: number;
  /** Jobs whose workflow is open. */
  running: number;
  /** Finished jobs of the window, from the catalog. */
  completed: number;
  failed: number;
  cancelled: number;
  /** Mean seconds completed jobs of the window took; null without one. */
  averageDuration: number | null;
  /** completed / (completed + failed) over the window; null without a finished job. */
  successRate: number | null;
  windowHours: number;
}

/** Counts of the queue; a scoped token sees only its jobs (and no backlog, which is shared). */
export async function queueView(catalog: Catalog, client: Client, windowHours: number, owners?: JobOwners, now = new Date()): Promise<QueueView> {
  const since = new Date(now.getTime() - windowHours * 3600_000);
  const running = await withTemporal(client, () => client.workflowService.countWorkflowExecutions({ namespace: client.options.namespace, query: jobsQuery({ status: "running" }, owners) }));
  const backlog = owners ? undefined : await backlogByPriority(client);
  const waitingForSlot = owners ? 0 : await jobsWaitingForSlots(client);
  const scoped = owners ? inArray(jobs.planId, owners.planIds.length ? owners.planIds : [""]) : undefined;
  const rows = await catalog
    .select({
      status: jobs.status,
      count: sql<number>`count(*)::int`,
      seconds: sql<number | null>`avg(extract(epoch from ${jobs.finishedAt} - ${jobs.startedAt}))::float8`,
    })
    .from(jobs)
    .where(and(isNotNull(jobs.finishedAt), gte(jobs.finishedAt, since), scoped))
    .groupBy(jobs.status);
  const count = (status: string) => rows.find((r) => r.status === status)?.count ?? 0;
  const completed = count("completed");
  const failed = count("failed");
  const average = rows.find((r) => r.status === "completed")?.seconds;
  return {
    pending: backlog ? backlog.high + backlog.normal + backlog.low + waitingForSlot : 0,
    waitingForSlot,
    pendingByPriority: backlog ?? { high: 0, normal: 0, low: 0 },
    running: Number(running.count ?? 0),
    completed,
    failed,
    cancelled: count("cancelled"),
    averageDuration: average === null || average === undefined ? null : Math.round(average * 10) / 10,
    successRate: completed + failed ? Math.round((completed / (completed + failed)) * 10000) / 10000 : null,
    windowHours,
  };
}

/** Jobs waiting for a concurrency slot: the waiting lists of the slots workflows (workflows/slots.ts), each job counted once. */
export async function jobsWaitingForSlots(client: Client): Promise<number> {
  const waiting = new Set<string>();
  const query = `WorkflowType = '${JOB_SLOTS_WORKFLOW}' AND ExecutionStatus = 'Running'`;
  const listed = await withTemporal(client, () => client.workflowService.listWorkflowExecutions({ namespace: client.options.namespace, query, pageSize: 100 }));
  for (const wf of listed.executions ?? []) {
    const state = await withTemporal(client, () => client.workflow.getHandle(wf.execution!.workflowId!).query(slotsQuery), 3000).catch(() => undefined);
    for (const id of state?.waiting ?? []) waiting.add(id);
  }
  return waiting.size;
}

/** The backlog of the Cairn task queue (workflow and activity tasks), per priority. */
export async function backlogByPriority(client: Client): Promise<Record<PriorityName, number>> {
  const counts: Record<PriorityName, number> = { high: 0, normal: 0, low: 0 };
  // @temporalio/proto is CommonJS: Node's ESM loader gives only its default export (vitest is laxer).
  const { TaskQueueType } = proto.temporal.api.enums.v1;
  const types = [TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY];
  for (const taskQueueType of types) {
    const response = await withTemporal(client, () =>
      client.workflowService.describeTaskQueue({ namespace: client.options.namespace, taskQueue: { name: TASK_QUEUE }, taskQueueType, reportStats: true }),
    );
    const byKey = response.statsByPriorityKey ?? {};
    if (Object.keys(byKey).length === 0) {
      counts.normal += Number(response.stats?.approximateBacklogCount ?? 0);
      continue;
    }
    for (const [key, stats] of Object.entries(byKey)) {
      const k = Number(key);
      const name: PriorityName = k <= 0 ? "normal" : k <= 2 ? "high" : k <= 3 ? "normal" : "low";
      counts[name] += Number(stats.approximateBacklogCount ?? 0);
    }
  }
  return counts;
}

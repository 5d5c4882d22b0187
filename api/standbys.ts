/**
 * Reading warm standbys (workflows/standby.ts) for the API and /metrics: one
 * workflow per plan, standby-<planId>; a running one answers its status query, a
 * stopped one returned its last status.
 */
import type { Client } from "@temporalio/client";
import { STANDBY_WORKFLOW, standbyStatusQuery, standbyWorkflowId, type StandbyStatus } from "../workflows/messages.js";
import { readLongRunning, runningLongRunning, type LongRunningView } from "./temporal.js";

/** A standby as the API shows it: its workflow's status, whether it runs, and why it ended when it failed. */
export type StandbyView = LongRunningView<StandbyStatus>;

/** The standby of a plan, running or ended; undefined when the plan never had one (or it is past Temporal's retention). */
export async function readStandby(client: Client, planId: string): Promise<StandbyView | undefined> {
  return readLongRunning<StandbyStatus>(client, {
    workflowId: standbyWorkflowId(planId),
    type: STANDBY_WORKFLOW,
    statusQuery: standbyStatusQuery,
    unknown: { planId, phase: "restore", dataDir: "", port: 0, restarts: 0, warnings: [], events: [] },
    noun: "the standby",
    noWorker: "no worker answered the status query: start a worker (the standby's PostgreSQL keeps replaying meanwhile)",
  });
}

/** The running standbys, of these plans only when `planIds` is given. */
export async function runningStandbys(client: Client, planIds?: Set<string>): Promise<StandbyView[]> {
  return runningLongRunning(client, STANDBY_WORKFLOW, standbyWorkflowId(""), (planId) => readStandby(client, planId), planIds);
}

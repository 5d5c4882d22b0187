/**
 * Reading continuous binary log archivers (workflows/binlog-archiver.ts) for the
 * API and /metrics: one workflow per plan, binlog-archiver-<planId>; a running one
 * answers its status query, a stopped one returned its last status.
 */
import type { Client } from "@temporalio/client";
import { BINLOG_ARCHIVER_WORKFLOW, binlogArchiverStatusQuery, binlogArchiverWorkflowId, type BinlogArchiverStatus } from "../workflows/messages.js";
import { readLongRunning, runningLongRunning, type LongRunningView } from "./temporal.js";

/** An archiver as the API shows it: its workflow's status, whether it runs, and why it ended when it failed. */
export type BinlogArchiverView = LongRunningView<BinlogArchiverStatus>;

/** The archiver of a plan, running or ended; undefined when the plan never had one (or it is past Temporal's retention). */
export async function readBinlogArchiver(client: Client, planId: string): Promise<BinlogArchiverView | undefined> {
  return readLongRunning<BinlogArchiverStatus>(client, {
    workflowId: binlogArchiverWorkflowId(planId),
    type: BINLOG_ARCHIVER_WORKFLOW,
    statusQuery: binlogArchiverStatusQuery,
    unknown: { planId, phase: "starting", spoolDir: "", intervalSeconds: 0, logsArchived: 0, reconnects: 0, events: [] },
    noun: "the archiver",
    // The workflow still runs and streams again once a worker is back.
    noWorker: "no worker answered the status query: start a worker (nothing is archived until one streams again)",
  });
}

/** The running archivers, of these plans only when `planIds` is given. */
export async function runningBinlogArchivers(client: Client, planIds?: Set<string>): Promise<BinlogArchiverView[]> {
  return runningLongRunning(client, BINLOG_ARCHIVER_WORKFLOW, binlogArchiverWorkflowId(""), (planId) => readBinlogArchiver(client, planId), planIds);
}

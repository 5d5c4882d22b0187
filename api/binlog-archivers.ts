/**
 * Reading continuous binary log archivers (workflows/binlog-archiver.ts) for the
 * API: one workflow per plan, binlog-archiver-<planId>; a running one answers its
 * status query, a stopped one returned its last status.
 */
import { WorkflowNotFoundError, type Client } from "@temporalio/client";
import { BINLOG_ARCHIVER_WORKFLOW, binlogArchiverStatusQuery, binlogArchiverWorkflowId, type BinlogArchiverStatus } from "../workflows/messages.js";
import { withTemporal } from "./temporal.js";

/** An archiver as the API shows it: its workflow's status, whether it runs, and why it ended when it failed. */
export type BinlogArchiverView = BinlogArchiverStatus & { workflowId: string; running: boolean; startedAt: string; error?: string };

/** The archiver of a plan, running or ended; undefined when the plan never had one (or it is past Temporal's retention). */
export async function readBinlogArchiver(client: Client, planId: string): Promise<BinlogArchiverView | undefined> {
  const workflowId = binlogArchiverWorkflowId(planId);
  const handle = client.workflow.getHandle(workflowId);
  const desc = await withTemporal(client, () => handle.describe()).catch((err) => {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  });
  if (!desc || desc.type !== BINLOG_ARCHIVER_WORKFLOW) return undefined;
  const base = { workflowId, startedAt: desc.startTime.toISOString() };
  const unknown: BinlogArchiverStatus = { planId, phase: "starting", spoolDir: "", intervalSeconds: 0, logsArchived: 0, reconnects: 0, events: [] };
  if (desc.status.name === "RUNNING") {
    // A worker that is down cannot answer; the workflow still runs and streams again once one is back.
    const status = await withTemporal(client, () => handle.query(binlogArchiverStatusQuery), 5000).catch(() => undefined);
    return { ...unknown, ...status, ...base, running: true, ...(status ? {} : { error: "no worker answered the status query: start a worker (nothing is archived until one streams again)" }) };
  }
  if (desc.status.name === "COMPLETED") {
    const status = (await withTemporal(client, () => handle.result())) as BinlogArchiverStatus;
    return { ...status, ...base, running: false };
  }
  const error = await withTemporal(client, () => handle.result()).then(
    () => undefined,
    (err: Error) => String((err.cause as Error | undefined)?.message ?? err.message),
  );
  return { ...unknown, phase: "stopped", ...base, running: false, error: `the archiver ${desc.status.name.toLowerCase()}: ${error ?? "no reason recorded"}` };
}

/**
 * Reading warm standbys (workflows/standby.ts) for the API and /metrics: one
 * workflow per plan, standby-<planId>; a running one answers its status query, a
 * stopped one returned its last status.
 */
import { WorkflowNotFoundError, type Client } from "@temporalio/client";
import { STANDBY_WORKFLOW, standbyStatusQuery, standbyWorkflowId, type StandbyStatus } from "../workflows/messages.js";
import { withTemporal } from "./temporal.js";

/** A standby as the API shows it: its workflow's status, whether it runs, and why it ended when it failed. */
export type StandbyView = StandbyStatus & { workflowId: string; running: boolean; startedAt: string; error?: string };

/** The standby of a plan, running or ended; undefined when the plan never had one (or it is past Temporal's retention). */
export async function readStandby(client: Client, planId: string): Promise<StandbyView | undefined> {
  const workflowId = standbyWorkflowId(planId);
  const handle = client.workflow.getHandle(workflowId);
  const desc = await withTemporal(client, () => handle.describe()).catch((err) => {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  });
  if (!desc || desc.type !== STANDBY_WORKFLOW) return undefined;
  const base = { workflowId, startedAt: desc.startTime.toISOString() };
  const unknown: StandbyStatus = { planId, phase: "restore", dataDir: "", port: 0, restarts: 0, warnings: [], events: [] };
  if (desc.status.name === "RUNNING") {
    // A worker that is down cannot answer; the standby still runs.
    const status = await withTemporal(client, () => handle.query(standbyStatusQuery), 5000).catch(() => undefined);
    return { ...unknown, ...status, ...base, running: true, ...(status ? {} : { error: "no worker answered the status query: start a worker (the standby's PostgreSQL keeps replaying meanwhile)" }) };
  }
  if (desc.status.name === "COMPLETED") {
    const status = (await withTemporal(client, () => handle.result())) as StandbyStatus;
    return { ...status, ...base, running: false };
  }
  const error = await withTemporal(client, () => handle.result()).then(
    () => undefined,
    (err: Error) => String((err.cause as Error | undefined)?.message ?? err.message),
  );
  return { ...unknown, phase: "stopped", ...base, running: false, error: `the standby ${desc.status.name.toLowerCase()}: ${error ?? "no reason recorded"}` };
}

/** The running standbys, of these plans only when `planIds` is given. */
export async function runningStandbys(client: Client, planIds?: Set<string>): Promise<StandbyView[]> {
  const query = `WorkflowType = '${STANDBY_WORKFLOW}' AND ExecutionStatus = 'Running'`;
  const listed = await withTemporal(client, () => client.workflowService.listWorkflowExecutions({ namespace: client.options.namespace, query, pageSize: 1000 }));
  const out: StandbyView[] = [];
  for (const wf of listed.executions ?? []) {
    const workflowId = wf.execution?.workflowId ?? "";
    const planId = workflowId.replace(/^standby-/, "");
    if (planIds && !planIds.has(planId)) continue;
    const view = await readStandby(client, planId);
    if (view?.running) out.push(view);
  }
  return out;
}

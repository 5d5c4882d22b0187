import { Context } from "@temporalio/activity";
import { WorkflowNotFoundError } from "@temporalio/client";
import { JOB_SLOTS_WORKFLOW, requestSlotSignal, type JobSlotsState, type SlotRequest } from "../workflows/messages.js";
import type { ActivityDeps } from "./repository.js";

/** CAIRN_MAX_JOBS as a number of jobs; absent or empty means no global limit. */
export function maxJobsFromEnvironment(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const text = env.CAIRN_MAX_JOBS?.trim();
  if (!text) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`CAIRN_MAX_JOBS=${text} is not a number of jobs: give a whole number of 1 or more, or leave it unset for no global limit`);
  return n;
}

/** The slots workflow of a limit: one global, one per repository. */
export function slotsWorkflowId(scope: SlotRequest["scope"], repositoryId?: string): string {
  return scope === "global" ? "cairn-slots-global" : `cairn-slots-repository-${repositoryId}`;
}

/** The steps of the concurrency slots (workflows/slots.ts) that need Temporal's client. */
export function slotActivities(deps: ActivityDeps) {
  return {
    /**
     * Asks the slots workflow of a limit for a slot, starting it when it is not running
     * (signal-with-start); answers which one will signal the grant, or null when there
     * is no limit. Sending the same request again is harmless.
     */
    async requestJobSlot(input: SlotRequest): Promise<{ slotsId: string | null }> {
      const limit = input.scope === "global" ? deps.maxJobs : input.limit;
      if (!limit) return { slotsId: null };
      const ctx = Context.current();
      const slotsId = slotsWorkflowId(input.scope, input.repositoryId);
      const initial: JobSlotsState = { key: slotsId, limit, holders: [], waiting: [] };
      await ctx.client.workflow.signalWithStart(JOB_SLOTS_WORKFLOW, {
        workflowId: slotsId,
        taskQueue: ctx.info.taskQueue,
        args: [initial],
        signal: requestSlotSignal,
        signalArgs: [{ workflowId: input.workflowId, limit }],
      });
      return { slotsId };
    },

    /** Which of these jobs still run: a slot held by one that ended without giving it back is freed. */
    async runningJobs(workflowIds: string[]): Promise<string[]> {
      const client = Context.current().client;
      const running: string[] = [];
      for (const id of workflowIds) {
        const status = await client.workflow
          .getHandle(id)
          .describe()
          .then((d) => d.status.name)
          .catch((err) => (err instanceof WorkflowNotFoundError ? "GONE" : "UNKNOWN"));
        // A doubt (Temporal did not answer) keeps the slot held: it is looked at again a minute later.
        if (status === "RUNNING" || status === "UNKNOWN") running.push(id);
      }
      return running;
    },
  };
}

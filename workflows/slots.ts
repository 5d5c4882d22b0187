import {
  allHandlersFinished,
  CancellationScope,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  patched,
  proxyLocalActivities,
  setHandler,
  workflowInfo,
} from "@temporalio/workflow";
import type { CairnActivities } from "../activities/index.js";
import { releaseSlotSignal, requestSlotSignal, slotGrantedSignal, slotsQuery, type JobSlotsState, type JobStatus, type RepositoryTarget } from "./messages.js";

/** Local activities (as in Temporal's mutex samples): quick calls to Temporal itself, not steps of the job. */
const { requestJobSlot, runningJobs } = proxyLocalActivities<CairnActivities>({
  startToCloseTimeout: "1 minute",
  retry: { initialInterval: "2s", maximumAttempts: 10 },
});

/**
 * Runs a job's work in its concurrency slots: one of its repository's (when the
 * repository has maxConcurrentJobs) and then one of the global pool (when the workers
 * have CAIRN_MAX_JOBS), always in that order so two jobs never wait on each other.
 * While it waits the job's phase is "waiting"; the slots are given back however the
 * work ends, cancellation included.
 */
export async function inJobSlots<T>(repository: RepositoryTarget, status: JobStatus, work: () => Promise<T>): Promise<T> {
  // Jobs started before slots existed replay without them.
  if (!patched("job-slots")) return work();
  const granted = new Set<string>();
  setHandler(slotGrantedSignal, (slotsId) => void granted.add(slotsId));
  const held: string[] = [];
  const workflowId = workflowInfo().workflowId;
  try {
    for (const scope of ["repository", "global"] as const) {
      const { slotsId } = await requestJobSlot({ scope, repositoryId: repository.id, limit: repository.maxConcurrentJobs, workflowId });
      if (!slotsId) continue;
      held.push(slotsId);
      if (granted.has(slotsId)) continue;
      const phase = status.phase;
      status.phase = "waiting";
      status.waitingFor = scope === "repository" ? `a slot of repository ${repository.id} (maxConcurrentJobs ${repository.maxConcurrentJobs})` : "a slot of the global limit (CAIRN_MAX_JOBS)";
      await condition(() => granted.has(slotsId));
      status.phase = phase;
      status.waitingFor = undefined;
    }
    return await work();
  } finally {
    await CancellationScope.nonCancellable(async () => {
      for (const slotsId of held.reverse()) await getExternalWorkflowHandle(slotsId).signal(releaseSlotSignal, workflowId).catch(() => undefined);
    });
  }
}

/**
 * Hands out `limit` slots, first come first served. A holder that ended without
 * giving its slot back (a terminated job) is found by asking Temporal which holders
 * still run while others wait. It never ends on its own (ending races with a request
 * arriving); it continues as new when its history grows long.
 */
export async function jobSlotsWorkflow(state: JobSlotsState): Promise<void> {
  let changed = false;
  setHandler(slotsQuery, () => state);
  setHandler(requestSlotSignal, ({ workflowId, limit }) => {
    state.limit = limit;
    // A request sent again (a retried activity) is granted again if it holds a slot already.
    if (state.holders.includes(workflowId)) regrant.push(workflowId);
    else if (!state.waiting.includes(workflowId)) state.waiting.push(workflowId);
    changed = true;
  });
  setHandler(releaseSlotSignal, (workflowId) => {
    state.holders = state.holders.filter((id) => id !== workflowId);
    state.waiting = state.waiting.filter((id) => id !== workflowId);
    changed = true;
  });
  const regrant: string[] = [];
  const grant = async (workflowId: string) => {
    // A job that is gone cannot use its slot: it goes back to the pool.
    await getExternalWorkflowHandle(workflowId)
      .signal(slotGrantedSignal, state.key)
      .catch(() => (state.holders = state.holders.filter((id) => id !== workflowId)));
  };
  for (;;) {
    changed = false;
    while (state.holders.length < state.limit && state.waiting.length) {
      const next = state.waiting.shift()!;
      state.holders.push(next);
      await grant(next);
    }
    for (const id of regrant.splice(0)) await grant(id);
    if (workflowInfo().continueAsNewSuggested) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof jobSlotsWorkflow>(state);
    }
    const waiting = state.waiting.length > 0;
    if (await condition(() => changed, waiting ? "1 minute" : "1 hour")) continue;
    if (waiting) {
      const running = new Set(await runningJobs(state.holders));
      state.holders = state.holders.filter((id) => running.has(id));
    }
  }
}

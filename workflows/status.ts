import { isCancellation, patched, setHandler, upsertSearchAttributes, workflowInfo } from "@temporalio/workflow";
import { progressSignal, SEARCH_ATTRIBUTE_KEYS, statusQuery, type JobKind, type JobOutcome, type JobStatus } from "./messages.js";

/**
 * The job's status as the `status` query answers it: the workflow moves `phase`
 * along, and running activities send their progress by signal.
 */
export function trackStatus(kind: JobKind): JobStatus {
  const status: JobStatus = {
    kind,
    phase: "queued",
    progress: { filesDone: 0, bytesDone: 0, bytesTotal: 0, bytesPerSecond: 0, etaSeconds: null },
    warnings: [],
  };
  setHandler(statusQuery, () => status);
  setHandler(progressSignal, (progress) => {
    status.progress = progress;
  });
  ensureSearchAttributes({ kind });
  return status;
}

/**
 * Sets the search attributes the starter did not set (the API sets them all; a
 * workflow started by hand or by an older schedule may lack some), so visibility
 * queries and the Web UI find every job by kind and plan.
 */
export function ensureSearchAttributes(values: Partial<Record<keyof typeof SEARCH_ATTRIBUTE_KEYS, string>>): void {
  const current = workflowInfo().typedSearchAttributes;
  const missing = (Object.keys(values) as (keyof typeof SEARCH_ATTRIBUTE_KEYS)[])
    .filter((name) => values[name] !== undefined && current.get(SEARCH_ATTRIBUTE_KEYS[name]) === undefined)
    .map((name) => ({ key: SEARCH_ATTRIBUTE_KEYS[name], value: values[name]! }));
  if (missing.length) upsertSearchAttributes(missing);
}

/**
 * Runs a job's work with the search attributes an operator filters on in the Web UI:
 * CairnRepository (the repository it works on) from the start, and CairnOutcome
 * (completed, failed, cancelled) set as it ends, so `CairnOutcome = "failed" AND
 * CairnPlan = "<plan id>"` lists a plan's failed jobs.
 */
export async function asJob<T>(repositoryId: string, work: () => Promise<T>): Promise<T> {
  // Jobs started before these attributes existed replay without them.
  if (patched("job-repository-attribute")) ensureSearchAttributes({ repository: repositoryId });
  let outcome: JobOutcome = "failed";
  try {
    const result = await work();
    outcome = "completed";
    return result;
  } catch (err) {
    if (isCancellation(err)) outcome = "cancelled";
    throw err;
  } finally {
    if (patched("job-outcome-attribute")) upsertSearchAttributes([{ key: SEARCH_ATTRIBUTE_KEYS.outcome, value: outcome }]);
  }
}

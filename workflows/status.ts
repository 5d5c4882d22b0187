import { setHandler, upsertSearchAttributes, workflowInfo } from "@temporalio/workflow";
import { progressSignal, SEARCH_ATTRIBUTE_KEYS, statusQuery, type JobKind, type JobStatus } from "./messages.js";

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

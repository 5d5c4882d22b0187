/**
 * A finished job's history for the catalog: its steps (one per activity, with
 * timings and attempts) and a log, both read from the workflow's Temporal event
 * history, so neither the worker nor the catalog has to be reached while it runs.
 */
import type { Client } from "@temporalio/client";
import { defaultPayloadConverter } from "@temporalio/common";
import type { temporal } from "@temporalio/proto";
import type { JobLogLine, JobStepRecord } from "../db/schema.js";
import type { JobProgress } from "../workflows/messages.js";
import { withTemporal } from "./temporal.js";

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
type Failure = temporal.api.failure.v1.IFailure;

/** Activity type -> the step it is, as the job's phase names it. */
const STEP_NAMES: Record<string, string> = {
  prepareBackup: "prepare",
  snapshotBackup: "snapshot",
  verifyBackup: "verify",
  replicateSnapshot: "replicate",
  applyRetention: "retention",
  recordRun: "record",
  notify: "notify",
  sendNotification: "notify",
  restoreSnapshot: "restore",
  checkRepository: "check",
  pruneRepository: "prune",
  verifySnapshotRef: "verify",
  copySnapshot: "copy",
};

export interface JobHistory {
  steps: JobStepRecord[];
  log: JobLogLine[];
  /** The most attempts any step took (1 when nothing was retried, 0 when no step ran). */
  attempts: number;
  /** The snapshot a backup's snapshot step made (also known when a later step failed). */
  snapshotId?: string;
  /** The last progress a step signalled (a cancelled step signals how far it got before it ends). */
  lastProgress?: JobProgress;
}

/** Steps, log and attempts from a workflow's event history (a pure function of the events). */
export function readHistory(events: readonly HistoryEvent[]): JobHistory {
  const steps: JobStepRecord[] = [];
  const log: JobLogLine[] = [];
  const scheduled = new Map<string, { name: string; at: Date; attempt: number }>();
  let snapshotId: string | undefined;
  let lastProgress: JobProgress | undefined;
  const say = (at: Date, level: JobLogLine["level"], message: string) => log.push({ time: at.toISOString(), level, message });

  for (const event of events) {
    const at = eventTime(event);
    const a = event;
    if (a.workflowExecutionStartedEventAttributes) {
      const s = a.workflowExecutionStartedEventAttributes;
      say(at, "info", `job started: ${s.workflowType?.name} on task queue ${s.taskQueue?.name}${(s.attempt ?? 1) > 1 ? ` (workflow attempt ${s.attempt})` : ""}`);
    } else if (a.activityTaskScheduledEventAttributes) {
      const name = a.activityTaskScheduledEventAttributes.activityType?.name ?? "activity";
      scheduled.set(String(event.eventId), { name, at, attempt: 1 });
      say(at, "info", `step ${STEP_NAMES[name] ?? name} scheduled`);
    } else if (a.activityTaskStartedEventAttributes) {
      // Written once per step, when it ends, carrying the last attempt's number.
      const s = a.activityTaskStartedEventAttributes;
      const step = scheduled.get(String(s.scheduledEventId));
      if (step) step.attempt = s.attempt ?? 1;
      if (s.lastFailure && step) say(at, "warn", `step ${STEP_NAMES[step.name] ?? step.name} attempt ${(s.attempt ?? 2) - 1} failed: ${innermost(s.lastFailure)}; retried`);
    } else {
      const closing =
        (a.activityTaskCompletedEventAttributes && { outcome: "completed" as const, id: a.activityTaskCompletedEventAttributes.scheduledEventId, result: a.activityTaskCompletedEventAttributes.result }) ||
        (a.activityTaskFailedEventAttributes && { outcome: "failed" as const, id: a.activityTaskFailedEventAttributes.scheduledEventId, failure: a.activityTaskFailedEventAttributes.failure }) ||
        (a.activityTaskTimedOutEventAttributes && { outcome: "timed-out" as const, id: a.activityTaskTimedOutEventAttributes.scheduledEventId, failure: a.activityTaskTimedOutEventAttributes.failure }) ||
        (a.activityTaskCanceledEventAttributes && { outcome: "cancelled" as const, id: a.activityTaskCanceledEventAttributes.scheduledEventId });
      if (closing) {
        const step = scheduled.get(String(closing.id));
        if (!step) continue;
        scheduled.delete(String(closing.id));
        const name = STEP_NAMES[step.name] ?? step.name;
        const durationSeconds = Math.max(0, (at.getTime() - step.at.getTime()) / 1000);
        const error = "failure" in closing && closing.failure ? innermost(closing.failure) : undefined;
        steps.push({ name, startedAt: step.at.toISOString(), finishedAt: at.toISOString(), durationSeconds, attempts: step.attempt, outcome: closing.outcome, ...(error ? { error } : {}) });
        const tries = step.attempt > 1 ? ` after ${step.attempt} attempts` : "";
        if (closing.outcome === "completed") {
          say(at, "info", `step ${name} completed in ${durationSeconds.toFixed(1)} s${tries}`);
          if (step.name === "snapshotBackup") snapshotId = payloadField(closing.result?.payloads?.[0], "snapshotId") ?? snapshotId;
        } else if (closing.outcome === "cancelled") say(at, "warn", `step ${name} cancelled after ${durationSeconds.toFixed(1)} s`);
        else say(at, "error", `step ${name} ${closing.outcome === "failed" ? "failed" : "timed out"}${tries}: ${error ?? "no reason given"}`);
        continue;
      }
      if (a.workflowExecutionSignaledEventAttributes?.signalName === "progress") {
        const payload = a.workflowExecutionSignaledEventAttributes.input?.payloads?.[0];
        try {
          if (payload) {
            const progress = defaultPayloadConverter.fromPayload<JobProgress>(payload);
            if (progress.stopping && !lastProgress?.stopping) say(at, "warn", "the worker received the cancellation: the step stops at its next safe point");
            lastProgress = progress;
          }
        } catch {
          // not ours to read: keep the previous one
        }
        continue;
      }
      if (a.workflowExecutionSignaledEventAttributes?.signalName === "slotGranted") {
        const payload = a.workflowExecutionSignaledEventAttributes.input?.payloads?.[0];
        say(at, "info", `got a slot of ${payload ? defaultPayloadConverter.fromPayload<string>(payload) : "a concurrency limit"}`);
        continue;
      }
      if (a.workflowExecutionCompletedEventAttributes) {
        say(at, "info", "job completed");
        for (const w of payloadField<string[]>(a.workflowExecutionCompletedEventAttributes.result?.payloads?.[0], "warnings") ?? []) say(at, "warn", w);
      } else if (a.workflowExecutionFailedEventAttributes) say(at, "error", `job failed: ${innermost(a.workflowExecutionFailedEventAttributes.failure)}`);
      else if (a.workflowExecutionTimedOutEventAttributes) say(at, "error", "job timed out (its workflow execution timeout passed)");
      else if (a.workflowExecutionCanceledEventAttributes) say(at, "warn", "job cancelled");
      else if (a.workflowExecutionCancelRequestedEventAttributes) say(at, "warn", "cancellation requested");
      else if (a.workflowExecutionTerminatedEventAttributes) say(at, "error", `job terminated${a.workflowExecutionTerminatedEventAttributes.reason ? `: ${a.workflowExecutionTerminatedEventAttributes.reason}` : ""}`);
      else if (a.workflowExecutionContinuedAsNewEventAttributes) say(at, "info", "job continued as a new run");
    }
  }
  return { steps, log, attempts: steps.reduce((m, s) => Math.max(m, s.attempts), 0), ...(snapshotId ? { snapshotId } : {}), ...(lastProgress ? { lastProgress } : {}) };
}

/** The job's history as recorded (finished jobs) or as it stands (running ones). */
export async function fetchJobHistory(client: Client, id: string): Promise<JobHistory> {
  const history = await withTemporal(client, () => client.workflow.getHandle(id).fetchHistory());
  return readHistory(history.events ?? []);
}

function eventTime(event: HistoryEvent): Date {
  const ts = event.eventTime;
  if (!ts) return new Date(0);
  const seconds = typeof ts.seconds === "number" ? ts.seconds : Number(ts.seconds ?? 0);
  return new Date(seconds * 1000 + Math.floor((ts.nanos ?? 0) / 1e6));
}

/** The deepest cause's message: the activity's own error rather than "Activity task failed". */
function innermost(failure: Failure | null | undefined): string {
  let f = failure;
  while (f?.cause) f = f.cause;
  return f?.message ?? "no reason given";
}

function payloadField<T = string>(payload: temporal.api.common.v1.IPayload | undefined, field: string): T | undefined {
  if (!payload) return undefined;
  try {
    const value = defaultPayloadConverter.fromPayload<Record<string, unknown>>(payload);
    return (value && typeof value === "object" ? value[field] : undefined) as T | undefined;
  } catch {
    return undefined;
  }
}

import { defaultPayloadConverter, isGrpcServiceError, WorkflowNotFoundError, type Client, type WorkflowExecutionDescription, type WorkflowExecutionStatusName } from "@temporalio/client";
import { eq, inArray } from "drizzle-orm";
import type { Catalog } from "../db/client.js";
import { jobs, type JobStatusName, type JobStepRecord } from "../db/schema.js";
import { JOB_KINDS, SEARCH_ATTRIBUTE_KEYS, SEARCH_ATTRIBUTES, statusQuery, type BackupResult, type DrillResult, type JobKind, type JobPhase, type JobProgress, type JobStatus, type RestoreResult } from "../workflows/messages.js";
import { ApiError } from "./errors.js";
import { fetchJobHistory } from "./history.js";
import { badCursor } from "./pagination.js";
import { TASK_QUEUE } from "../workflows/messages.js";
import { idTime, searchAttributes, withTemporal } from "./temporal.js";

/** A job as the API shows it: a Temporal workflow with its phase and live progress. */
export interface JobView {
  id: string;
  kind: JobKind;
  status: JobStatusName;
  phase: JobPhase;
  progress: JobProgress;
  planId?: string;
  snapshotId?: string;
  error?: string;
  warnings: string[];
  /** While the phase is "waiting": the concurrency slot the job waits for. */
  waitingFor?: string;
  startedAt: string;
  finishedAt?: string;
  result?: unknown;
  /** Finished jobs: each step's timing and attempts, from the Temporal history. */
  steps?: JobStepRecord[];
  /** Finished jobs: the most attempts any step took. */
  attempts?: number;
}

export type JobSummary = Pick<JobView, "id" | "kind" | "status" | "planId" | "snapshotId" | "error" | "startedAt" | "finishedAt" | "attempts">;

const NO_PROGRESS: JobProgress = { filesDone: 0, bytesDone: 0, bytesTotal: 0, bytesPerSecond: 0, etaSeconds: null };
/** Jobs on a repository the API starts are named `<kind>-<repository id>-<time>`: a scoped token sees those of its repositories. */
export const REPOSITORY_JOB_PREFIXES = ["restore", "verify", "check", "prune", "copy"] as const;

const STATUS: Partial<Record<WorkflowExecutionStatusName, JobStatusName>> = {
  COMPLETED: "completed",
  CONTINUED_AS_NEW: "completed",
  FAILED: "failed",
  TIMED_OUT: "failed",
  TERMINATED: "failed",
  CANCELLED: "cancelled",
};

/** Temporal visibility names for each API status filter. */
const STATUS_QUERY: Record<JobStatusName, string> = {
  running: "ExecutionStatus = 'Running'",
  completed: "ExecutionStatus IN ('Completed', 'ContinuedAsNew')",
  failed: "ExecutionStatus IN ('Failed', 'TimedOut', 'Terminated')",
  cancelled: "ExecutionStatus = 'Canceled'",
};

/** The jobs a scoped token may see: backups of its plans, restores, checks, prunes and copies of its repositories (the ids the API gives them). */
export interface JobOwners {
  planIds: string[];
  repositoryIds: string[];
}

/** A visibility query over Cairn's search attributes: the same filter works in the Temporal Web UI. */
export function jobsQuery(filter: { status?: JobStatusName; planId?: string; kind?: JobKind }, owners?: JobOwners): string {
  const parts = [filter.kind ? `CairnKind = '${filter.kind}'` : `CairnKind IN (${JOB_KINDS.map((k) => `'${k}'`).join(", ")})`];
  if (filter.planId) parts.push(`CairnPlan = '${filter.planId}'`);
  if (filter.status) parts.push(STATUS_QUERY[filter.status]);
  if (owners) {
    // Ids are hex from the catalog, never caller input, so they are safe inside the query.
    const any = [
      ...(owners.planIds.length ? [`CairnPlan IN (${owners.planIds.map((id) => `'${id}'`).join(", ")})`] : []),
      ...owners.repositoryIds.flatMap((id) => REPOSITORY_JOB_PREFIXES.map((kind) => `WorkflowId STARTS_WITH '${kind}-${id}-'`)),
    ];
    parts.push(any.length ? `(${any.join(" OR ")})` : "CairnKind = 'none'");
  }
  return parts.join(" AND ");
}

const STATUS_CODES: Record<number, JobStatusName> = { 1: "running", 2: "completed", 3: "failed", 4: "cancelled", 5: "failed", 6: "completed", 7: "failed" };

/**
 * One page of jobs, newest first, with what the catalog mirror knows of finished
 * ones; `pageToken` is Temporal's own, which callers see only wrapped (PageTokens).
 */
export async function listJobs(
  catalog: Catalog,
  client: Client,
  query: string,
  limit: number,
  pageToken?: Uint8Array,
): Promise<{ jobs: JobSummary[]; nextPageToken: Uint8Array | null }> {
  const response = await withTemporal(client, () =>
    client.workflowService.listWorkflowExecutions({
      namespace: client.options.namespace,
      query,
      pageSize: limit,
      ...(pageToken ? { nextPageToken: pageToken } : {}),
    }),
  ).catch((err) => {
    // INVALID_ARGUMENT: a token we gave out that Temporal no longer takes (its visibility store was reset).
    if (isGrpcServiceError(err) && err.code === 3 && pageToken) throw badCursor();
    throw err;
  });
  const found: JobSummary[] = (response.executions ?? []).map((wf) => ({
    id: wf.execution!.workflowId!,
    kind: keyword(wf.searchAttributes?.indexedFields?.[SEARCH_ATTRIBUTES.kind]) as JobKind,
    status: STATUS_CODES[wf.status ?? 1] ?? "running",
    planId: keyword(wf.searchAttributes?.indexedFields?.[SEARCH_ATTRIBUTES.plan]),
    startedAt: timestamp(wf.startTime)!.toISOString(),
    finishedAt: timestamp(wf.closeTime)?.toISOString(),
  }));
  const token = response.nextPageToken?.length ? response.nextPageToken : null;
  if (!found.length) return { jobs: found, nextPageToken: token };
  const mirrored = new Map((await catalog.select().from(jobs).where(inArray(jobs.id, found.map((j) => j.id)))).map((row) => [row.id, row]));
  return {
    jobs: found.map((j) => {
      const row = mirrored.get(j.id);
      return row ? { ...j, snapshotId: row.snapshotId ?? undefined, error: row.error ?? undefined, attempts: row.attempts ?? undefined } : j;
    }),
    nextPageToken: token,
  };
}

function keyword(payload: Parameters<typeof defaultPayloadConverter.fromPayload>[0] | undefined): string | undefined {
  if (!payload) return undefined;
  const value = defaultPayloadConverter.fromPayload<string | string[]>(payload);
  return Array.isArray(value) ? value[0] : value;
}

function timestamp(ts: { seconds?: { toNumber(): number } | number | null; nanos?: number | null } | null | undefined): Date | undefined {
  if (!ts) return undefined;
  const seconds = typeof ts.seconds === "number" ? ts.seconds : (ts.seconds?.toNumber() ?? 0);
  return new Date(seconds * 1000 + Math.floor((ts.nanos ?? 0) / 1e6));
}

/**
 * One job: from the catalog mirror when it finished earlier, otherwise from
 * Temporal (status query for phase and warnings, the running activity's
 * heartbeat for live byte counts). A finished job the recorder (api/recorder.ts)
 * has not written yet is recorded now, with its steps and log.
 */
export async function readJob(catalog: Catalog, client: Client, id: string): Promise<JobView> {
  const [row] = await catalog.select().from(jobs).where(eq(jobs.id, id));
  if (row) {
    return {
      id: row.id,
      kind: row.kind,
      status: row.status,
      phase: row.phase,
      progress: row.progress,
      planId: row.planId ?? undefined,
      snapshotId: row.snapshotId ?? undefined,
      error: row.error ?? undefined,
      warnings: ((row.result as { warnings?: string[] } | null)?.warnings ?? []),
      startedAt: row.startedAt.toISOString(),
      finishedAt: row.finishedAt?.toISOString(),
      result: row.result ?? undefined,
      steps: row.steps ?? undefined,
      attempts: row.attempts ?? undefined,
    };
  }
  const handle = client.workflow.getHandle(id);
  const desc = await withTemporal(client, () => handle.describe()).catch((err) => {
    if (err instanceof WorkflowNotFoundError) throw notFound(id);
    throw err;
  });
  const kind = desc.typedSearchAttributes.get(SEARCH_ATTRIBUTE_KEYS.kind) as JobKind | undefined;
  if (!kind) throw notFound(id); // a workflow, but not one of Cairn's jobs
  const status = STATUS[desc.status.name] ?? "running";
  const view: JobView = {
    id,
    kind,
    status,
    phase: status === "completed" ? "done" : "queued",
    progress: NO_PROGRESS,
    planId: desc.typedSearchAttributes.get(SEARCH_ATTRIBUTE_KEYS.plan),
    warnings: [],
    startedAt: desc.startTime.toISOString(),
    finishedAt: desc.closeTime?.toISOString(),
  };
  if (status === "running") {
    const reported = await queryStatus(client, id);
    if (reported) Object.assign(view, { phase: reported.phase, progress: reported.progress, snapshotId: reported.snapshotId, warnings: reported.warnings, ...(reported.waitingFor ? { waitingFor: reported.waitingFor } : {}) });
    const live = heartbeatProgress(desc);
    // Counts come fresher from the heartbeat; that the step heard the cancellation only the workflow knows.
    if (live) view.progress = { ...live, ...(reported?.progress.stopping ? { stopping: true } : {}) };
    return view;
  }
  await settle(client, id, view);
  const history = await fetchJobHistory(client, id);
  view.steps = history.steps;
  view.attempts = history.attempts;
  view.snapshotId ??= history.snapshotId;
  // A job that did not complete keeps how far it got: its status query when a worker answered it, else the last progress its step signalled.
  if (view.status !== "completed" && view.progress === NO_PROGRESS && history.lastProgress) view.progress = history.lastProgress;
  if (view.status !== "completed" && history.steps.length) view.phase = lastPhase(history.steps, view.phase);
  if (view.kind === "restore" && view.status === "completed") view.progress = withStepRate(view.progress, history.steps, "restore");
  await catalog
    .insert(jobs)
    .values({
      id,
      runId: desc.runId,
      kind,
      planId: view.planId ?? null,
      status,
      phase: view.phase,
      progress: view.progress,
      snapshotId: view.snapshotId ?? null,
      error: view.error ?? null,
      result: view.result ?? null,
      startedAt: desc.startTime,
      finishedAt: desc.closeTime ?? new Date(),
      steps: history.steps,
      log: history.log,
      attempts: history.attempts,
    })
    .onConflictDoNothing();
  return view;
}

/** A finished job's progress with its rate over the time its step took (its result has the bytes but not the time). */
function withStepRate(progress: JobProgress, steps: JobStepRecord[], name: string): JobProgress {
  const step = steps.filter((s) => s.name === name && s.outcome === "completed").at(-1);
  if (!step || step.durationSeconds <= 0) return progress;
  return { ...progress, bytesPerSecond: Math.round(progress.bytesDone / step.durationSeconds) };
}

/** The step a job that did not complete stopped in: the status query's phase when a worker answered, else its last step. */
function lastPhase(steps: JobStepRecord[], reported: JobPhase): JobPhase {
  if (reported !== "queued") return reported;
  return (steps.at(-1)!.name as JobPhase) ?? reported;
}

/** Fills a finished job's outcome: the result of a completed one, the reason and last phase of a failed one. */
async function settle(client: Client, id: string, view: JobView): Promise<void> {
  const handle = client.workflow.getHandle(id);
  try {
    const result = await withTemporal(client, () => handle.result());
    view.result = result;
    Object.assign(view, outcome(view.kind, result));
  } catch (err) {
    if (err instanceof ApiError || view.status === "completed") throw err;
    view.error = innermostMessage(err);
    const reported = await queryStatus(client, id);
    if (reported) Object.assign(view, { phase: reported.phase, progress: reported.progress, snapshotId: reported.snapshotId, warnings: reported.warnings });
  }
}

function outcome(kind: JobKind, result: unknown): Partial<JobView> {
  if (kind === "backup") {
    const r = result as BackupResult;
    const files = r.filesNew + r.filesChanged + r.filesUnmodified;
    const rate = r.durationSeconds > 0 ? Math.round(r.bytesProcessed / r.durationSeconds) : 0;
    return { snapshotId: r.snapshotId, warnings: r.warnings, progress: { filesDone: files, bytesDone: r.bytesProcessed, bytesTotal: r.bytesProcessed, bytesPerSecond: rate, etaSeconds: 0 } };
  }
  if (kind === "restore") {
    const r = result as RestoreResult;
    return { warnings: r.warnings, progress: { filesDone: r.files, bytesDone: r.bytesWritten, bytesTotal: r.totalBytes, bytesPerSecond: 0, etaSeconds: 0 } };
  }
  if (kind === "drill") {
    const r = result as DrillResult;
    return { snapshotId: r.snapshotId, warnings: r.warnings, progress: { filesDone: r.filesVerified, bytesDone: r.bytes, bytesTotal: r.bytes, bytesPerSecond: 0, etaSeconds: 0 } };
  }
  const warnings = (result as { warnings?: string[] } | null)?.warnings;
  return warnings ? { warnings } : {};
}

/** The workflow's own account of itself; absent when no worker answers in time (the job is then shown as queued). */
async function queryStatus(client: Client, id: string): Promise<JobStatus | undefined> {
  try {
    return await withTemporal(client, () => client.workflow.getHandle(id).query(statusQuery), 3000);
  } catch {
    return undefined;
  }
}

/**
 * Live counts from the running activity's last heartbeat: a JobProgress, or
 * (the snapshot step) an object carrying one under `progress` beside its resume point.
 */
export function heartbeatProgress(desc: WorkflowExecutionDescription): JobProgress | undefined {
  for (const activity of desc.raw.pendingActivities ?? []) {
    const payload = activity.heartbeatDetails?.payloads?.[0];
    if (!payload) continue;
    const details = defaultPayloadConverter.fromPayload<Partial<JobProgress> & { progress?: Partial<JobProgress> }>(payload);
    const p = typeof details?.progress?.bytesDone === "number" ? details.progress : details;
    if (typeof p?.bytesDone !== "number") continue;
    return {
      filesDone: p.filesDone ?? 0,
      bytesDone: p.bytesDone,
      bytesTotal: p.bytesTotal ?? 0,
      bytesPerSecond: p.bytesPerSecond ?? 0,
      etaSeconds: p.etaSeconds ?? null,
    };
  }
  return undefined;
}

/** The message of the deepest cause: the activity's own error rather than "Activity task failed". */
export function innermostMessage(err: unknown): string {
  let e = err as Error | undefined;
  while (e && e.cause instanceof Error) e = e.cause;
  return e?.message ?? String(err);
}

function notFound(id: string): ApiError {
  return ApiError.notFound("job", id, "list jobs with GET /v1/jobs");
}

/**
 * Starts a failed or cancelled job again with the same input (read from the first
 * event of its history: repository passwords stay sealed), the same search
 * attributes and priority; the new job's memo names the one it retries.
 */
export async function retryJob(catalog: Catalog, client: Client, id: string, now = new Date()): Promise<{ jobId: string; retryOf: string }> {
  const job = await readJob(catalog, client, id);
  if (job.status !== "failed" && job.status !== "cancelled") {
    throw new ApiError(409, "Job not failed", `job ${id} is ${job.status}; only a failed or cancelled job can be retried (run the plan again with POST /v1/plans/{id}/run)`);
  }
  const history = await withTemporal(client, () => client.workflow.getHandle(id).fetchHistory());
  const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
  if (!started?.workflowType?.name) throw new ApiError(409, "Job cannot be retried", `Temporal no longer holds the input of job ${id} (its history is past the namespace's retention); start the work again from its plan`);
  const args = (started.input?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(p));
  const owner = /^(backup|restore|verify|check|prune|copy|drill)-([0-9a-f]+)-/.exec(id);
  const jobId = owner ? `${owner[1]}-${owner[2]}-${idTime(now)}` : `${job.kind}-${idTime(now)}`;
  const source = (args[0] as { source?: { type?: string } } | undefined)?.source?.type;
  await withTemporal(client, () =>
    client.workflow.start(started.workflowType!.name!, {
      workflowId: jobId,
      taskQueue: started.taskQueue?.name ?? TASK_QUEUE,
      args,
      typedSearchAttributes: searchAttributes(job.kind, job.planId, source),
      memo: { retryOf: id },
      ...(started.priority?.priorityKey ? { priority: { priorityKey: started.priority.priorityKey } } : {}),
      ...(started.workflowExecutionTimeout?.seconds ? { workflowExecutionTimeout: Number(started.workflowExecutionTimeout.seconds) * 1000 } : {}),
    }),
  );
  return { jobId, retryOf: id };
}

import { createRoute, z } from "@hono/zod-openapi";
import { WorkflowNotFoundError } from "@temporalio/client";
import type { AppDeps } from "../app.js";
import { scopedPlanIds } from "../access.js";
import { ApiError } from "../errors.js";
import { nextCursor, PageQuery, PageTokens } from "../pagination.js";
import { jobs } from "../../db/schema.js";
import { eq } from "drizzle-orm";
import { fetchJobHistory } from "../history.js";
import { jobsQuery, listJobs, readJob, retryJob } from "../jobs.js";
import { queueView } from "../queue.js";
import { access, IdParam, json, problems, router } from "../openapi.js";
import { withTemporal } from "../temporal.js";

const Kind = z.enum(["backup", "restore", "verify", "check", "prune", "copy", "recovery", "drill"]);
const Status = z.enum(["running", "completed", "failed", "cancelled"]);

const Progress = z
  .object({
    filesDone: z.number(),
    bytesDone: z.number(),
    bytesTotal: z.number().openapi({ description: "0 while the total is not known yet." }),
    bytesPerSecond: z.number(),
    etaSeconds: z.number().nullable(),
    stopping: z.boolean().optional().openapi({ description: "true once the worker running the step has received the job's cancellation: it stops at its next safe point (between packs or files)." }),
  })
  .openapi("JobProgress");

const JobSummary = z
  .object({
    id: z.string(),
    kind: Kind,
    status: Status,
    planId: z.string().optional(),
    snapshotId: z.string().optional(),
    error: z.string().optional().openapi({ description: "Why a failed job failed: the innermost cause, as the failing step reported it." }),
    attempts: z.number().int().optional().openapi({ description: "Finished jobs: the most attempts any step took (1 when nothing was retried)." }),
    startedAt: z.string(),
    finishedAt: z.string().optional(),
    workflowUrl: z.string().optional().openapi({ description: "The job's workflow in the Temporal Web UI, when the API knows where that runs (CAIRN_TEMPORAL_UI_URL)." }),
  })
  .openapi("JobSummary");

const Step = z
  .object({
    name: z.string().openapi({ example: "snapshot" }),
    startedAt: z.string(),
    finishedAt: z.string(),
    durationSeconds: z.number().openapi({ description: "From the step's scheduling to its end: waiting for a worker and retries included." }),
    attempts: z.number().int(),
    outcome: z.enum(["completed", "failed", "timed-out", "cancelled"]),
    error: z.string().optional(),
  })
  .openapi("JobStep");

const LogLine = z.object({ time: z.string(), level: z.enum(["info", "warn", "error"]), message: z.string() }).openapi("JobLogLine");

const Job = JobSummary.extend({
  phase: z.string().openapi({
    example: "snapshot",
    description: "queued, waiting (for a concurrency slot: see waitingFor), prepare, snapshot, verify, replicate, retention, record, notify, restore, check, prune, copy or done.",
  }),
  waitingFor: z.string().optional().openapi({ description: "While the phase is waiting: the slot the job waits for (its repository's maxConcurrentJobs, or the global CAIRN_MAX_JOBS)." }),
  progress: Progress,
  warnings: z.array(z.string()),
  result: z.unknown().optional().openapi({ description: "The workflow's result once it completed (BackupResult, RestoreResult, ...)." }),
  steps: z.array(Step).optional().openapi({ description: "Finished jobs: each step with its duration and attempts." }),
}).openapi("Job");

const JobFilter = z.object({
  status: Status.optional(),
  planId: z
    .string()
    .max(100)
    .regex(/^[A-Za-z0-9_-]{1,100}$/, "a plan id is letters, digits, - and _ (from GET /v1/plans)")
    .optional(),
  kind: Kind.optional(),
  ...PageQuery.shape,
});

const list = createRoute({
  method: "get",
  path: "/jobs",
  operationId: "listJobs",
  summary: "List jobs, newest first, a page at a time (a visibility query on CairnKind/CairnPlan, the same filter the Temporal Web UI takes)",
  tags: ["jobs"],
  ...access("jobs:read"),
  request: { query: JobFilter },
  responses: { 200: json(z.object({ jobs: z.array(JobSummary), query: z.string(), nextCursor }), "A page of matching jobs (those of the token's scope)."), ...problems(400) },
});
const get = createRoute({
  method: "get",
  path: "/jobs/{id}",
  operationId: "getJob",
  summary: "One job with its phase and live progress",
  tags: ["jobs"],
  ...access("jobs:read", { resource: "job", in: "param", field: "id" }),
  request: { params: IdParam },
  responses: { 200: json(Job, "The job."), ...problems(404) },
});
const logs = createRoute({
  method: "get",
  path: "/jobs/{id}/logs",
  operationId: "getJobLogs",
  summary: "A job's log: each step scheduled, retried, completed or failed, warnings and the outcome (kept in the catalog once the job finished)",
  tags: ["jobs"],
  ...access("jobs:read", { resource: "job", in: "param", field: "id" }),
  request: { params: IdParam },
  responses: { 200: json(z.object({ id: z.string(), status: Status, lines: z.array(LogLine) }), "The job's log, oldest line first."), ...problems(404) },
});
const retry = createRoute({
  method: "post",
  path: "/jobs/{id}/retry",
  operationId: "retryJob",
  summary: "Run a failed or cancelled job again with the same input (a new job; its memo names the one it retries)",
  tags: ["jobs"],
  ...access("jobs:retry", { resource: "job", in: "param", field: "id" }),
  request: { params: IdParam },
  responses: { 202: json(z.object({ jobId: z.string(), retryOf: z.string() }), "The new job started."), ...problems(404, 409) },
});
const queue = createRoute({
  method: "get",
  path: "/queue",
  operationId: "getQueue",
  summary: "The job queue: tasks waiting for a worker (per priority), running jobs, and the jobs finished in the window with their mean duration and success rate",
  tags: ["jobs"],
  ...access("jobs:read"),
  request: { query: z.object({ windowHours: z.coerce.number().positive().max(24 * 366).default(24).openapi({ description: "Finished jobs counted over this many hours (default 24)." }) }) },
  responses: {
    200: json(
      z.object({
        pending: z
          .number()
          .int()
          .openapi({ description: "Work waiting: tasks waiting for a worker (Temporal's approximate backlog of the cairn task queue) plus jobs waiting for a concurrency slot; 0 for a scoped token." }),
        waitingForSlot: z.number().int().openapi({ description: "Jobs waiting for a concurrency slot (a repository's maxConcurrentJobs or the global CAIRN_MAX_JOBS); counted in pending." }),
        pendingByPriority: z.object({ high: z.number().int(), normal: z.number().int(), low: z.number().int() }),
        running: z.number().int(),
        completed: z.number().int(),
        failed: z.number().int(),
        cancelled: z.number().int(),
        averageDuration: z.number().nullable().openapi({ description: "Mean seconds of the window's completed jobs." }),
        successRate: z.number().nullable().openapi({ description: "completed / (completed + failed) over the window." }),
        windowHours: z.number(),
      }),
      "The queue now.",
    ),
    ...problems(400),
  },
});
const cancel = createRoute({
  method: "post",
  path: "/jobs/{id}/cancel",
  operationId: "cancelJob",
  summary: "Ask a running job to stop (it cleans up and ends as cancelled)",
  tags: ["jobs"],
  ...access("jobs:cancel", { resource: "job", in: "param", field: "id" }),
  request: { params: IdParam },
  responses: { 202: json(z.object({ id: z.string(), status: z.literal("cancelling") }), "Cancellation requested."), ...problems(404, 409) },
});

/** {ui}/namespaces/{namespace}/workflows/{workflowId}: where the Temporal Web UI shows a workflow (a job's id is its workflow id). */
export function workflowUrl(ui: string | undefined, namespace: string, workflowId: string): string | undefined {
  if (!ui) return undefined;
  return `${ui.replace(/\/+$/, "")}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

export function jobRoutes(deps: AppDeps) {
  const { catalog, temporal } = deps;
  const pageTokens = new PageTokens(deps.secretBox);
  const linked = <J extends { id: string }>(job: J): J & { workflowUrl?: string } => {
    const url = workflowUrl(deps.temporalUiUrl, temporal.options.namespace, job.id);
    return url ? { ...job, workflowUrl: url } : job;
  };
  return router()
    .openapi(list, async (c) => {
      const { limit, cursor, ...filter } = c.req.valid("query");
      const scope = c.get("principal").scope;
      const owners = scope ? { planIds: await scopedPlanIds(catalog, scope), repositoryIds: scope.repositoryIds ?? [] } : undefined;
      const query = jobsQuery(filter, owners);
      const { jobs, nextPageToken } = await listJobs(catalog, temporal, query, limit, cursor ? pageTokens.unwrap(query, cursor) : undefined);
      return c.json({ jobs: jobs.map(linked), nextCursor: nextPageToken ? pageTokens.wrap(query, nextPageToken) : null, query }, 200);
    })
    .openapi(get, async (c) => c.json(linked(await readJob(catalog, temporal, c.req.valid("param").id)), 200))
    .openapi(logs, async (c) => {
      const job = await readJob(catalog, temporal, c.req.valid("param").id);
      let lines = job.status === "running" ? (await fetchJobHistory(temporal, job.id)).log : undefined;
      if (!lines) {
        const [row] = await catalog.select({ log: jobs.log }).from(jobs).where(eq(jobs.id, job.id));
        // Jobs recorded before logs were kept have none stored; Temporal may still hold their history.
        lines = row?.log ?? (await fetchJobHistory(temporal, job.id).catch(() => ({ log: [] }))).log;
      }
      return c.json({ id: job.id, status: job.status, lines }, 200);
    })
    .openapi(retry, async (c) => c.json(await retryJob(catalog, temporal, c.req.valid("param").id), 202))
    .openapi(queue, async (c) => {
      const scope = c.get("principal").scope;
      const owners = scope ? { planIds: await scopedPlanIds(catalog, scope), repositoryIds: scope.repositoryIds ?? [] } : undefined;
      return c.json(await queueView(catalog, temporal, c.req.valid("query").windowHours, owners), 200);
    })
    .openapi(cancel, async (c) => {
      const job = await readJob(catalog, temporal, c.req.valid("param").id);
      if (job.status !== "running") throw new ApiError(409, "Job already finished", `job ${job.id} is ${job.status}; there is nothing to cancel`);
      await withTemporal(temporal, () => temporal.workflow.getHandle(job.id).cancel()).catch((err) => {
        if (err instanceof WorkflowNotFoundError) throw ApiError.notFound("job", job.id, "list jobs with GET /v1/jobs");
        throw err;
      });
      return c.json({ id: job.id, status: "cancelling" as const }, 202);
    });
}

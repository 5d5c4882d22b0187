import { createRoute, z } from "@hono/zod-openapi";
import { WorkflowNotFoundError } from "@temporalio/client";
import type { AppDeps } from "../app.js";
import { scopedPlanIds } from "../access.js";
import { ApiError } from "../errors.js";
import { nextCursor, PageQuery, PageTokens } from "../pagination.js";
import { jobsQuery, listJobs, readJob } from "../jobs.js";
import { access, IdParam, json, problems, router } from "../openapi.js";
import { withTemporal } from "../temporal.js";

const Kind = z.enum(["backup", "restore", "verify", "prune", "recovery"]);
const Status = z.enum(["running", "completed", "failed", "cancelled"]);

const Progress = z
  .object({
    filesDone: z.number(),
    bytesDone: z.number(),
    bytesTotal: z.number().openapi({ description: "0 while the total is not known yet." }),
    bytesPerSecond: z.number(),
    etaSeconds: z.number().nullable(),
  })
  .openapi("JobProgress");

const JobSummary = z
  .object({
    id: z.string(),
    kind: Kind,
    status: Status,
    planId: z.string().optional(),
    snapshotId: z.string().optional(),
    error: z.string().optional(),
    startedAt: z.string(),
    finishedAt: z.string().optional(),
  })
  .openapi("JobSummary");

const Job = JobSummary.extend({
  phase: z.string().openapi({ example: "snapshot", description: "queued, prepare, snapshot, verify, replicate, retention, record, notify, restore, check, prune or done." }),
  progress: Progress,
  warnings: z.array(z.string()),
  result: z.unknown().optional().openapi({ description: "The workflow's result once it completed (BackupResult, RestoreResult, ...)." }),
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

export function jobRoutes(deps: AppDeps) {
  const { catalog, temporal } = deps;
  const pageTokens = new PageTokens(deps.secretBox);
  return router()
    .openapi(list, async (c) => {
      const { limit, cursor, ...filter } = c.req.valid("query");
      const scope = c.get("principal").scope;
      const owners = scope ? { planIds: await scopedPlanIds(catalog, scope), repositoryIds: scope.repositoryIds ?? [] } : undefined;
      const query = jobsQuery(filter, owners);
      const { jobs, nextPageToken } = await listJobs(catalog, temporal, query, limit, cursor ? pageTokens.unwrap(query, cursor) : undefined);
      return c.json({ jobs, nextCursor: nextPageToken ? pageTokens.wrap(query, nextPageToken) : null, query }, 200);
    })
    .openapi(get, async (c) => c.json(await readJob(catalog, temporal, c.req.valid("param").id), 200))
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

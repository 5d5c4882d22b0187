import * as path from "node:path";
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from "@temporalio/client";
import { createRoute, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { plans } from "../../db/schema.js";
import { pathRefusal } from "../../policy/paths.js";
import { BINLOG_ARCHIVER_WORKFLOW, binlogArchiverWorkflowId, SAFE_DATA_DIR, SEARCH_ATTRIBUTE_KEYS, stopBinlogArchiverSignal, TASK_QUEUE, type BinlogArchiverInput } from "../../workflows/messages.js";
import type { AppDeps } from "../app.js";
import { readBinlogArchiver } from "../binlog-archivers.js";
import { ApiError } from "../errors.js";
import { LIMITS } from "../limits.js";
import { access, IdParam, json, jsonBody, problems, router } from "../openapi.js";
import { policyProblem } from "../policy.js";
import { repositoryTarget, type PlanRow } from "../schedules.js";
import { withTemporal } from "../temporal.js";
import { mysqlSource } from "./mysql.js";
import { findRepository } from "./repositories.js";

const BinlogArchiverRequest = z
  .strictObject({
    spoolDir: z
      .string()
      .max(LIMITS.path)
      .regex(SAFE_DATA_DIR, 'use an absolute path of letters, digits, ".", "_", "-" and "/"')
      .openapi({ example: "/var/lib/cairn/restores/db1-binlog-spool", description: "The worker's directory mariadb-binlog writes into (created), under the restore roots (CAIRN_RESTORE_ROOTS); one per plan." }),
    intervalSeconds: z.number().int().min(1).max(60).default(5).openapi({ description: "Seconds between two stores of the log the server writes (1-60, default 5): the recovery point while it writes." }),
  })
  .openapi("BinlogArchiverRequest");

const BinlogArchiver = z
  .object({
    planId: z.string(),
    workflowId: z.string().openapi({ description: "binlog-archiver-<planId>: one per plan." }),
    running: z.boolean(),
    phase: z.enum(["starting", "streaming", "reconnecting", "stopping", "stopped"]).openapi({ description: "reconnecting: mariadb-binlog stopped (the server restarted, the connection was lost) and is started again." }),
    spoolDir: z.string(),
    intervalSeconds: z.number(),
    startedAt: z.string(),
    server: z.string().optional().openapi({ description: "The server as it names itself (host:port)." }),
    serverFile: z.string().optional().openapi({ description: "The binary log the server wrote at the last look (SHOW MASTER STATUS)." }),
    serverPosition: z.number().optional(),
    archivedFile: z.string().optional().openapi({ description: "The end of what the repository holds: the last log archived whole, or the stored part of the current one." }),
    archivedPosition: z.number().optional(),
    archivedThrough: z.string().optional().openapi({ description: "Every event the server wrote before this time is in the repository: point-in-time recovery reaches it." }),
    lagBytes: z.number().optional().openapi({ description: "Bytes of the current log the server wrote that the repository does not hold yet." }),
    lagSeconds: z.number().optional().openapi({ description: "Seconds since archivedThrough when the server wrote more since; 0 when everything is archived." }),
    lastCheckedAt: z.string().optional(),
    logsArchived: z.number().openapi({ description: "Logs archived whole since the archiver started." }),
    reconnects: z.number().openapi({ description: "Times mariadb-binlog stopped and was started again." }),
    events: z.array(z.string()).openapi({ description: "What happened, newest last: reconnects, looks that failed." }),
    error: z.string().optional().openapi({ description: "Why the archiver ended, or why its status is unknown." }),
  })
  .openapi("BinlogArchiver");

const thisPlan = { resource: "plan", in: "param", field: "id" } as const;
const PlanIdParam = IdParam.extend({ id: IdParam.shape.id.openapi({ description: "A physical MySQL / MariaDB plan: it has at most one archiver." }) });

const start = createRoute({
  method: "post",
  path: "/plans/{id}/binlog-archiver",
  operationId: "startBinlogArchiver",
  summary: "Archive a physical MySQL / MariaDB plan's binary log continuously: streamed by a worker, each closed log and the current one every intervalSeconds stored, so point-in-time recovery reaches seconds ago",
  tags: ["plans"],
  ...access("plans:run", thisPlan),
  request: { params: PlanIdParam, body: jsonBody(BinlogArchiverRequest) },
  responses: {
    202: json(z.object({ id: z.string().openapi({ description: "The plan's id: GET /v1/plans/{id}/binlog-archiver shows the archiver." }), workflowId: z.string() }), "The archiver is starting."),
    ...problems(400, 403, 404, 409, 415, 503),
  },
});

const get = createRoute({
  method: "get",
  path: "/plans/{id}/binlog-archiver",
  operationId: "getBinlogArchiver",
  summary: "A plan's continuous binary log archiver: phase, where the server writes, what is archived through when, lag, reconnects",
  tags: ["plans"],
  ...access("plans:read", thisPlan),
  request: { params: PlanIdParam },
  responses: { 200: json(BinlogArchiver, "The archiver, running or stopped."), ...problems(404, 503) },
});

const stop = createRoute({
  method: "delete",
  path: "/plans/{id}/binlog-archiver",
  operationId: "stopBinlogArchiver",
  summary: "Stop a plan's continuous binary log archiver after a last store of what it streamed",
  tags: ["plans"],
  ...access("plans:run", thisPlan),
  request: { params: PlanIdParam },
  responses: { 202: json(z.object({ id: z.string(), phase: z.literal("stopping") }), "The archiver is stopping; GET /v1/plans/{id}/binlog-archiver says stopped once it has."), ...problems(404, 503) },
});

/**
 * The server id mariadb-binlog connects as: one per plan, high in the range so it
 * does not meet the small ids DBAs give their replicas (a second connection with
 * the same id would end the first).
 */
export function replicaIdOf(planId: string): number {
  let h = 2166136261;
  for (const c of planId) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  return 4_000_000_000 + (h % 290_000_000);
}

export function binlogArchiverRoutes(deps: AppDeps) {
  const findPlan = async (id: string): Promise<PlanRow> => {
    const [row] = await deps.catalog.select().from(plans).where(eq(plans.id, id));
    if (row) return row;
    const { title, message } = ApiError.notFound("plan", id, "list plans with GET /v1/plans");
    throw new ApiError(404, title, message);
  };
  const noArchiver = (id: string) => new ApiError(404, "No binary log archiver", `plan ${id} has no running binary log archiver; start one with POST /v1/plans/${id}/binlog-archiver`);

  return router()
    .openapi(start, async (c) => {
      const { id } = c.req.valid("param");
      const body = c.req.valid("json");
      const plan = await findPlan(id);
      const source = mysqlSource(plan, "physical");
      const repo = await findRepository(deps, plan.repositoryId);
      const spoolDir = path.normalize(body.spoolDir);
      const refusal = pathRefusal(deps.policy, "restore", spoolDir);
      if (refusal) throw policyProblem(refusal, "spoolDir");
      const input: BinlogArchiverInput = { planId: plan.id, planName: plan.name, repository: repositoryTarget(repo), source, spoolDir, intervalSeconds: body.intervalSeconds, replicaId: replicaIdOf(plan.id) };
      const workflowId = binlogArchiverWorkflowId(plan.id);
      await withTemporal(deps.temporal, () =>
        deps.temporal.workflow.start(BINLOG_ARCHIVER_WORKFLOW, {
          workflowId,
          taskQueue: TASK_QUEUE,
          args: [input],
          typedSearchAttributes: [
            { key: SEARCH_ATTRIBUTE_KEYS.kind, value: "binlog-archiver" },
            { key: SEARCH_ATTRIBUTE_KEYS.plan, value: plan.id },
            { key: SEARCH_ATTRIBUTE_KEYS.source, value: "mysql" },
          ],
        }),
      ).catch(async (err) => {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        const running = await readBinlogArchiver(deps.temporal, plan.id).catch(() => undefined);
        throw new ApiError(409, "Binary log archiver already running", `plan ${plan.id} already has a binary log archiver: workflow ${workflowId}${running?.spoolDir ? ` spooling into ${running.spoolDir}` : ""}; stop it with DELETE /v1/plans/${plan.id}/binlog-archiver first`);
      });
      return c.json({ id: plan.id, workflowId }, 202);
    })
    .openapi(get, async (c) => {
      const { id } = c.req.valid("param");
      const view = await readBinlogArchiver(deps.temporal, id);
      if (!view) throw new ApiError(404, "No binary log archiver", `plan ${id} has no binary log archiver; start one with POST /v1/plans/${id}/binlog-archiver`);
      return c.json(view, 200);
    })
    .openapi(stop, async (c) => {
      const { id } = c.req.valid("param");
      const view = await readBinlogArchiver(deps.temporal, id);
      if (!view?.running) throw noArchiver(id);
      await withTemporal(deps.temporal, () => deps.temporal.workflow.getHandle(binlogArchiverWorkflowId(id)).signal(stopBinlogArchiverSignal)).catch((err) => {
        if (err instanceof WorkflowNotFoundError) throw noArchiver(id);
        throw err;
      });
      return c.json({ id, phase: "stopping" as const }, 202);
    });
}

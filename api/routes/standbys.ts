import * as path from "node:path";
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from "@temporalio/client";
import { createRoute, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { plans } from "../../db/schema.js";
import { pathRefusal } from "../../policy/paths.js";
import { SAFE_DATA_DIR, SEARCH_ATTRIBUTE_KEYS, STANDBY_WORKFLOW, standbyWorkflowId, stopStandbySignal, TASK_QUEUE, type StandbyInput } from "../../workflows/messages.js";
import { plansInScope } from "../access.js";
import type { AppDeps } from "../app.js";
import type { Principal } from "../auth.js";
import { ApiError } from "../errors.js";
import { LIMITS } from "../limits.js";
import { access, IdParam, json, jsonBody, problems, router } from "../openapi.js";
import { policyProblem } from "../policy.js";
import { repositoryTarget, type PlanRow } from "../schedules.js";
import { readStandby, runningStandbys } from "../standbys.js";
import { withTemporal } from "../temporal.js";
import { physicalSource } from "./recoveries.js";
import { findRepository } from "./repositories.js";

const StandbyRequest = z
  .strictObject({
    planId: z.string().min(1).max(LIMITS.id).openapi({ description: "A physical PostgreSQL plan with at least one base backup; its WAL is archived into the plan's repository with cairn pg wal-push." }),
    dataDir: z
      .string()
      .max(LIMITS.path)
      .regex(SAFE_DATA_DIR, 'use an absolute path of letters, digits, ".", "_", "-" and "/"')
      .openapi({ example: "/var/lib/cairn/restores/pg-standby", description: "A new or empty directory under the restore roots (CAIRN_RESTORE_ROOTS), on the worker's host." }),
    port: z.number().int().min(1024).max(65535).openapi({ example: 5498, description: "The port the standby listens on, on the worker's 127.0.0.1." }),
    pollSeconds: z.number().int().min(1).max(60).default(10).openapi({ description: "Seconds between two measurements of the replay lag (1-60, default 10)." }),
  })
  .openapi("StandbyRequest");

const Standby = z
  .object({
    planId: z.string(),
    workflowId: z.string().openapi({ description: "standby-<planId>: one per plan." }),
    running: z.boolean(),
    phase: z.enum(["restore", "start", "replaying", "stopping", "stopped", "released"]).openapi({ description: "released: a failover (releasedTo) took the server over; PostgreSQL was left running and is no longer watched." }),
    dataDir: z.string(),
    port: z.number(),
    startedAt: z.string(),
    systemId: z.string().optional(),
    snapshotId: z.string().optional().openapi({ description: "The base backup the standby was restored from." }),
    replayLsn: z.string().optional().openapi({ description: "The last WAL location the standby replayed." }),
    primaryLsn: z.string().optional().openapi({ description: "Where the plan's server wrote at the last check, when it answered." }),
    archivedLsn: z.string().optional().openapi({ description: "The end of the newest WAL segment in the repository." }),
    lagBytes: z.number().optional().openapi({ description: "WAL not replayed yet: behind the primary when it answered, else behind the archive." }),
    lagSeconds: z.number().optional().openapi({ description: "Commits not replayed yet, in seconds: the primary's heartbeat minus the replayed one, else now minus the last replayed commit." }),
    lagSource: z.enum(["heartbeat", "replay-timestamp"]).optional(),
    lastReplayAt: z.string().optional(),
    lastCheckedAt: z.string().optional(),
    restarts: z.number().openapi({ description: "Times the standby's PostgreSQL was found stopped and started again." }),
    warnings: z.array(z.string()).openapi({ description: "What the last check found wrong (the primary did not answer, the standby still starts); empty when all answered." }),
    releasedTo: z.string().optional().openapi({ description: "The failover (GET /v1/failovers/{id}) that released the standby to promote it." }),
    events: z.array(z.string()).openapi({ description: "What happened to the standby, newest last: restarts of its PostgreSQL (with the last line of its log)." }),
    error: z.string().optional().openapi({ description: "Why the standby ended, or why its status is unknown." }),
  })
  .openapi("Standby");

const thisPlan = { resource: "plan", in: "param", field: "id" } as const;
const PlanIdParam = IdParam.extend({ id: IdParam.shape.id.openapi({ description: "The plan's id: a plan has at most one standby." }) });

const start = createRoute({
  method: "post",
  path: "/standbys",
  operationId: "createStandby",
  summary: "Keep a warm standby of a physical plan on a worker: its latest base backup, replaying archived WAL for good, with its lag measured",
  tags: ["standbys"],
  ...access("restores:create", { resource: "plan", in: "body", field: "planId" }),
  request: { body: jsonBody(StandbyRequest) },
  responses: {
    202: json(z.object({ id: z.string().openapi({ description: "The plan's id: GET /v1/standbys/{id} shows the standby." }), workflowId: z.string() }), "The standby is being restored."),
    ...problems(400, 403, 404, 409, 415, 503),
  },
});

const list = createRoute({
  method: "get",
  path: "/standbys",
  operationId: "listStandbys",
  summary: "The running standbys with their replay lag",
  tags: ["standbys"],
  ...access("plans:read"),
  responses: { 200: json(z.object({ standbys: z.array(Standby) }), "The running standbys (of the token's scope)."), ...problems(503) },
});

const get = createRoute({
  method: "get",
  path: "/standbys/{id}",
  operationId: "getStandby",
  summary: "A plan's standby: phase, data directory, port, replay position and lag, restarts",
  tags: ["standbys"],
  ...access("plans:read", thisPlan),
  request: { params: PlanIdParam },
  responses: { 200: json(Standby, "The standby, running or stopped."), ...problems(404, 503) },
});

const stop = createRoute({
  method: "delete",
  path: "/standbys/{id}",
  operationId: "deleteStandby",
  summary: "Stop a plan's standby: PostgreSQL is shut down cleanly; the data directory stays unless discard=true",
  tags: ["standbys"],
  ...access("restores:create", thisPlan),
  request: {
    params: PlanIdParam,
    query: z.object({ discard: z.enum(["true", "false"]).default("false").openapi({ description: "true: also remove the data directory." }) }),
  },
  responses: { 202: json(z.object({ id: z.string(), phase: z.literal("stopping"), discard: z.boolean() }), "The standby is stopping; GET /v1/standbys/{id} says stopped once it has."), ...problems(400, 404, 503) },
});

export function standbyRoutes(deps: AppDeps) {
  const findPlan = async (id: string): Promise<PlanRow> => {
    const [row] = await deps.catalog.select().from(plans).where(eq(plans.id, id));
    if (row) return row;
    const { title, message } = ApiError.notFound("plan", id, "list plans with GET /v1/plans");
    throw new ApiError(404, title, message, [{ in: "body", path: "planId", message: "no such plan" }]);
  };
  const noStandby = (id: string) => new ApiError(404, "No standby", `plan ${id} has no running standby; start one with POST /v1/standbys, list them with GET /v1/standbys`);

  return router()
    .openapi(start, async (c) => {
      const body = c.req.valid("json");
      const plan = await findPlan(body.planId);
      const source = physicalSource(plan);
      const repo = await findRepository(deps, plan.repositoryId);
      const dataDir = path.normalize(body.dataDir);
      const refusal = pathRefusal(deps.policy, "restore", dataDir);
      if (refusal) throw policyProblem(refusal, "dataDir");
      const input: StandbyInput = { planId: plan.id, planName: plan.name, repository: repositoryTarget(repo), source, dataDir, port: body.port, pollSeconds: body.pollSeconds };
      const workflowId = standbyWorkflowId(plan.id);
      await withTemporal(deps.temporal, () =>
        deps.temporal.workflow.start(STANDBY_WORKFLOW, {
          workflowId,
          taskQueue: TASK_QUEUE,
          args: [input],
          typedSearchAttributes: [
            { key: SEARCH_ATTRIBUTE_KEYS.kind, value: "standby" },
            { key: SEARCH_ATTRIBUTE_KEYS.plan, value: plan.id },
            { key: SEARCH_ATTRIBUTE_KEYS.source, value: "postgres" },
          ],
        }),
      ).catch(async (err) => {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        const running = await readStandby(deps.temporal, plan.id).catch(() => undefined);
        throw new ApiError(
          409,
          "Standby already running",
          `plan ${plan.id} already has a standby: workflow ${workflowId}${running?.dataDir ? ` in ${running.dataDir} on port ${running.port}` : ""} (GET /v1/standbys/${plan.id}); a plan has one standby: stop it with DELETE /v1/standbys/${plan.id} first`,
        );
      });
      return c.json({ id: plan.id, workflowId }, 202);
    })
    .openapi(list, async (c) => {
      const principal = c.get("principal") as Principal;
      const planIds = principal.scope ? new Set((await deps.catalog.select({ id: plans.id }).from(plans).where(plansInScope(principal.scope))).map((p) => p.id)) : undefined;
      return c.json({ standbys: await runningStandbys(deps.temporal, planIds) }, 200);
    })
    .openapi(get, async (c) => {
      const { id } = c.req.valid("param");
      const view = await readStandby(deps.temporal, id);
      if (!view) throw new ApiError(404, "No standby", `plan ${id} has no standby; start one with POST /v1/standbys`);
      return c.json(view, 200);
    })
    .openapi(stop, async (c) => {
      const { id } = c.req.valid("param");
      const discard = c.req.valid("query").discard === "true";
      const view = await readStandby(deps.temporal, id);
      if (!view?.running) throw noStandby(id);
      await withTemporal(deps.temporal, () => deps.temporal.workflow.getHandle(standbyWorkflowId(id)).signal(stopStandbySignal, { discard })).catch((err) => {
        if (err instanceof WorkflowNotFoundError) throw noStandby(id);
        throw err;
      });
      return c.json({ id, phase: "stopping" as const, discard }, 202);
    });
}

import * as path from "node:path";
import { WorkflowNotFoundError } from "@temporalio/client";
import { createRoute, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { plans, type PlanSource } from "../../db/schema.js";
import { hookRefusal } from "../../policy/failover.js";
import { pathRefusal } from "../../policy/paths.js";
import type { PolicyRefusal } from "../../policy/policy.js";
import { FAILOVER_WORKFLOW, failoverStatusQuery, SAFE_DATA_DIR, SEARCH_ATTRIBUTE_KEYS, TASK_QUEUE, type FailoverInput, type FailoverResult, type PostgresSource } from "../../workflows/messages.js";
import type { AppDeps } from "../app.js";
import { ApiError } from "../errors.js";
import { innermostMessage } from "../jobs.js";
import { LIMITS } from "../limits.js";
import { access, IdParam, json, jsonBody, problems, router } from "../openapi.js";
import { policyProblem } from "../policy.js";
import { repositoryTarget } from "../schedules.js";
import { readStandby } from "../standbys.js";
import { idTime, withTemporal } from "../temporal.js";
import { checkConnectionUrl } from "./plan-schemas.js";
import { findRepository } from "./repositories.js";

const dataDir = z.string().max(LIMITS.path).regex(SAFE_DATA_DIR, 'use an absolute path of letters, digits, ".", "_", "-" and "/"');
const port = z.number().int().min(1024).max(65535);
const command = z.array(z.string().min(1).max(1000)).min(1).max(32).openapi({ description: "The program (absolute path, listed in the policy's hook commands, CAIRN_HOOK_COMMANDS) and its arguments; run without a shell." });

const FailoverRequest = z
  .strictObject({
    planId: z.string().min(1).max(LIMITS.id).openapi({ description: "A physical PostgreSQL plan: its URL is the old primary, its repository holds the archive." }),
    standby: z
      .union([
        z.literal("workflow"),
        z.strictObject({ dataDir: dataDir.openapi({ description: "The standby's data directory on the worker's host (under CAIRN_FAILOVER_PATHS)." }), port: port.openapi({ description: "Its port on the worker's 127.0.0.1." }) }),
      ])
      .optional()
      .openapi({
        description:
          'A PostgreSQL running in recovery (a warm standby) on the worker\'s host, to promote: "workflow" for the plan\'s standby run by POST /v1/standbys (its data directory and port are taken from its status), or {dataDir, port}. Either way the plan\'s standby workflow, when it runs that server, is released (stops watching and restarting it) just before the promotion.',
      }),
    into: z
      .strictObject({ dataDir: dataDir.openapi({ description: "A new or empty directory under the restore roots." }), port })
      .optional()
      .openapi({ description: "No standby: restore the plan's latest consistent state here (base backup + archived WAL), start it and make it the primary." }),
    fence: z
      .strictObject({
        dataDir: dataDir.optional().openapi({ description: "The old primary's data directory on the worker's host (under CAIRN_FAILOVER_PATHS): its server is stopped." }),
        mode: z.enum(["fast", "immediate"]).optional().openapi({ description: "Shutdown mode with dataDir (default fast; fast turns immediate after 60 s)." }),
        hook: command.optional().openapi({ description: "The operator's fencing program, run with OLD_HOST and OLD_PORT; exit 0 means the old primary is fenced." }),
      })
      .openapi({ description: "How the old primary is fenced (dataDir or hook). Either way the failover then confirms it does not answer, and stops before promoting when it does." }),
    cutover: z
      .union([
        z.strictObject({
          type: z.literal("pgbouncer"),
          configFile: z.string().min(1).max(LIMITS.path).openapi({ description: "PgBouncer's configuration file on the worker's host (under CAIRN_FAILOVER_PATHS)." }),
          database: z.string().min(1).max(63).openapi({ description: "The [databases] entry clients use: rewritten to the new host and port." }),
          adminUrl: z
            .string()
            .max(1000)
            .superRefine(checkConnectionUrl)
            .optional()
            .openapi({ description: "PgBouncer's admin console (postgresql://admin@host:6432/pgbouncer) for RELOAD, signed in to with the plan's password, without a password in the URL; its host must be allowed by the execution policy. Without it the pid in its pidfile gets SIGHUP." }),
        }),
        z.strictObject({ type: z.literal("hook"), command: command.openapi({ description: "Run with NEW_HOST and NEW_PORT; exit 0 means clients were switched." }) }),
      ])
      .optional()
      .openapi({ description: "How clients are switched to the new primary. Without it the new primary is left for the operator to point clients at." }),
    reason: z.string().min(1).max(500),
    rpoLimit: z
      .strictObject({ bytes: z.number().int().min(0).optional(), seconds: z.number().min(0).optional() })
      .optional()
      .openapi({ description: "Refuse a standby further behind than this (unless force)." }),
    force: z.boolean().optional(),
    checkSql: z.array(z.string().min(1).max(10_000)).max(20).optional().openapi({ description: "Queries run on the new primary before the cut-over; one that fails stops the failover there." }),
    dryRun: z.boolean().optional().openapi({ description: "Validate and say what each step would do; change nothing." }),
  })
  .openapi("FailoverRequest");

const Step = z.object({ name: z.string(), startedAt: z.string(), ms: z.number(), outcome: z.string() });
const Failover = z
  .object({
    id: z.string(),
    planId: z.string().nullable(),
    status: z.enum(["running", "completed", "failed", "cancelled", "terminated", "timed_out"]),
    phase: z.string().nullable(),
    steps: z.array(Step),
    result: z
      .object({
        dryRun: z.boolean(),
        rtoMs: z.number().nullable().openapi({ description: "From the failover's start to the new primary accepting a write through the cut-over path (rtoPath cutover) or directly." }),
        rtoPath: z.enum(["cutover", "direct"]).optional(),
        rpo: z.object({ bytes: z.number().nullable(), seconds: z.number().nullable(), basis: z.string() }).openapi({ description: "What the old primary had committed that the new one lacks: WAL bytes and seconds, and what they were measured from." }),
        steps: z.array(Step),
        newPrimary: z.object({ host: z.string(), port: z.number() }).nullable(),
        validation: z.record(z.string(), z.unknown()),
        warnings: z.array(z.string()),
      })
      .nullable(),
    error: z.string().nullable().openapi({ description: "Why it stopped, and what to do by hand." }),
  })
  .openapi("Failover");

const start = createRoute({
  method: "post",
  path: "/failovers",
  operationId: "createFailover",
  summary: "Fail a physical PostgreSQL plan's server over to its standby (or to a restore of its latest state): fence, promote, verify, cut over",
  tags: ["failovers"],
  ...access("failovers:run", { resource: "plan", in: "body", field: "planId" }),
  request: { body: jsonBody(FailoverRequest) },
  responses: { 202: json(z.object({ id: z.string().openapi({ description: "Follow it with GET /v1/failovers/{id}." }) }), "The failover started."), ...problems(400, 403, 404, 409, 415, 503) },
});

const get = createRoute({
  method: "get",
  path: "/failovers/{id}",
  operationId: "getFailover",
  summary: "A failover's phase, steps and result (RTO, RPO, new primary), or why it stopped",
  tags: ["failovers"],
  ...access("jobs:read", { resource: "job", in: "param", field: "id" }),
  request: { params: IdParam },
  responses: { 200: json(Failover, "The failover."), ...problems(404, 503) },
});

const STATUS: Record<string, z.infer<typeof Failover>["status"]> = { RUNNING: "running", COMPLETED: "completed", FAILED: "failed", CANCELLED: "cancelled", TERMINATED: "terminated", TIMED_OUT: "timed_out", CONTINUED_AS_NEW: "running" };

export function failoverRoutes(deps: AppDeps) {
  return router()
    .openapi(start, async (c) => {
      const body = c.req.valid("json");
      const [plan] = await deps.catalog.select().from(plans).where(eq(plans.id, body.planId));
      if (!plan) throw new ApiError(404, "plan not found", `there is no plan with id ${body.planId}; list plans with GET /v1/plans`, [{ in: "body", path: "planId", message: "no such plan" }]);
      const source: PlanSource = plan.source;
      if (source.type !== "postgres" || source.mode !== "physical") throw new ApiError(409, "Not a physical PostgreSQL plan", `plan ${plan.id} is not a physical PostgreSQL plan; failover needs one whose repository holds the server's archived WAL (source {"type": "postgres", "mode": "physical"})`);
      if (!!body.standby === !!body.into) throw new ApiError(400, "Give a standby or a place to restore", "give exactly one of standby {dataDir, port} (a server in recovery to promote) or into {dataDir, port} (restore the latest state there first)", [{ in: "body", path: body.standby ? "into" : "standby", message: "exactly one of standby and into" }]);
      // The plan's standby workflow: its server is the one to promote ("workflow"), or it runs the one given, and is released before the promotion.
      let standby = body.standby === "workflow" ? undefined : body.standby;
      let standbyWorkflowId: string | undefined;
      if (body.standby) {
        const running = await readStandby(deps.temporal, plan.id);
        const live = running?.running && running.phase === "replaying" ? running : undefined;
        if (body.standby === "workflow") {
          if (!running?.running) throw new ApiError(409, "No standby workflow runs for this plan", `plan ${plan.id} has no running standby workflow (standby-${plan.id}${running ? `, which ended in phase ${running.phase}` : ""}); start one with POST /v1/standbys, or give standby {dataDir, port} of a server in recovery, or into {dataDir, port} to restore the latest state`, [{ in: "body", path: "standby", message: "no running standby workflow" }]);
          if (!live) throw new ApiError(409, "The standby is not replaying yet", `the standby workflow ${running.workflowId} is in phase ${running.phase}${running.error ? ` (${running.error})` : ""}; wait until GET /v1/standbys/${plan.id} says phase replaying, then fail over again`, [{ in: "body", path: "standby", message: "standby not replaying" }]);
          standby = { dataDir: live.dataDir, port: live.port };
          standbyWorkflowId = live.workflowId;
        } else if (running?.running && path.normalize(running.dataDir) === path.normalize(body.standby.dataDir) && running.port === body.standby.port) {
          standbyWorkflowId = running.workflowId;
        }
      }
      if (!body.fence.dataDir === !body.fence.hook) throw new ApiError(400, "Say how to fence the old primary", "give exactly one of fence.dataDir (the old primary's data directory on the worker's host, stopped there) or fence.hook (your fencing program); a failover never promotes without fencing", [{ in: "body", path: "fence", message: "exactly one of dataDir and hook" }]);
      const refusals = [
        body.into ? [pathRefusal(deps.policy, "restore", body.into.dataDir), "into.dataDir"] : undefined,
        standby ? [pathRefusal(deps.policy, "failover", standby.dataDir, "the standby's data directory"), "standby.dataDir"] : undefined,
        body.fence.dataDir ? [pathRefusal(deps.policy, "failover", body.fence.dataDir, "the old primary's data directory"), "fence.dataDir"] : undefined,
        body.fence.hook ? [hookRefusal(deps.policy, body.fence.hook[0]), "fence.hook"] : undefined,
        body.cutover?.type === "pgbouncer" ? [pathRefusal(deps.policy, "failover", body.cutover.configFile, "PgBouncer's configuration"), "cutover.configFile"] : undefined,
        body.cutover?.type === "hook" ? [hookRefusal(deps.policy, body.cutover.command[0]), "cutover.command"] : undefined,
      ];
      for (const r of refusals) if (r?.[0]) throw policyProblem(r[0] as PolicyRefusal, r[1] as string);
      const repo = await findRepository(deps, plan.repositoryId);
      const input: FailoverInput = {
        planId: plan.id,
        planName: plan.name,
        repository: repositoryTarget(repo),
        source: source as PostgresSource,
        ...(standby ? { standby: { dataDir: path.normalize(standby.dataDir), port: standby.port } } : {}),
        ...(standbyWorkflowId && !body.dryRun ? { standbyWorkflowId } : {}),
        ...(plan.notifications?.length ? { notifications: plan.notifications } : {}),
        ...(body.into ? { into: { dataDir: path.normalize(body.into.dataDir), port: body.into.port } } : {}),
        fence: { ...body.fence, ...(body.fence.dataDir ? { dataDir: path.normalize(body.fence.dataDir) } : {}) },
        ...(body.cutover ? { cutover: body.cutover } : {}),
        reason: body.reason,
        ...(body.rpoLimit ? { rpoLimit: body.rpoLimit } : {}),
        ...(body.force ? { force: true } : {}),
        ...(body.checkSql?.length ? { checkSql: body.checkSql } : {}),
        ...(body.dryRun ? { dryRun: true } : {}),
      };
      const id = `failover-${plan.id}-${idTime()}`;
      await withTemporal(deps.temporal, () =>
        deps.temporal.workflow.start(FAILOVER_WORKFLOW, {
          workflowId: id,
          taskQueue: TASK_QUEUE,
          args: [input],
          typedSearchAttributes: [
            { key: SEARCH_ATTRIBUTE_KEYS.plan, value: plan.id },
            { key: SEARCH_ATTRIBUTE_KEYS.source, value: "postgres" },
          ],
        }),
      );
      return c.json({ id }, 202);
    })
    .openapi(get, async (c) => {
      const { id } = c.req.valid("param");
      const notFound = () => new ApiError(404, "failover not found", `there is no failover with id ${id}; POST /v1/failovers answered with the id of the one it started`);
      if (!id.startsWith("failover-")) throw notFound();
      const handle = deps.temporal.workflow.getHandle(id);
      const desc = await withTemporal(deps.temporal, () => handle.describe()).catch((err) => {
        throw err instanceof WorkflowNotFoundError ? notFound() : err;
      });
      const status = STATUS[desc.status.name] ?? "running";
      const planId = desc.typedSearchAttributes.get(SEARCH_ATTRIBUTE_KEYS.plan) ?? null;
      const state = await withTemporal(deps.temporal, () => handle.query(failoverStatusQuery), 5000).catch(() => undefined);
      let result: FailoverResult | null = null;
      let error: string | null = null;
      if (status === "completed") result = await withTemporal(deps.temporal, () => handle.result());
      else if (status !== "running") {
        error = await withTemporal(deps.temporal, () => handle.result()).then(
          () => null,
          (err: Error) => innermostMessage(err),
        );
      }
      return c.json({ id, planId, status, phase: state?.phase ?? null, steps: result?.steps ?? state?.steps ?? [], result: result as z.infer<typeof Failover>["result"], error }, 200);
    });
}

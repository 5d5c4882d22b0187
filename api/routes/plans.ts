import { randomBytes } from "node:crypto";
import { createRoute, z } from "@hono/zod-openapi";
import { WorkflowExecutionAlreadyStartedError } from "@temporalio/client";
import { and, eq } from "drizzle-orm";
import { plans, type PlanDrill, type PlanSource } from "../../db/schema.js";
import { parseMysqlUrl } from "../../sources/mysql/connection.js";
import { parseConnectionUrl } from "../../sources/postgres/connection.js";
import { WORKFLOW_TYPES } from "../../workflows/messages.js";
import type { AppDeps } from "../app.js";
import { ApiError, isUniqueViolation } from "../errors.js";
import { access, IdParam, json, jsonBody, problems, router } from "../openapi.js";
import { plansInScope, type ScopeRef } from "../access.js";
import { byCreation, nextCursor, PageQuery } from "../pagination.js";
import type { Permission } from "../permissions.js";
import { checkDatabaseHost, checkSources } from "../policy.js";
import { backupStart, drillScheduleId, OVERLAP_POLICIES, scheduleId, syncDrillSchedule, syncSchedule, type PlanRow, type RepositoryRow } from "../schedules.js";
import { idTime, withTemporal } from "../temporal.js";
import { answered } from "../worker-requests.js";
import { findRepository } from "./repositories.js";
import { sealNotifications, showNotifications } from "../notifications.js";
import { planRpoMinutes } from "../../analytics/alerts.js";
import { Plan, PlanInput, PlanPatch, type SourceInput } from "./plan-schemas.js";

const JobStarted = z.object({ jobId: z.string().openapi({ description: "Follow it with GET /v1/jobs/{jobId}." }) }).openapi("JobStarted");

const route = <M extends "get" | "post" | "patch" | "delete", P extends string>(method: M, path: P, operationId: string, summary: string, permission: Permission, ...scope: ScopeRef[]) => ({
  method,
  path,
  operationId,
  summary,
  tags: ["plans"],
  ...access(permission, ...scope),
});
const creation = byCreation(plans.createdAt, plans.id);
const thisPlan: ScopeRef = { resource: "plan", in: "param", field: "id" };

const create = createRoute({
  ...route("post", "/plans", "createPlan", "Create a plan (and its Temporal Schedule when it has a schedule)", "plans:write"),
  request: { body: jsonBody(PlanInput) },
  responses: { 201: json(z.object({ id: z.string() }), "Created."), ...problems(400, 403, 404, 409, 415, 503) },
});
const list = createRoute({
  ...route("get", "/plans", "listPlans", "List plans in creation order, a page at a time", "plans:read"),
  request: { query: PageQuery },
  responses: { 200: json(z.object({ plans: z.array(Plan), nextCursor }), "A page of plans (those of the token's scope)."), ...problems(400) },
});
const get = createRoute({ ...route("get", "/plans/{id}", "getPlan", "One plan", "plans:read", thisPlan), request: { params: IdParam }, responses: { 200: json(Plan, "The plan."), ...problems(404) } });
const patch = createRoute({
  ...route("patch", "/plans/{id}", "updatePlan", "Change a plan; its schedule follows", "plans:write", thisPlan),
  request: { params: IdParam, body: jsonBody(PlanPatch) },
  responses: { 200: json(Plan, "The plan as changed."), ...problems(400, 403, 404, 409, 415, 503) },
});
const remove = createRoute({ ...route("delete", "/plans/{id}", "deletePlan", "Delete a plan and its schedule (snapshots stay)", "plans:write", thisPlan), request: { params: IdParam }, responses: { 204: { description: "Deleted." }, ...problems(404) } });
const RunInput = z
  .strictObject({
    at: z.iso
      .datetime({ offset: true })
      .optional()
      .openapi({ example: "2026-12-24T23:30:00Z", description: "Run once at this time instead of now (at most a year ahead); the job is listed at once and starts then." }),
  })
  .openapi("RunPlanInput");
const run = createRoute({
  ...route("post", "/plans/{id}/run", "runPlan", "Back up now, or once at a given time", "plans:run", thisPlan),
  request: { params: IdParam, body: { ...jsonBody(RunInput), required: false } },
  responses: { 202: json(JobStarted, "The backup job started (or waits for its time)."), ...problems(400, 404, 409) },
});
const ScheduleState = z
  .object({
    scheduleId: z.string(),
    paused: z.boolean(),
    nextRuns: z.array(z.string()).openapi({ description: "The next times Temporal will start a run (blackout windows left out), in UTC." }),
    recentRuns: z.array(z.object({ scheduledAt: z.string(), startedAt: z.string(), jobId: z.string() })),
    runningJobIds: z.array(z.string()),
    skippedForOverlap: z.number().int().openapi({ description: "Runs skipped because the previous run was still going (overlap policy skip)." }),
    missedCatchupWindow: z.number().int().openapi({ description: "Runs missed while the platform was down for longer than the catch-up window; POST .../backfill runs them." }),
  })
  .openapi("PlanScheduleState");
const scheduleState = createRoute({
  ...route("get", "/plans/{id}/schedule", "getPlanSchedule", "The plan's schedule as Temporal runs it: next runs, recent and running ones", "plans:read", thisPlan),
  request: { params: IdParam },
  responses: { 200: json(ScheduleState, "The schedule's state."), ...problems(404, 409, 503) },
});
const BackfillInput = z
  .strictObject({
    from: z.iso.datetime({ offset: true }).openapi({ example: "2026-11-28T00:00:00Z" }),
    to: z.iso.datetime({ offset: true }).openapi({ example: "2026-11-30T00:00:00Z" }),
    overlap: z
      .enum(["skip", "buffer_one", "buffer_all", "allow_all"])
      .optional()
      .openapi({ description: "How the period's runs overlap: skip (the default) takes one catch-up run, buffer_all every missed run one after the other." }),
  })
  .openapi("BackfillInput");
const backfill = createRoute({
  ...route("post", "/plans/{id}/backfill", "backfillPlan", "Take the runs a past period's schedule would have taken (Temporal schedule backfill)", "plans:run", thisPlan),
  request: { params: IdParam, body: jsonBody(BackfillInput) },
  responses: { 202: json(z.object({ scheduleId: z.string() }), "Backfill requested; its jobs appear in GET /v1/jobs."), ...problems(400, 404, 409) },
});
const pause = createRoute({ ...route("post", "/plans/{id}/pause", "pausePlan", "Pause the plan's schedule", "plans:write", thisPlan), request: { params: IdParam }, responses: { 200: json(Plan, "Paused."), ...problems(404, 409) } });
const resume = createRoute({ ...route("post", "/plans/{id}/resume", "resumePlan", "Resume the plan's schedule", "plans:write", thisPlan), request: { params: IdParam }, responses: { 200: json(Plan, "Resumed."), ...problems(404, 409) } });
const trigger = createRoute({
  ...route("post", "/plans/{id}/trigger", "triggerPlan", "Take the schedule's action now (skipped if a run is going, like a scheduled one)", "plans:run", thisPlan),
  request: { params: IdParam },
  responses: { 202: json(z.object({ scheduleId: z.string() }), "Triggered."), ...problems(404, 409) },
});

/** A plan's source as the API shows it: a sealed password is never returned, only whether there is one. */
function sourceView(source: PlanSource) {
  if (source.type === "files") return source;
  const { sealedPassword, ...rest } = source;
  return { ...rest, passwordStored: sealedPassword !== undefined };
}

/** Drills restore files and physical PostgreSQL plans; a check query only means something for a database. */
export function drillProblem(source: PlanSource, drill: PlanDrill | null | undefined): ApiError | undefined {
  if (!drill) return undefined;
  if (source.type === "postgres" && source.mode === "logical") {
    return new ApiError(400, "Drills of logical plans are not supported", "recovery drills restore files plans and physical PostgreSQL plans; drill a logical plan's dump by hand with POST /v1/restores/logical into a scratch database, or back the cluster up physically", [{ in: "body", path: "drill", message: "a logical plan" }]);
  }
  if (source.type === "files" && drill.checkSql) {
    return new ApiError(400, "No check query for files", "a files plan's drill verifies every file's content against the snapshot; drill.checkSql is for PostgreSQL plans, remove it", [{ in: "body", path: "drill.checkSql", message: "files plans take none" }]);
  }
  return undefined;
}

function view(p: PlanRow) {
  return {
    id: p.id,
    name: p.name,
    repositoryId: p.repositoryId,
    source: sourceView(p.source),
    schedule: p.schedule,
    retention: p.retention,
    verifySamplePercent: p.verifySamplePercent,
    secondaryRepositoryIds: p.secondaryRepositoryIds,
    queue: p.queue,
    notifications: showNotifications(p.notifications),
    rpoMinutes: p.rpoMinutes,
    effectiveRpoMinutes: planRpoMinutes(p) ?? null,
    paused: p.paused,
    scheduleId: p.schedule ? scheduleId(p.id) : null,
    drill: p.drill,
    drillScheduleId: p.drill?.cron ? drillScheduleId(p.id) : null,
    createdAt: p.createdAt.toISOString(),
    updatedAt: p.updatedAt.toISOString(),
  };
}

export function planRoutes(deps: AppDeps) {
  const { catalog, temporal } = deps;

  const find = async (id: string): Promise<PlanRow> => {
    const [row] = await catalog.select().from(plans).where(eq(plans.id, id));
    if (!row) throw ApiError.notFound("plan", id, "list plans with GET /v1/plans");
    return row;
  };
  /** The rows of a plan's secondary repositories; each must exist and differ from the plan's own repository. */
  const findSecondaries = async (ids: string[], primaryId: string): Promise<RepositoryRow[]> => {
    const rows: RepositoryRow[] = [];
    for (const [i, id] of ids.entries()) {
      const field = `secondaryRepositoryIds.${i}`;
      if (id === primaryId) {
        throw new ApiError(400, "Secondary is the plan's repository", `repository ${id} is the plan's own repository; a copy there protects nothing, so name another repository as secondary`, [{ in: "body", path: field, message: "the plan's own repository" }]);
      }
      rows.push(await findRepository(deps, id, field));
    }
    return rows;
  };
  /**
   * The source as the catalog keeps it, once the execution policy allows it: every
   * source path as written here, then with links followed on a worker; a database
   * server's host here, and again by the worker when it connects. A database
   * password is sealed; a changed source without one keeps the sealed password of
   * the same server and user.
   */
  const allowSource = async (source: SourceInput, before?: PlanSource): Promise<PlanSource> => {
    if (source.type === "files") {
      checkSources(deps.policy, source.paths);
      answered(await deps.workers.checkSources({ paths: source.paths }));
      return source;
    }
    const { password: given, url: written, ...rest } = source;
    const connection = source.type === "mysql" ? parseMysqlUrl(written) : parseConnectionUrl(written);
    await checkDatabaseHost(deps.policy, connection.host);
    const kept = before?.type === source.type && before.url === connection.url ? before.sealedPassword : undefined;
    const sealedPassword = given !== undefined ? deps.secretBox.seal(given) : kept;
    return { ...rest, url: connection.url, ...(sealedPassword ? { sealedPassword } : {}) };
  };
  const nameTaken = (name: string) => new ApiError(409, "Plan name taken", `a plan named "${name}" exists already; choose another name or change that plan`);
  const scheduled = (plan: PlanRow) => {
    if (!plan.schedule) throw new ApiError(409, "Plan has no schedule", `plan ${plan.id} has no schedule; give it one with PATCH /v1/plans/${plan.id} {"schedule": {"cron": "0 3 * * *", "timezone": "UTC"}}, or run it now with POST /v1/plans/${plan.id}/run`);
    return temporal.schedule.getHandle(scheduleId(plan.id));
  };
  const setPaused = async (plan: PlanRow, paused: boolean) => {
    const handle = scheduled(plan);
    await withTemporal(temporal, () => (paused ? handle.pause("paused through the Cairn API") : handle.unpause("resumed through the Cairn API")));
    const [row] = await catalog.update(plans).set({ paused, updatedAt: new Date() }).where(eq(plans.id, plan.id)).returning();
    if (row.drill?.cron) await syncDrillSchedule(temporal, plan, row, await findRepository(deps, row.repositoryId));
    return row;
  };

  return router()
    .openapi(create, async (c) => {
      const input = c.req.valid("json");
      const repo = await findRepository(deps, input.repositoryId, "repositoryId");
      const secondaries = await findSecondaries(input.secondaryRepositoryIds ?? [], repo.id);
      const source = await allowSource(input.source);
      const badDrill = drillProblem(source, input.drill);
      if (badDrill) throw badDrill;
      const id = randomBytes(8).toString("hex");
      const [row] = await catalog
        .insert(plans)
        .values({
          id,
          name: input.name,
          repositoryId: repo.id,
          source,
          schedule: input.schedule ?? null,
          retention: input.retention ?? null,
          verifySamplePercent: input.verifySamplePercent ?? null,
          secondaryRepositoryIds: secondaries.map((r) => r.id),
          queue: input.queue ?? null,
          notifications: input.notifications ? sealNotifications(deps.secretBox, input.notifications) : null,
          rpoMinutes: input.rpoMinutes ?? null,
          drill: input.drill ?? null,
        })
        .returning()
        .catch((err) => Promise.reject(isUniqueViolation(err) ? nameTaken(input.name) : err));
      try {
        await syncSchedule(temporal, undefined, row, repo, secondaries);
        await syncDrillSchedule(temporal, undefined, row, repo).catch(async (err) => {
          await syncSchedule(temporal, row, undefined, undefined).catch(() => undefined);
          throw err;
        });
      } catch (err) {
        // A plan whose schedule could not be made would silently never run: undo it.
        await catalog.delete(plans).where(eq(plans.id, id));
        throw err;
      }
      return c.json({ id }, 201);
    })
    .openapi(list, async (c) => {
      const { limit, cursor } = c.req.valid("query");
      const scope = c.get("principal").scope;
      const rows = await catalog
        .select()
        .from(plans)
        .where(and(creation.after(cursor), scope ? plansInScope(scope) : undefined))
        .orderBy(...creation.orderBy)
        .limit(limit + 1);
      const page = creation.page(rows, limit);
      return c.json({ plans: page.items.map(view), nextCursor: page.nextCursor }, 200);
    })
    .openapi(get, async (c) => c.json(view(await find(c.req.valid("param").id)), 200))
    .openapi(patch, async (c) => {
      const before = await find(c.req.valid("param").id);
      const change = c.req.valid("json");
      const repo = await findRepository(deps, change.repositoryId ?? before.repositoryId, change.repositoryId ? "repositoryId" : undefined);
      const secondaries = await findSecondaries(change.secondaryRepositoryIds ?? before.secondaryRepositoryIds, repo.id);
      const source = change.source ? await allowSource(change.source, before.source) : undefined;
      const badDrill = drillProblem(source ?? before.source, change.drill === undefined ? before.drill : change.drill);
      if (badDrill) throw badDrill;
      const [after] = await catalog
        .update(plans)
        .set({ ...change, ...(source ? { source } : {}), notifications: change.notifications ? sealNotifications(deps.secretBox, change.notifications) : undefined, updatedAt: new Date() })
        .where(eq(plans.id, before.id))
        .returning()
        .catch((err) => Promise.reject(isUniqueViolation(err) && change.name ? nameTaken(change.name) : err));
      try {
        await syncSchedule(temporal, before, after, repo, secondaries);
        await syncDrillSchedule(temporal, before, after, repo);
      } catch (err) {
        const { id, ...previous } = before;
        await catalog.update(plans).set(previous).where(eq(plans.id, id));
        throw err;
      }
      return c.json(view(after), 200);
    })
    .openapi(remove, async (c) => {
      const plan = await find(c.req.valid("param").id);
      await syncSchedule(temporal, plan, undefined, undefined);
      await syncDrillSchedule(temporal, plan, undefined, undefined);
      await catalog.delete(plans).where(eq(plans.id, plan.id));
      return c.body(null, 204);
    })
    .openapi(run, async (c) => {
      const plan = await find(c.req.valid("param").id);
      const at = (c.req.valid("json") as z.infer<typeof RunInput> | undefined)?.at;
      const delay = at ? Date.parse(at) - Date.now() : 0;
      if (at && (delay <= 0 || delay > 366 * 86_400_000)) {
        const why = delay <= 0 ? "is not in the future" : "is more than a year ahead";
        throw new ApiError(400, "Run time out of range", `at ${at} ${why}; give a time within the next year, or leave at out to run now`, [{ in: "body", path: "at", message: why }]);
      }
      const repo = await findRepository(deps, plan.repositoryId);
      const secondaries = await findSecondaries(plan.secondaryRepositoryIds, plan.repositoryId);
      const jobId = `backup-${plan.id}-${idTime()}`;
      // A one-time run is a workflow whose first task waits (Temporal's start delay): it is listed, and cancellable, until it starts.
      const start = { workflowId: jobId, ...backupStart(plan, repo, secondaries), ...(delay > 0 ? { startDelay: delay } : {}) };
      await withTemporal(temporal, () => temporal.workflow.start(WORKFLOW_TYPES.backup, start)).catch((err) => {
        if (err instanceof WorkflowExecutionAlreadyStartedError) throw new ApiError(409, "Backup already starting", `a backup of plan ${plan.id} was started this same millisecond; follow it with GET /v1/jobs/${jobId}`);
        throw err;
      });
      return c.json({ jobId }, 202);
    })
    .openapi(pause, async (c) => c.json(view(await setPaused(await find(c.req.valid("param").id), true)), 200))
    .openapi(resume, async (c) => c.json(view(await setPaused(await find(c.req.valid("param").id), false)), 200))
    .openapi(scheduleState, async (c) => {
      const plan = await find(c.req.valid("param").id);
      const handle = scheduled(plan);
      const { info, state } = await withTemporal(temporal, () => handle.describe());
      return c.json(
        {
          scheduleId: handle.scheduleId,
          paused: state.paused,
          nextRuns: info.nextActionTimes.map((t) => t.toISOString()),
          recentRuns: info.recentActions.map((a) => ({ scheduledAt: a.scheduledAt.toISOString(), startedAt: a.takenAt.toISOString(), jobId: a.action.workflow.workflowId })),
          runningJobIds: info.runningActions.map((a) => a.workflow.workflowId),
          skippedForOverlap: info.numActionsSkippedOverlap,
          missedCatchupWindow: info.numActionsMissedCatchupWindow,
        },
        200,
      );
    })
    .openapi(backfill, async (c) => {
      const plan = await find(c.req.valid("param").id);
      const { from, to, overlap } = c.req.valid("json");
      const [start, end] = [new Date(from), new Date(to)];
      if (end <= start) throw new ApiError(400, "Empty period", `to (${to}) is not after from (${from}); give the period whose runs were missed`, [{ in: "body", path: "to", message: "not after from" }]);
      if (end.getTime() > Date.now()) throw new ApiError(400, "Period in the future", `to (${to}) is in the future: backfill takes runs that were missed; runs to come are taken by the schedule`, [{ in: "body", path: "to", message: "in the future" }]);
      const handle = scheduled(plan);
      await withTemporal(temporal, () => handle.backfill({ start, end, overlap: OVERLAP_POLICIES[overlap ?? "skip"] }));
      return c.json({ scheduleId: handle.scheduleId }, 202);
    })
    .openapi(trigger, async (c) => {
      const plan = await find(c.req.valid("param").id);
      const handle = scheduled(plan);
      await withTemporal(temporal, () => handle.trigger());
      return c.json({ scheduleId: handle.scheduleId }, 202);
    });
}

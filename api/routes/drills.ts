import { createRoute, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { plans } from "../../db/schema.js";
import { WORKFLOW_TYPES } from "../../workflows/messages.js";
import type { AppDeps } from "../app.js";
import { planDrills } from "../drills.js";
import { ApiError } from "../errors.js";
import { access, IdParam, json, problems, router } from "../openapi.js";
import { drillStart, type PlanRow } from "../schedules.js";
import { idTime, withTemporal } from "../temporal.js";
import { findRepository } from "./repositories.js";

const thisPlan = { resource: "plan", in: "param", field: "id" } as const;

const DrillRecord = z
  .object({
    jobId: z.string().openapi({ description: "The drill's job: GET /v1/jobs/{jobId} shows its steps and log." }),
    startedAt: z.string(),
    finishedAt: z.string().nullable(),
    outcome: z.enum(["passed", "failed", "cancelled"]),
    snapshotId: z.string().nullable().openapi({ description: "The snapshot (files) or base backup (PostgreSQL) restored." }),
    rtoSeconds: z.number().nullable().openapi({ description: "From the restore's start to the copy verified; null when the drill failed before." }),
    filesVerified: z.number().openapi({ description: "Files read back and matched against the snapshot (files plans); files of the data directory written (PostgreSQL)." }),
    bytes: z.number(),
    error: z.string().nullable().openapi({ description: "Why a failed drill failed." }),
    check: z.object({ sql: z.string(), rows: z.array(z.string()) }).optional().openapi({ description: "PostgreSQL: the check query and its first rows." }),
  })
  .openapi("DrillRecord");

const run = createRoute({
  method: "post",
  path: "/plans/{id}/drills",
  operationId: "runDrill",
  summary: "Run a recovery drill now: restore the plan's latest backup into a scratch place on a worker, verify it, time it, discard it",
  tags: ["drills"],
  ...access("drills:run", thisPlan),
  request: { params: IdParam },
  responses: {
    202: json(z.object({ jobId: z.string().openapi({ description: "Follow it with GET /v1/jobs/{jobId}; its result lands in GET /v1/plans/{id}/drills when it ends." }) }), "The drill started."),
    ...problems(404, 409, 503),
  },
});

const list = createRoute({
  method: "get",
  path: "/plans/{id}/drills",
  operationId: "listDrills",
  summary: "The plan's finished recovery drills, newest first",
  tags: ["drills"],
  ...access("plans:read", thisPlan),
  request: { params: IdParam, query: z.object({ limit: z.coerce.number().int().min(1).max(100).default(20).openapi({ description: "Drills at most (1-100, default 20)." }) }) },
  responses: { 200: json(z.object({ drills: z.array(DrillRecord) }), "The drills."), ...problems(400, 404) },
});

export function drillRoutes(deps: AppDeps) {
  const findPlan = async (id: string): Promise<PlanRow> => {
    const [row] = await deps.catalog.select().from(plans).where(eq(plans.id, id));
    if (!row) throw ApiError.notFound("plan", id, "list plans with GET /v1/plans");
    return row;
  };

  return router()
    .openapi(run, async (c) => {
      const plan = await findPlan(c.req.valid("param").id);
      if (plan.source.type === "postgres" && plan.source.mode === "logical") {
        throw new ApiError(409, "Drills of logical plans are not supported", `plan ${plan.id} takes logical dumps; recovery drills restore files plans and physical PostgreSQL plans. Restore a dump into a scratch database by hand with POST /v1/restores/logical`);
      }
      const repo = await findRepository(deps, plan.repositoryId);
      const jobId = `drill-${plan.id}-${idTime()}`;
      await withTemporal(deps.temporal, () => deps.temporal.workflow.start(WORKFLOW_TYPES.drill, { workflowId: jobId, ...drillStart(plan, repo) }));
      return c.json({ jobId }, 202);
    })
    .openapi(list, async (c) => {
      const plan = await findPlan(c.req.valid("param").id);
      return c.json({ drills: await planDrills(deps.catalog, plan.id, c.req.valid("query").limit) }, 200);
    });
}

import * as path from "node:path";
import { createRoute, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { plans, type PlanSource } from "../../db/schema.js";
import { pathRefusal } from "../../policy/paths.js";
import { LOGICAL_RESTORE_WORKFLOW, SAFE_DATA_DIR, TASK_QUEUE, WORKFLOW_TYPES, type LogicalRestoreInput, type PostgresSource, type RecoveryInput, type RecoveryTargetSpec } from "../../workflows/messages.js";
import type { AppDeps } from "../app.js";
import { ApiError } from "../errors.js";
import { LIMITS } from "../limits.js";
import { access, IdParam, json, jsonBody, problems, router } from "../openapi.js";
import { policyProblem } from "../policy.js";
import { repositoryTarget, type PlanRow } from "../schedules.js";
import { idTime, searchAttributes, withTemporal } from "../temporal.js";
import { answered } from "../worker-requests.js";
import { mysqlSource, MysqlWindow } from "./mysql.js";
import { findRepository } from "./repositories.js";

const Target = z
  .union([
    z.strictObject({ time: z.string().max(64).refine((t) => !Number.isNaN(Date.parse(t)), "write the time as ISO 8601 with its zone, such as 2026-11-30T10:15:00.250Z") }),
    z.strictObject({ lsn: z.string().max(20).regex(/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/, "write the LSN as PostgreSQL prints it, such as 0/3000060") }),
    z.strictObject({ xid: z.string().max(20).regex(/^\d{1,20}$/, "give the transaction id as a number (SELECT pg_current_xact_id() in that transaction)") }),
    z.strictObject({ name: z.string().min(1).max(63).openapi({ description: "A restore point made with pg_create_restore_point(name)." }) }),
    z.strictObject({ latest: z.literal(true) }),
  ])
  .openapi("RecoveryTarget", { description: "Exactly one of time, lsn, xid, name (a restore point) or latest: true." });

const RecoveryRequest = z
  .strictObject({
    planId: z.string().min(1).max(LIMITS.id),
    target: Target,
    into: z.strictObject({
      dataDir: z
        .string()
        .max(LIMITS.path)
        .regex(SAFE_DATA_DIR, 'use an absolute path of letters, digits, ".", "_", "-" and "/"')
        .openapi({ example: "/var/lib/cairn/restores/pg-recovered", description: "A new or empty directory under the restore roots (CAIRN_RESTORE_ROOTS); never a running cluster's." }),
      port: z.number().int().min(1024).max(65535).openapi({ example: 5499, description: "The port the recovered server listens on, on the worker's 127.0.0.1." }),
    }),
    verify: z
      .strictObject({ sql: z.array(z.string().min(1).max(10_000)).min(1).max(20) })
      .optional()
      .openapi({ description: "Queries run on the recovered server while it is paused at the target; one that fails stops the recovery before promotion." }),
    delta: z
      .boolean()
      .optional()
      .openapi({ description: "Restore over into.dataDir, the existing, stopped data directory of the plan's cluster: only what differs from the base backup is written, files it does not have are removed. Refused for a running server's directory (postmaster.pid) or another cluster's." }),
  })
  .openapi("RecoveryRequest");

const Window = z
  .object({
    systemId: z.string().optional(),
    baseBackups: z.number(),
    earliest: z.object({ time: z.string(), lsn: z.string(), snapshotId: z.string() }).optional(),
    latest: z.object({ time: z.string().optional(), lsn: z.string(), timeline: z.number() }).optional(),
    lastArchivedAt: z.string().optional().openapi({ description: "When the newest archived WAL segment (lastArchivedWal) was archived by wal-push or pg_receivewal: how fresh the archive is." }),
    lastArchivedWal: z.string().optional().openapi({ description: "The newest archived WAL segment (highest timeline and number; a streamed .partial stands for its segment)." }),
    backups: z
      .array(
        z.object({
          snapshotId: z.string(),
          endTime: z.string().openapi({ description: "When the base backup ended: the earliest point it recovers to." }),
          endLsn: z.string(),
          until: z.object({ time: z.string(), lsn: z.string(), timeline: z.number() }).openapi({ description: "How far its archived WAL chain reaches unbroken (the last commit in it)." }),
          breaksAt: z.string().optional().openapi({ description: "The first missing WAL segment past that point, when newer WAL was archived beyond it: a gap no point in which can be recovered from this backup." }),
        }),
      )
      .optional()
      .openapi({ description: "Each base backup, oldest first, with the stretch it can recover; a stretch between earliest and latest that none covers is a gap." }),
  })
  .openapi("RecoveryWindow");

const thisPlan = { resource: "plan", in: "param", field: "id" } as const;

const pgName = z.string().min(1).max(63);
const LogicalRestoreRequest = z
  .strictObject({
    planId: z.string().min(1).max(LIMITS.id),
    snapshotId: z
      .string()
      .max(64)
      .regex(/^(latest|[0-9a-f]{4,64})$/, 'give "latest" or at least 4 hex characters of one of the plan\'s dump snapshots')
      .openapi({ example: "latest" }),
    database: pgName.openapi({ description: "The dumped database to restore." }),
    into: pgName.optional().openapi({ description: "The database to restore into, on the plan's server (default: the dumped one's name). Without tables it must not exist yet: it is created." }),
    tables: z.array(z.string().min(1).max(200)).max(100).optional().openapi({ description: "Only these tables (name or schema.name), with their data, constraints, indexes and owned sequences, into the existing database." }),
    clean: z.boolean().optional().openapi({ description: "Drop the dump's objects before recreating them; without it nothing is dropped and an object that exists fails the restore." }),
  })
  .openapi("LogicalRestoreRequest");

const logicalRestore = createRoute({
  method: "post",
  path: "/restores/logical",
  operationId: "createLogicalRestore",
  summary: "Restore a database of a logical PostgreSQL plan's dump into the plan's server (a new database, or chosen tables)",
  tags: ["restores"],
  ...access("restores:create", { resource: "plan", in: "body", field: "planId" }),
  request: { body: jsonBody(LogicalRestoreRequest) },
  responses: { 202: json(z.object({ jobId: z.string() }), "The restore job started; follow it with GET /v1/jobs/{jobId}."), ...problems(400, 403, 404, 409, 415, 503) },
});

const start = createRoute({
  method: "post",
  path: "/recoveries",
  operationId: "createRecovery",
  summary: "Recover a physical plan's cluster to a point in time into a new data directory, and start it there",
  tags: ["recoveries"],
  ...access("restores:create", { resource: "plan", in: "body", field: "planId" }),
  request: { body: jsonBody(RecoveryRequest) },
  responses: {
    202: json(z.object({ jobId: z.string().openapi({ description: "Follow it with GET /v1/jobs/{jobId}: phase validate, prepare, restore, recover, verify, promote, done; the result says where it landed." }) }), "The recovery started."),
    ...problems(400, 403, 404, 409, 415, 503),
  },
});

const window = createRoute({
  method: "get",
  path: "/plans/{id}/recovery-window",
  operationId: "getRecoveryWindow",
  summary: "What a physical plan can recover: from the end of its oldest backup to the last archived commit (PostgreSQL WAL, MySQL / MariaDB binary logs)",
  tags: ["recoveries"],
  ...access("plans:read", thisPlan),
  request: { params: IdParam },
  responses: {
    200: json(z.union([Window, MysqlWindow]), "The window: for PostgreSQL (baseBackups 0 and no ends when the plan has no base backup yet), or for MySQL / MariaDB (physicalBackups 0 and no ends when it has no backup yet)."),
    ...problems(404, 409, 422, 503),
  },
});

export function physicalSource(plan: PlanRow): PostgresSource {
  const source: PlanSource = plan.source;
  if (source.type !== "postgres" || source.mode !== "physical") {
    throw new ApiError(409, "Not a physical PostgreSQL plan", `plan ${plan.id} backs up ${source.type === "postgres" ? "logical dumps" : source.type === "mysql" ? "a MySQL / MariaDB server (recover a physical one with POST /v1/recoveries/mysql)" : "files"}; point-in-time recovery and standbys need a plan with source {"type": "postgres", "mode": "physical"}`);
  }
  return source;
}

export function recoveryRoutes(deps: AppDeps) {
  const findPlan = async (id: string, field?: string): Promise<PlanRow> => {
    const [row] = await deps.catalog.select().from(plans).where(eq(plans.id, id));
    if (row) return row;
    const { title, message } = ApiError.notFound("plan", id, "list plans with GET /v1/plans");
    throw new ApiError(404, title, message, field ? [{ in: "body", path: field, message: "no such plan" }] : undefined);
  };

  return router()
    .openapi(start, async (c) => {
      const body = c.req.valid("json");
      const plan = await findPlan(body.planId, "planId");
      const source = physicalSource(plan);
      const repo = await findRepository(deps, plan.repositoryId);
      const dataDir = path.normalize(body.into.dataDir);
      const refusal = pathRefusal(deps.policy, "restore", dataDir);
      if (refusal) throw policyProblem(refusal, "into.dataDir");
      const input: RecoveryInput = {
        planId: plan.id,
        planName: plan.name,
        repository: repositoryTarget(repo),
        source,
        target: body.target as RecoveryTargetSpec,
        into: { dataDir, port: body.into.port },
        ...(body.verify ? { verify: body.verify } : {}),
        ...(body.delta ? { delta: true } : {}),
      };
      const jobId = `recovery-${plan.id}-${idTime()}`;
      await withTemporal(deps.temporal, () =>
        deps.temporal.workflow.start(WORKFLOW_TYPES.recovery, { workflowId: jobId, taskQueue: TASK_QUEUE, args: [input], typedSearchAttributes: searchAttributes("recovery", plan.id, "postgres") }),
      );
      return c.json({ jobId }, 202);
    })
    .openapi(logicalRestore, async (c) => {
      const body = c.req.valid("json");
      const plan = await findPlan(body.planId, "planId");
      const source: PlanSource = plan.source;
      if (source.type !== "postgres" || source.mode !== "logical") {
        throw new ApiError(409, "Not a logical PostgreSQL plan", `plan ${plan.id} does not take logical dumps; restore files with POST /v1/restores, or recover a physical plan with POST /v1/recoveries`);
      }
      const repo = await findRepository(deps, plan.repositoryId);
      const input: LogicalRestoreInput = {
        planId: plan.id,
        planName: plan.name,
        repository: repositoryTarget(repo),
        source,
        snapshotRef: body.snapshotId,
        database: body.database,
        ...(body.into ? { into: body.into } : {}),
        ...(body.tables?.length ? { tables: body.tables } : {}),
        ...(body.clean ? { clean: true } : {}),
      };
      const jobId = `restore-${repo.id}-${idTime()}`;
      await withTemporal(deps.temporal, () =>
        deps.temporal.workflow.start(LOGICAL_RESTORE_WORKFLOW, { workflowId: jobId, taskQueue: TASK_QUEUE, args: [input], typedSearchAttributes: searchAttributes("restore", plan.id, "postgres") }),
      );
      return c.json({ jobId }, 202);
    })
    .openapi(window, async (c) => {
      const plan = await findPlan(c.req.valid("param").id);
      if (plan.source.type === "mysql") {
        mysqlSource(plan, "physical");
        const repo = await findRepository(deps, plan.repositoryId);
        return c.json(answered(await deps.workers.mysqlRecoveryWindow({ repository: repositoryTarget(repo), planId: plan.id })), 200);
      }
      physicalSource(plan);
      const repo = await findRepository(deps, plan.repositoryId);
      return c.json(answered(await deps.workers.recoveryWindow({ repository: repositoryTarget(repo), planId: plan.id })), 200);
    });
}

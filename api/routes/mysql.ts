import * as path from "node:path";
import { createRoute, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { plans, type PlanSource } from "../../db/schema.js";
import { pathRefusal } from "../../policy/paths.js";
import { MYSQL_RECOVERY_WORKFLOW, MYSQL_RESTORE_WORKFLOW, SAFE_DATA_DIR, TASK_QUEUE, type MysqlRecoveryInput, type MysqlRecoveryTargetSpec, type MysqlRecoveryWindow, type MysqlRestoreInput, type MysqlSource } from "../../workflows/messages.js";
import type { AppDeps } from "../app.js";
import { ApiError } from "../errors.js";
import { LIMITS } from "../limits.js";
import { access, json, jsonBody, problems, router } from "../openapi.js";
import { policyProblem } from "../policy.js";
import { repositoryTarget, type PlanRow } from "../schedules.js";
import { idTime, searchAttributes, withTemporal } from "../temporal.js";
import { answered } from "../worker-requests.js";
import { findRepository } from "./repositories.js";

const MysqlTarget = z
  .union([
    z.strictObject({ time: z.string().max(64).refine((t) => !Number.isNaN(Date.parse(t)), "write the time as ISO 8601 with its zone, such as 2026-11-30T10:15:00Z") }),
    z.strictObject({
      position: z
        .string()
        .max(300)
        .regex(/^[A-Za-z0-9._-]+\.\d+:\d{1,19}$/, "write the binary log position as FILE:OFFSET, such as binlog.000012:4711 (SHOW BINARY LOG STATUS on the server)"),
    }),
    z.strictObject({ latest: z.literal(true) }),
  ])
  .openapi("MysqlRecoveryTarget", { description: "Exactly one of time (binary log events carry whole seconds: every event of that second is replayed, none after), position (FILE:OFFSET) or latest: true (the end of the archived binary logs)." });

const MysqlRecoveryRequest = z
  .strictObject({
    planId: z.string().min(1).max(LIMITS.id),
    target: MysqlTarget,
    into: z.strictObject({
      dataDir: z
        .string()
        .max(LIMITS.path)
        .regex(SAFE_DATA_DIR, 'use an absolute path of letters, digits, ".", "_", "-" and "/"')
        .openapi({ example: "/var/lib/cairn/restores/mysql-recovered", description: "A new or empty directory under the restore roots (CAIRN_RESTORE_ROOTS)." }),
      port: z.number().int().min(1024).max(65535).openapi({ example: 3399, description: "The port the recovered server listens on, on the worker's 127.0.0.1." }),
    }),
    verify: z
      .strictObject({ sql: z.array(z.string().min(1).max(10_000)).min(1).max(20) })
      .optional()
      .openapi({ description: "Queries run on the recovered server as the plan's user; one that fails fails the recovery and stops the server." }),
  })
  .openapi("MysqlRecoveryRequest");

const mysqlName = z.string().min(1).max(64);
const MysqlRestoreRequest = z
  .strictObject({
    planId: z.string().min(1).max(LIMITS.id),
    snapshotId: z
      .string()
      .max(64)
      .regex(/^(latest|[0-9a-f]{4,64})$/, 'give "latest" or at least 4 hex characters of one of the plan\'s dump snapshots')
      .openapi({ example: "latest" }),
    database: mysqlName.openapi({ description: "The dumped database to restore." }),
    into: mysqlName.optional().openapi({ description: "The database to restore into, on the plan's server (default: the dumped one's name). Without tables it must not exist yet (it is created) unless clean." }),
    tables: z.array(mysqlName).min(1).max(100).optional().openapi({ description: "Only these tables of the dumped database, into the existing database; its other tables are never touched." }),
    clean: z.boolean().optional().openapi({ description: "Drop each restored table (with tables), or the dump's own tables, views, routines and events in an existing database, before recreating them; without it nothing is dropped and a table that exists refuses the restore." }),
    preview: z.boolean().optional().openapi({ description: "Change nothing: answer 200 with what would be restored, dropped, or refused." }),
  })
  .openapi("MysqlRestoreRequest");

const MysqlRestorePreview = z
  .object({
    snapshotId: z.string(),
    snapshotTime: z.string(),
    database: z.string(),
    into: z.string(),
    tables: z.array(z.string()).openapi({ description: "The tables that would be restored." }),
    intoExists: z.boolean(),
    existing: z.array(z.string()).openapi({ description: "Restored tables that exist in into already." }),
    drops: z.array(z.string()).openapi({ description: "What would be dropped first (with clean only), as KIND `name`." }),
    refusal: z.string().optional().openapi({ description: "Why the restore would be refused (nothing would change); absent when it would run." }),
  })
  .openapi("MysqlRestorePreview");

export const MysqlWindow = z
  .object({
    server: z.string().optional().openapi({ description: "The server (host:port as it names itself) the plan's newest physical backup is of." }),
    physicalBackups: z.number(),
    archivedBinlogs: z.number(),
    earliest: z.object({ time: z.string(), snapshotId: z.string(), binlogFile: z.string().optional(), binlogPosition: z.number().optional() }).optional(),
    latest: z.object({ time: z.string(), binlogFile: z.string().optional() }).optional(),
    missing: z.string().optional().openapi({ description: "A binary log missing from the archive after the newest backup: recovery cannot go past it." }),
    partial: z
      .object({ binlogFile: z.string(), size: z.number(), through: z.string() })
      .optional()
      .openapi({ description: "The log the server writes now, as far as the continuous binary log archiver (POST /v1/plans/{id}/binlog-archiver, or cairn mysql binlog-archive --follow) stored it: every event before through; latest reaches through." }),
  })
  .openapi("MysqlRecoveryWindow");

const thisPlanInBody = { resource: "plan", in: "body", field: "planId" } as const;

const restore = createRoute({
  method: "post",
  path: "/restores/mysql",
  operationId: "createMysqlRestore",
  summary: "Restore a database (or chosen tables) of a logical MySQL / MariaDB plan's dump into the plan's server, or preview it",
  tags: ["restores"],
  ...access("restores:create", thisPlanInBody),
  request: { body: jsonBody(MysqlRestoreRequest) },
  responses: {
    200: json(MysqlRestorePreview, "With preview: what the restore would do; nothing changed."),
    202: json(z.object({ jobId: z.string() }), "The restore job started; follow it with GET /v1/jobs/{jobId}."),
    ...problems(400, 403, 404, 409, 415, 422, 503),
  },
});

const recover = createRoute({
  method: "post",
  path: "/recoveries/mysql",
  operationId: "createMysqlRecovery",
  summary: "Recover a physical MySQL / MariaDB plan's server to a point in time into a new data directory, and start it there",
  tags: ["recoveries"],
  ...access("restores:create", thisPlanInBody),
  request: { body: jsonBody(MysqlRecoveryRequest) },
  responses: {
    202: json(z.object({ jobId: z.string().openapi({ description: "Follow it with GET /v1/jobs/{jobId}: phase validate, prepare, restore, replay, start, verify, done; the result says where it landed." }) }), "The recovery started."),
    ...problems(400, 403, 404, 409, 415, 422, 503),
  },
});

/** The plan's source when it is a MySQL / MariaDB plan of this mode, else a 409 that names the route to use. */
export function mysqlSource(plan: PlanRow, mode: "logical" | "physical"): MysqlSource {
  const source: PlanSource = plan.source;
  if (source.type === "mysql" && source.mode === mode) return source;
  const what = source.type === "files" ? "files" : `a ${source.mode} ${source.type === "mysql" ? "MySQL / MariaDB" : "PostgreSQL"} server`;
  const instead =
    mode === "physical"
      ? 'point-in-time recovery through this route needs a plan with source {"type": "mysql", "mode": "physical"} (a PostgreSQL physical plan recovers with POST /v1/recoveries)'
      : 'this route restores dumps of plans with source {"type": "mysql", "mode": "logical"} (PostgreSQL dumps: POST /v1/restores/logical; files: POST /v1/restores)';
  throw new ApiError(409, `Not a ${mode} MySQL / MariaDB plan`, `plan ${plan.id} backs up ${what}; ${instead}`);
}

/** Refuses a time target outside what the plan's repository holds (409, naming the window), before any job starts. */
function checkTargetInWindow(target: MysqlRecoveryTargetSpec, window: MysqlRecoveryWindow, plan: PlanRow): void {
  if (!window.earliest || !window.latest) {
    throw new ApiError(409, "No physical backup yet", `plan ${plan.name} has no physical backup yet; run it (POST /v1/plans/${plan.id}/run) and recover after it completes`);
  }
  if (!("time" in target)) return;
  const at = Date.parse(target.time);
  const fields = [{ in: "body" as const, path: "target.time", message: "outside the recovery window" }];
  if (at < Date.parse(window.earliest.time)) {
    throw new ApiError(409, "Target before the recovery window", `${target.time} is before the end of plan ${plan.name}'s oldest physical backup (${window.earliest.time}); recovery can reach ${window.earliest.time} to ${window.latest.time} (GET /v1/plans/${plan.id}/recovery-window)`, fields);
  }
  // Events of the target's own second are replayed, so the window's end counts to the end of its second.
  if (at >= Math.floor(Date.parse(window.latest.time) / 1000) * 1000 + 1000) {
    const more = window.missing ? `binary log ${window.missing} is missing from the archive` : `archive newer binary logs (a plan with "binlogs": true archives them at each run; POST /v1/plans/${plan.id}/binlog-archiver continuously; or cairn mysql binlog-archive)`;
    throw new ApiError(409, "Target after the recovery window", `${target.time} is after the last archived binary log of plan ${plan.name} (${window.latest.time}); ${more}, or choose a time up to ${window.latest.time}`, fields);
  }
}

export function mysqlRoutes(deps: AppDeps) {
  const findPlan = async (id: string): Promise<PlanRow> => {
    const [row] = await deps.catalog.select().from(plans).where(eq(plans.id, id));
    if (row) return row;
    const { title, message } = ApiError.notFound("plan", id, "list plans with GET /v1/plans");
    throw new ApiError(404, title, message, [{ in: "body", path: "planId", message: "no such plan" }]);
  };

  return router()
    .openapi(restore, async (c) => {
      const body = c.req.valid("json");
      const plan = await findPlan(body.planId);
      const source = mysqlSource(plan, "logical");
      const repo = await findRepository(deps, plan.repositoryId);
      const input: MysqlRestoreInput = {
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
      if (body.preview) return c.json(answered(await deps.workers.previewMysqlRestore(input)), 200);
      const jobId = `restore-${repo.id}-${idTime()}`;
      await withTemporal(deps.temporal, () =>
        deps.temporal.workflow.start(MYSQL_RESTORE_WORKFLOW, { workflowId: jobId, taskQueue: TASK_QUEUE, args: [input], typedSearchAttributes: searchAttributes("restore", plan.id, "mysql") }),
      );
      return c.json({ jobId }, 202);
    })
    .openapi(recover, async (c) => {
      const body = c.req.valid("json");
      const plan = await findPlan(body.planId);
      const source = mysqlSource(plan, "physical");
      const repo = await findRepository(deps, plan.repositoryId);
      const dataDir = path.normalize(body.into.dataDir);
      const refusal = pathRefusal(deps.policy, "restore", dataDir);
      if (refusal) throw policyProblem(refusal, "into.dataDir");
      const target = body.target as MysqlRecoveryTargetSpec;
      checkTargetInWindow(target, answered(await deps.workers.mysqlRecoveryWindow({ repository: repositoryTarget(repo), planId: plan.id })), plan);
      const input: MysqlRecoveryInput = {
        planId: plan.id,
        planName: plan.name,
        repository: repositoryTarget(repo),
        source,
        target,
        into: { dataDir, port: body.into.port },
        ...(body.verify ? { verify: body.verify } : {}),
      };
      const jobId = `recovery-${plan.id}-${idTime()}`;
      await withTemporal(deps.temporal, () =>
        deps.temporal.workflow.start(MYSQL_RECOVERY_WORKFLOW, { workflowId: jobId, taskQueue: TASK_QUEUE, args: [input], typedSearchAttributes: searchAttributes("recovery", plan.id, "mysql") }),
      );
      return c.json({ jobId }, 202);
    });
}

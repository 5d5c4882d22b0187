/**
 * Maintenance jobs on a repository, started like backups: check (structure, and a
 * share of the data read back), verify one snapshot, prune (after a plan's retention
 * when asked), copy a snapshot into another repository. Each is a Temporal workflow
 * named `<kind>-<repository id>-<time>`, listed by GET /v1/jobs and cancelled by
 * POST /v1/jobs/{id}/cancel; a worker opens the repositories, under the execution policy.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { plans } from "../../db/schema.js";
import { planHost } from "../../engine/snapshot.js";
import { hasRetentionRules, TASK_QUEUE, WORKFLOW_TYPES, type CopyInput, type JobKind, type PruneInput, type VerifyInput, type VerifySnapshotInput } from "../../workflows/messages.js";
import type { AppDeps } from "../app.js";
import { ApiError } from "../errors.js";
import { LIMITS } from "../limits.js";
import { access, IdParam, json, jsonBody, problems, router } from "../openapi.js";
import { repositoryTarget } from "../schedules.js";
import { idTime, searchAttributes, withTemporal } from "../temporal.js";
import { Retention } from "./plan-schemas.js";
import { findRepository } from "./repositories.js";

const SnapshotRef = z
  .string()
  .max(64)
  .regex(/^(latest|[0-9a-f]{4,64})$/, 'give "latest" or at least 4 hex characters of a snapshot id from GET /v1/snapshots')
  .openapi({ example: "latest" });

const CheckRequest = z
  .strictObject({
    readData: z.boolean().optional().openapi({ description: "Read every pack back and verify every blob in it (restic's --read-data)." }),
    readDataSubset: z
      .string()
      .max(20)
      .regex(/^(\d{1,3}(\.\d+)?%|\d+\/\d+)$/, 'give a percentage such as "10%" or a group such as "1/5" (the first of five groups of packs)')
      .optional()
      .openapi({ example: "1/5", description: 'Read back only a share of the packs: "10%" (chosen at random) or "n/m" (the n-th of m groups, so m checks read every pack once).' }),
  })
  .refine((b) => !(b.readData && b.readDataSubset), { message: "give readData (all packs) or readDataSubset (some), not both", path: ["readDataSubset"] })
  .openapi("CheckRequest");

const VerifyRequest = z
  .strictObject({
    snapshotId: SnapshotRef,
    samplePercent: z.number().min(0).max(100).optional().openapi({ description: "Share of the packs holding the snapshot's data to read back (default 100)." }),
  })
  .openapi("VerifyRequest");

const PruneRequest = z
  .strictObject({
    maxUnused: z
      .string()
      .max(20)
      .regex(/^(unlimited|\d+(\.\d+)?\s*%|\d+(\.\d+)?\s*[kmgtKMGT]?i?[bB]?)$/, 'give a share such as "5%", a size such as "500M", or "unlimited"')
      .optional()
      .openapi({ example: "5%", description: "Unused space tolerated in partly used packs before they are repacked (default 5%)." }),
    planId: z.string().min(1).max(LIMITS.id).optional().openapi({ description: "Forget first: remove the snapshots of this plan its retention (or `keep`) does not keep, then prune." }),
    keep: Retention.optional().openapi({ description: "Keep rules used instead of the plan's retention (needs planId)." }),
  })
  .openapi("PruneRequest");

const CopyRequest = z
  .strictObject({
    snapshotId: SnapshotRef,
    toRepositoryId: z.string().min(1).max(LIMITS.id).openapi({ description: "A registered repository (a plan's secondary, or any other) that gets the copy." }),
  })
  .openapi("CopyRequest");

const Started = z.object({ jobId: z.string() }).openapi("MaintenanceJobStarted");

const thisRepository = { resource: "repository", in: "param", field: "id" } as const;

const check = createRoute({
  method: "post",
  path: "/repositories/{id}/check",
  operationId: "checkRepository",
  summary: "Check a repository (a job of kind check): every index, pack, key, snapshot and tree, and with readData or readDataSubset the data read back",
  tags: ["repositories"],
  ...access("verifications:run", thisRepository),
  request: { params: IdParam, body: jsonBody(CheckRequest) },
  responses: { 202: json(Started, "The check started; follow it with GET /v1/jobs/{jobId} (result.errors lists damage)."), ...problems(400, 404, 415, 503) },
});

const verify = createRoute({
  method: "post",
  path: "/repositories/{id}/verify",
  operationId: "verifySnapshot",
  summary: "Verify one snapshot (a job of kind verify): its trees, and a share of the packs holding its data read back; damage fails the job",
  tags: ["repositories"],
  ...access("verifications:run", thisRepository),
  request: { params: IdParam, body: jsonBody(VerifyRequest) },
  responses: { 202: json(Started, "The verification started; follow it with GET /v1/jobs/{jobId}."), ...problems(400, 404, 415, 503) },
});

const pruneRoute = createRoute({
  method: "post",
  path: "/repositories/{id}/prune",
  operationId: "pruneRepository",
  summary: "Prune a repository (a job of kind prune): delete data no snapshot needs, after forgetting what a plan's retention does not keep when planId is given",
  tags: ["repositories"],
  ...access("repositories:maintain", thisRepository, { resource: "plan", in: "body", field: "planId" }),
  request: { params: IdParam, body: jsonBody(PruneRequest) },
  responses: { 202: json(Started, "The prune started; follow it with GET /v1/jobs/{jobId}."), ...problems(400, 404, 415, 422, 503) },
});

const copy = createRoute({
  method: "post",
  path: "/repositories/{id}/copy",
  operationId: "copySnapshot",
  summary: "Copy a snapshot into another registered repository (a job of kind copy); only the blobs the destination lacks are sent",
  tags: ["repositories"],
  ...access("repositories:maintain", thisRepository, { resource: "repository", in: "body", field: "toRepositoryId" }),
  request: { params: IdParam, body: jsonBody(CopyRequest) },
  responses: { 202: json(Started, "The copy started; follow it with GET /v1/jobs/{jobId} (result.copiedSnapshotId is its id in the destination)."), ...problems(400, 404, 415, 422, 503) },
});

export function maintenanceRoutes(deps: AppDeps) {
  const start = async (kind: JobKind, repositoryId: string, input: unknown): Promise<{ jobId: string }> => {
    const jobId = `${kind}-${repositoryId}-${idTime()}`;
    await withTemporal(deps.temporal, () => deps.temporal.workflow.start(WORKFLOW_TYPES[kind], { workflowId: jobId, taskQueue: TASK_QUEUE, args: [input], typedSearchAttributes: searchAttributes(kind) }));
    return { jobId };
  };
  return router()
    .openapi(check, async (c) => {
      const repo = await findRepository(deps, c.req.valid("param").id);
      const body = c.req.valid("json");
      const input: VerifyInput = { repository: repositoryTarget(repo), ...(body.readData ? { readData: "all" } : body.readDataSubset ? { readData: body.readDataSubset } : {}) };
      return c.json(await start("check", repo.id, input), 202);
    })
    .openapi(verify, async (c) => {
      const repo = await findRepository(deps, c.req.valid("param").id);
      const body = c.req.valid("json");
      const input: VerifySnapshotInput = { repository: repositoryTarget(repo), snapshotRef: body.snapshotId, samplePercent: body.samplePercent ?? 100 };
      return c.json(await start("verify", repo.id, input), 202);
    })
    .openapi(pruneRoute, async (c) => {
      const repo = await findRepository(deps, c.req.valid("param").id);
      const body = c.req.valid("json");
      const input: PruneInput = { repository: repositoryTarget(repo), ...(body.maxUnused ? { maxUnused: body.maxUnused } : {}) };
      if (body.keep && !body.planId) throw unprocessable("keep", "keep rules apply to one plan's snapshots: give planId too (GET /v1/plans)");
      if (body.planId) {
        const [plan] = await deps.catalog.select().from(plans).where(eq(plans.id, body.planId));
        if (!plan) throw new ApiError(404, "Plan not found", `no plan with id ${body.planId}; list plans with GET /v1/plans`, [{ in: "body", path: "planId", message: "no such plan" }]);
        if (plan.repositoryId !== repo.id) throw unprocessable("planId", `plan ${plan.id} backs up into repository ${plan.repositoryId}, not ${repo.id}: prune that repository, or give one of this repository's plans`);
        const retention = body.keep ?? plan.retention ?? undefined;
        if (!hasRetentionRules(retention)) throw unprocessable("planId", `plan ${plan.id} has no retention policy: give keep rules (for example {"keepDaily": 7}), or set the plan's retention with PATCH /v1/plans/{id}`);
        input.forget = { host: planHost(plan.id), retention };
      }
      return c.json(await start("prune", repo.id, input), 202);
    })
    .openapi(copy, async (c) => {
      const repo = await findRepository(deps, c.req.valid("param").id);
      const body = c.req.valid("json");
      if (body.toRepositoryId === repo.id) throw unprocessable("toRepositoryId", "a snapshot cannot be copied into the repository it is in: give another repository (GET /v1/repositories)");
      const to = await findRepository(deps, body.toRepositoryId, "toRepositoryId");
      const input: CopyInput = { from: repositoryTarget(repo), to: repositoryTarget(to), snapshotRef: body.snapshotId };
      return c.json(await start("copy", repo.id, input), 202);
    });
}

function unprocessable(field: string, message: string): ApiError {
  return new ApiError(422, "Request cannot be carried out", message, [{ in: "body", path: field, message }]);
}

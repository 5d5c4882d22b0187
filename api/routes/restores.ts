import * as path from "node:path";
import { createRoute, z } from "@hono/zod-openapi";
import { TASK_QUEUE, WORKFLOW_TYPES, type RestoreInput } from "../../workflows/messages.js";
import type { AppDeps } from "../app.js";
import { LIMITS } from "../limits.js";
import { access, ACTIVITY_FIELD, json, jsonBody, problems, router } from "../openapi.js";
import { checkRestoreTarget } from "../policy.js";
import { fallbackRepositories } from "../restore-sources.js";
import { repositoryTarget } from "../schedules.js";
import { idTime, searchAttributes, withTemporal } from "../temporal.js";
import { answered } from "../worker-requests.js";
import { PathPatternList } from "./plan-schemas.js";
import { findRepository } from "./repositories.js";

const RestoreRequest = z
  .strictObject({
    repositoryId: z.string().min(1).max(LIMITS.id),
    snapshotId: z
      .string()
      .max(64)
      .regex(/^(latest|[0-9a-f]{4,64})$/, 'give "latest" or at least 4 hex characters of a snapshot id from GET /v1/snapshots')
      .openapi({ example: "latest" }),
    target: z
      .string()
      .max(LIMITS.path)
      .refine((p) => path.isAbsolute(p), "use an absolute directory: the worker that writes it may run in another directory")
      .openapi({ example: "/var/lib/cairn/restores/www", description: "A directory under the restore roots of the execution policy (CAIRN_RESTORE_ROOTS)." }),
    path: z
      .string()
      .max(LIMITS.path)
      .refine((p) => p.startsWith("/"), "give a directory of the snapshot as an absolute path, such as /srv/www")
      .optional()
      .openapi({ description: "Restore only this directory of the snapshot, its content straight into the target (as restic's snapshot:subfolder)." }),
    overwrite: z
      .enum(["always", "if-changed", "never"])
      .optional()
      .openapi({
        description:
          "What to do with what the target already holds; required when it holds anything. always: replace what the snapshot has; if-changed: rewrite only what differs; never: only add what is missing.",
      }),
    safetySnapshot: z
      .boolean()
      .optional()
      .openapi({
        description:
          "Before replacing anything in a non-empty target, back the target up into the repository serving the restore (default true); GET /v1/jobs/{jobId} `result.safetySnapshot` names it, to restore it back.",
      }),
    include: PathPatternList.optional().openapi({
      description:
        "Only matching paths are restored (selective restore). A pattern with a / matches the absolute path from the snapshot's root; one without matches any name. A restore whose patterns select nothing fails.",
    }),
    exclude: PathPatternList.optional(),
    dryRun: z.boolean().optional().openapi({ description: "Count what would be restored, write nothing." }),
    fallbackRepositoryIds: z
      .array(z.string().min(1).max(LIMITS.id))
      .max(8, "give at most 8 fallback repositories")
      .optional()
      .openapi({
        description:
          "Repositories holding copies of this repository's snapshots, tried in order when it cannot be reached (before the secondaries of the plans that back up into it, which are always tried). GET /v1/jobs/{jobId} `result.servedBy` names the repository that served.",
      }),
  })
  .openapi("RestoreRequest");

const start = createRoute({
  method: "post",
  path: "/restores",
  operationId: "createRestore",
  [ACTIVITY_FIELD]: "restore",
  summary: "Restore a snapshot (whole or selected paths) into a directory",
  tags: ["restores"],
  ...access("restores:create", { resource: "repository", in: "body", field: "repositoryId" }, { resource: "repository", in: "body", field: "fallbackRepositoryIds" }),
  request: { body: jsonBody(RestoreRequest) },
  responses: { 202: json(z.object({ jobId: z.string(), snapshotId: z.string() }), "The restore job started; follow it with GET /v1/jobs/{jobId}."), ...problems(400, 403, 404, 409, 415, 422, 503) },
});

export function restoreRoutes(deps: AppDeps) {
  return router().openapi(start, async (c) => {
    const body = c.req.valid("json");
    const repo = await findRepository(deps, body.repositoryId, "repositoryId");
    const fallbacks = (await fallbackRepositories(deps, repo, body.fallbackRepositoryIds)).map(repositoryTarget);
    const target = path.normalize(body.target);
    checkRestoreTarget(deps.policy, target);
    // A worker checks the target and resolves the snapshot now, so a typo or a busy target is answered here rather than by a failed job later.
    const prepared = answered(
      await deps.workers.prepareRestore({ repository: repositoryTarget(repo), fallbacks, snapshotRef: body.snapshotId, target, path: body.path, overwrite: body.overwrite }),
    );
    const input: RestoreInput = {
      repository: repositoryTarget(repo),
      snapshotId: prepared.snapshotId,
      snapshot: prepared.snapshot,
      ...(fallbacks.length ? { secondaries: fallbacks } : {}),
      target,
      ...(body.path ? { path: body.path } : {}),
      ...(body.overwrite ? { overwrite: body.overwrite } : {}),
      ...(body.safetySnapshot === false ? { safetySnapshot: false } : {}),
      ...(body.include ? { include: body.include } : {}),
      ...(body.exclude ? { exclude: body.exclude } : {}),
      ...(body.dryRun ? { dryRun: true } : {}),
    };
    c.set("transferBytes", body.dryRun ? 0 : (prepared.totalBytes ?? 0));
    const jobId = `restore-${repo.id}-${idTime()}`;
    await withTemporal(deps.temporal, () =>
      deps.temporal.workflow.start(WORKFLOW_TYPES.restore, { workflowId: jobId, taskQueue: TASK_QUEUE, args: [input], typedSearchAttributes: searchAttributes("restore") }),
    );
    return c.json({ jobId, snapshotId: input.snapshotId }, 202);
  });
}

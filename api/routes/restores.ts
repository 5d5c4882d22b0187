import * as path from "node:path";
import { createRoute, z } from "@hono/zod-openapi";
import { TASK_QUEUE, WORKFLOW_TYPES, type RestoreInput } from "../../workflows/messages.js";
import type { AppDeps } from "../app.js";
import { LIMITS } from "../limits.js";
import { access, ACTIVITY_FIELD, json, jsonBody, problems, router } from "../openapi.js";
import { fallbackRepositories, resolveSnapshot } from "../restore-sources.js";
import { repositoryTarget } from "../schedules.js";
import { idTime, searchAttributes, withTemporal } from "../temporal.js";
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
      .openapi({ example: "/tmp/restore" }),
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
  responses: { 202: json(z.object({ jobId: z.string(), snapshotId: z.string() }), "The restore job started; follow it with GET /v1/jobs/{jobId}."), ...problems(400, 404, 415, 422) },
});

export function restoreRoutes(deps: AppDeps) {
  return router().openapi(start, async (c) => {
    const body = c.req.valid("json");
    const repo = await findRepository(deps, body.repositoryId, "repositoryId");
    const fallbacks = await fallbackRepositories(deps, repo, body.fallbackRepositoryIds);
    // Resolve the snapshot now, so a typo is a 404 here rather than a failed job later.
    const snapshot = await resolveSnapshot(deps, repo, fallbacks, body.snapshotId);
    const input: RestoreInput = {
      repository: repositoryTarget(repo),
      snapshotId: snapshot.id,
      snapshot: { time: snapshot.time, host: snapshot.host, paths: snapshot.paths },
      ...(fallbacks.length ? { secondaries: fallbacks.map(repositoryTarget) } : {}),
      target: path.normalize(body.target),
      ...(body.include ? { include: body.include } : {}),
      ...(body.exclude ? { exclude: body.exclude } : {}),
      ...(body.dryRun ? { dryRun: true } : {}),
    };
    c.set("transferBytes", body.dryRun ? 0 : (snapshot.summary?.totalBytes ?? 0));
    const jobId = `restore-${repo.id}-${idTime()}`;
    await withTemporal(deps.temporal, () =>
      deps.temporal.workflow.start(WORKFLOW_TYPES.restore, { workflowId: jobId, taskQueue: TASK_QUEUE, args: [input], typedSearchAttributes: searchAttributes("restore") }),
    );
    return c.json({ jobId, snapshotId: input.snapshotId }, 202);
  });
}

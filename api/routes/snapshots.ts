import { createRoute, z } from "@hono/zod-openapi";
import type { AppDeps } from "../app.js";
import { access, json, problems, router } from "../openapi.js";
import { decodeCursor, encodeCursor, nextCursor, PageQuery } from "../pagination.js";
import { repositoryTarget } from "../schedules.js";
import { answered } from "../worker-requests.js";
import { findRepository } from "./repositories.js";

const Snapshot = z
  .object({
    id: z.string(),
    time: z.string(),
    host: z.string(),
    paths: z.array(z.string()),
    tags: z.array(z.string()),
    parent: z.string().optional(),
    summary: z.record(z.string(), z.number()).optional().openapi({ description: "Counts and sizes of the backup that made the snapshot." }),
  })
  .openapi("Snapshot");

const list = createRoute({
  method: "get",
  path: "/snapshots",
  operationId: "listSnapshots",
  summary: "List a repository's snapshots, oldest first (a worker reads them from the repository itself)",
  tags: ["snapshots"],
  ...access("snapshots:read", { resource: "repository", in: "query", field: "repositoryId" }),
  request: { query: z.object({ repositoryId: z.string().min(1, "give the repository id from GET /v1/repositories").max(100), ...PageQuery.shape }) },
  responses: { 200: json(z.object({ snapshots: z.array(Snapshot), nextCursor }), "A page of the snapshots."), ...problems(400, 403, 404, 422, 503) },
});

export function snapshotRoutes(deps: AppDeps) {
  return router().openapi(list, async (c) => {
    const { repositoryId, limit, cursor } = c.req.valid("query");
    const repo = await findRepository(deps, repositoryId);
    const after = cursor ? decodeCursor(cursor, z.tuple([z.string().max(100), z.string().max(100)])) : undefined;
    const page = answered(await deps.workers.listSnapshots({ repository: repositoryTarget(repo), limit, ...(after ? { after: { time: after[0], id: after[1] } } : {}) }));
    const last = page.snapshots.at(-1);
    return c.json({ nextCursor: page.more && last ? encodeCursor([last.time, last.id]) : null, snapshots: page.snapshots }, 200);
  });
}

import { createRoute, z } from "@hono/zod-openapi";
import { unsealCredentials } from "../../backends/credentials.js";
import { loadSnapshots } from "../../engine/snapshot.js";
import type { AppDeps } from "../app.js";
import { access, json, problems, router } from "../openapi.js";
import { decodeCursor, encodeCursor, nextCursor, PageQuery } from "../pagination.js";
import { withRepository } from "../repository-access.js";
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
  summary: "List a repository's snapshots, oldest first (read from the repository itself)",
  tags: ["snapshots"],
  ...access("snapshots:read", { resource: "repository", in: "query", field: "repositoryId" }),
  request: { query: z.object({ repositoryId: z.string().min(1, "give the repository id from GET /v1/repositories").max(100), ...PageQuery.shape }) },
  responses: { 200: json(z.object({ snapshots: z.array(Snapshot), nextCursor }), "A page of the snapshots."), ...problems(400, 404, 422) },
});

export function snapshotRoutes(deps: AppDeps) {
  return router().openapi(list, async (c) => {
    const { repositoryId, limit, cursor } = c.req.valid("query");
    const repo = await findRepository(deps, repositoryId);
    const all = await withRepository(repo.url, deps.secretBox.open(repo.sealedPassword), unsealCredentials(deps.secretBox, repo.sealedCredentials), loadSnapshots);
    all.sort((a, b) => (a.time === b.time ? (a.id < b.id ? -1 : 1) : a.time < b.time ? -1 : 1)); // (time, id): the order a cursor resumes in
    let start = 0;
    if (cursor) {
      const [time, id] = decodeCursor(cursor, z.tuple([z.string().max(100), z.string().max(100)]));
      start = all.findIndex((s) => s.time > time || (s.time === time && s.id > id));
      if (start < 0) start = all.length;
    }
    const snapshots = all.slice(start, start + limit);
    const last = snapshots.at(-1);
    return c.json(
      {
        nextCursor: start + limit < all.length && last ? encodeCursor([last.time, last.id]) : null,
        snapshots: snapshots.map((s) => ({
          id: s.id,
          time: s.time,
          host: s.host,
          paths: s.paths,
          tags: s.tags,
          ...(s.parent ? { parent: s.parent } : {}),
          ...(s.summary ? { summary: { ...s.summary } } : {}),
        })),
      },
      200,
    );
  });
}

import { createRoute, z } from "@hono/zod-openapi";
import { unsealCredentials } from "../../backends/credentials.js";
import { loadSnapshots } from "../../engine/snapshot.js";
import type { AppDeps } from "../app.js";
import { BEARER, json, problems, router } from "../openapi.js";
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
  summary: "List a repository's snapshots, oldest first (read from the repository itself)",
  tags: ["snapshots"],
  security: BEARER,
  request: { query: z.object({ repositoryId: z.string().min(1, "give the repository id from GET /v1/repositories") }) },
  responses: { 200: json(z.object({ snapshots: z.array(Snapshot) }), "The snapshots."), ...problems(400, 404, 422) },
});

export function snapshotRoutes(deps: AppDeps) {
  return router().openapi(list, async (c) => {
    const repo = await findRepository(deps, c.req.valid("query").repositoryId);
    const snapshots = await withRepository(repo.url, deps.secretBox.open(repo.sealedPassword), unsealCredentials(deps.secretBox, repo.sealedCredentials), loadSnapshots);
    return c.json(
      {
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

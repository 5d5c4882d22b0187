import { createRoute, z } from "@hono/zod-openapi";
import type { AppDeps } from "../app.js";
import { access, json, problems, router } from "../openapi.js";

const PolicyView = z
  .object({
    sourceRoots: z.array(z.string()).openapi({ description: "Directories plans may back up (CAIRN_SOURCE_ROOTS)." }),
    restoreRoots: z.array(z.string()).openapi({ description: "Directories restores and recoveries may write into (CAIRN_RESTORE_ROOTS)." }),
    repositoryRoots: z.array(z.string()).openapi({ description: "Directories local repositories may live in (CAIRN_REPOSITORY_ROOTS)." }),
    origin: z.record(z.string(), z.string()).openapi({ description: "Where each setting came from: its variable, a policy file key, or empty for the default." }),
  })
  .openapi("PolicyView");

const get = createRoute({
  method: "get",
  path: "/policy",
  operationId: "getPolicy",
  summary: "The execution policy's roots as the API applies them, so a client offers only paths it would accept (the dashboard's path picker)",
  tags: ["policy"],
  ...access("policy:read"),
  responses: { 200: json(PolicyView, "The roots.") },
});

/** GET /v1/policy: where plans may read and restores and repositories may write. */
export function policyRoutes(deps: AppDeps) {
  return router().openapi(get, (c) => {
    const p = deps.policy;
    return c.json({ sourceRoots: p.sourceRoots, restoreRoots: p.restoreRoots, repositoryRoots: p.repositoryRoots, origin: { sourceRoots: p.origin.sourceRoots, restoreRoots: p.origin.restoreRoots, repositoryRoots: p.origin.repositoryRoots } }, 200);
  });
}

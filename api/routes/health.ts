import { createRoute, z } from "@hono/zod-openapi";
import type { AppDeps } from "../app.js";
import { pingCatalog } from "../../db/client.js";
import { access, json, router } from "../openapi.js";
import { PUBLIC } from "../permissions.js";

const Health = z.object({ status: z.literal("ok") }).openapi("Health");
const Readiness = z
  .object({
    status: z.enum(["ready", "not ready"]),
    checks: z.object({ catalog: z.string(), temporal: z.string() }).openapi({ description: '"ok", or why the part is not usable' }),
  })
  .openapi("Readiness");

const healthz = createRoute({
  method: "get",
  path: "/healthz",
  operationId: "healthz",
  summary: "Liveness: the process answers",
  tags: ["health"],
  ...access(PUBLIC),
  responses: { 200: json(Health, "The API process is up.") },
});

const readyz = createRoute({
  method: "get",
  path: "/readyz",
  operationId: "readyz",
  summary: "Readiness: the catalog and Temporal answer",
  tags: ["health"],
  ...access(PUBLIC),
  responses: { 200: json(Readiness, "Ready to serve."), 503: json(Readiness, "A dependency is down; `checks` says which.") },
});

/** Open health checks (no token), for load balancers and orchestrators. */
export function healthRoutes(deps: AppDeps) {
  return router()
    .openapi(healthz, (c) => c.json({ status: "ok" as const }, 200))
    .openapi(readyz, async (c) => {
      const [catalog, temporal] = await Promise.all([
        check(() => pingCatalog(deps.catalog)),
        check(() =>
          deps.temporal.connection.withDeadline(Date.now() + 3000, () => deps.temporal.workflowService.describeNamespace({ namespace: deps.temporal.options.namespace })),
        ),
      ]);
      const ready = catalog === "ok" && temporal === "ok";
      return ready ? c.json({ status: "ready" as const, checks: { catalog, temporal } }, 200) : c.json({ status: "not ready" as const, checks: { catalog, temporal } }, 503);
    });
}

async function check(probe: () => Promise<unknown>): Promise<string> {
  try {
    await probe();
    return "ok";
  } catch (err) {
    return (err as Error).message || String(err);
  }
}

import { createRoute, z } from "@hono/zod-openapi";
import type { AppDeps } from "../app.js";
import type { Principal } from "../auth.js";
import { gatherMetrics, renderMetrics } from "../metrics.js";
import { access, problems, router } from "../openapi.js";

const scrape = createRoute({
  method: "get",
  path: "/metrics",
  operationId: "metrics",
  summary: "Prometheus metrics: per plan last success, duration histogram, bytes added, files, job outcomes; repository size and snapshots; running jobs; standbys' replay lag; WAL archive age",
  tags: ["metrics"],
  ...access("metrics:read"),
  responses: {
    200: { description: "The Prometheus text exposition format.", content: { "text/plain": { schema: z.string() } } },
    ...problems(),
  },
});

/** GET /metrics, behind a bearer token like /v1 (give Prometheus a viewer token: scrape_configs authorization credentials_file). */
export function metricsRoutes(deps: AppDeps) {
  return router().openapi(scrape, async (c) => {
    const principal = c.get("principal") as Principal;
    const input = await gatherMetrics(deps.catalog, deps.temporal, principal.scope);
    // Only the plans this token sees (gatherMetrics scoped them).
    input.walArchives = deps.walAge?.list(new Set(input.plans.map((p) => p.id)));
    const { contentType, body } = await renderMetrics(input);
    return c.text(body, 200, { "Content-Type": contentType });
  });
}

import { createRoute, z } from "@hono/zod-openapi";
import { BOTTLENECK_THRESHOLDS } from "../../analytics/bottlenecks.js";
import type { AppDeps } from "../app.js";
import type { Principal } from "../auth.js";
import { ApiError } from "../errors.js";
import { access, json, problems, router } from "../openapi.js";
import { workersNow } from "../workers.js";

const Slots = z.union([
  z.object({ tuner: z.literal("resource-based"), targetCpu: z.number(), targetMemory: z.number(), maxActivities: z.number().int() }),
  z.object({ tuner: z.literal("fixed"), activities: z.number().int() }),
]);
const Worker = z.object({
  identity: z.string().openapi({ description: "Its Temporal identity (pid@host unless set)." }),
  host: z.string(),
  taskQueue: z.string(),
  reportedAt: z.string(),
  intervalMs: z.number().int().openapi({ description: "How often it reports (CAIRN_WORKER_REPORT_INTERVAL_MS)." }),
  stale: z.boolean().openapi({ description: "No report for three of its intervals: it stopped without saying so, or cannot reach Temporal." }),
  cpu: z.number().openapi({ description: "The machine's CPU busy share (0-1) over its last interval." }),
  memory: z.object({ usedBytes: z.number(), totalBytes: z.number(), used: z.number() }),
  disk: z.object({ path: z.string().openapi({ description: "Its data directory (CAIRN_DATA_DIR), whose file system this is." }), freeBytes: z.number(), totalBytes: z.number(), used: z.number() }),
  activitiesRunning: z.number().int().openapi({ description: "Job steps it runs now." }),
  slots: Slots.openapi({ description: "How it hands out activity slots: Temporal's resource-based tuner (CAIRN_WORKER_TARGET_CPU, CAIRN_WORKER_TARGET_MEMORY) or a fixed number (CAIRN_WORKER_CONCURRENCY)." }),
});
const Bottleneck = z.object({
  identity: z.string(),
  host: z.string(),
  resource: z.enum(["cpu", "memory", "disk"]),
  used: z.number(),
  threshold: z.number(),
  at: z.string(),
  recommendation: z.object({ type: z.string(), priority: z.enum(["critical", "high", "medium", "low"]), title: z.string(), description: z.string(), impact: z.string() }),
});
const thresholds = `CPU over ${BOTTLENECK_THRESHOLDS.cpu * 100}%, memory over ${BOTTLENECK_THRESHOLDS.memory * 100}%, the data directory's disk over ${BOTTLENECK_THRESHOLDS.disk * 100}% full`;

const list = createRoute({
  method: "get",
  path: "/workers",
  operationId: "listWorkers",
  summary: "The workers as they last reported: CPU, memory, free disk of the data directory, activities running, slot tuning; and their bottlenecks",
  tags: ["metrics"],
  ...access("metrics:read"),
  responses: { 200: json(z.object({ workers: z.array(Worker), bottlenecks: z.array(Bottleneck) }), `Every worker that reported in the last day, most recent first; bottlenecks: ${thresholds}.`), ...problems() },
});
const bottlenecks = createRoute({
  method: "get",
  path: "/analytics/bottlenecks",
  operationId: "getBottlenecks",
  summary: `Workers' bottlenecks (${thresholds}) with a recommendation each, most urgent first`,
  tags: ["analytics"],
  ...access("analytics:read"),
  responses: { 200: json(z.object({ at: z.string(), bottlenecks: z.array(Bottleneck) }), "Bottlenecks of the workers' fresh reports (a stale report shows none)."), ...problems() },
});

/** Workers serve every plan: a token held to some plans or repositories does not see them. */
function unscoped(principal: Principal): void {
  if (principal.scope) throw new ApiError(403, "Forbidden", "workers serve every plan and repository, so a scoped token does not see them; use an unscoped token (an admin creates one with POST /v1/tokens)");
}

export function workerRoutes(deps: AppDeps) {
  return router()
    .openapi(list, async (c) => {
      unscoped(c.get("principal"));
      return c.json(await workersNow(deps.temporal), 200);
    })
    .openapi(bottlenecks, async (c) => {
      unscoped(c.get("principal"));
      const now = new Date();
      return c.json({ at: now.toISOString(), bottlenecks: (await workersNow(deps.temporal, now)).bottlenecks }, 200);
    });
}

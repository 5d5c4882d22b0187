import { createRoute, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { plans } from "../../db/schema.js";
import { DEFAULT_RPO_SECONDS, gatherAnalytics, planAnalytics } from "../analytics.js";
import type { AppDeps } from "../app.js";
import { ApiError } from "../errors.js";
import { access, IdParam, json, problems, router } from "../openapi.js";

const Options = z.object({
  rpoHours: z.coerce
    .number()
    .positive()
    .max(24 * 365)
    .optional()
    .openapi({ description: `The recovery point objective the risk score measures the last good backup against, in hours (default ${DEFAULT_RPO_SECONDS / 3600}).` }),
  bytes: z.coerce.number().int().nonnegative().optional().openapi({ description: "A data size to estimate a backup's duration for (the last backup's size by default)." }),
});

const Recommendation = z.object({ type: z.string(), priority: z.enum(["critical", "high", "medium", "low"]), title: z.string(), description: z.string(), impact: z.string() });
const Risk = z.object({
  score: z.number().openapi({ description: "0 (fine) to 100." }),
  level: z.enum(["low", "medium", "high", "critical"]),
  factors: z.array(z.object({ kind: z.string(), points: z.number(), maxPoints: z.number(), detail: z.string() })),
});
const SuccessRate = z.object({ windowDays: z.number(), runs: z.number(), successes: z.number(), failures: z.number(), rate: z.number().nullable() });
const Forecast = z.object({
  horizonDays: z.number(),
  daysWithRuns: z.number(),
  rate: z.number().nullable(),
  interval: z.array(z.number()).nullable(),
  changePerWeek: z.number().nullable(),
  trend: z.enum(["improving", "declining", "stable", "unknown"]),
  confidence: z.number(),
});

const DurationEstimate = z.object({
  bytes: z.number(),
  seconds: z.number(),
  interval: z.array(z.number()).nullable().openapi({ description: "About-95% range; null when the estimate comes from throughput alone." }),
  method: z.enum(["regression", "throughput"]),
  throughputBytesPerSecond: z.number(),
  fixedSeconds: z.number().nullable(),
  rSquared: z.number().nullable(),
  samples: z.number(),
});
const StorageForecast = z.object({
  samples: z.number(),
  currentBytes: z.number(),
  measuredAt: z.string(),
  growthBytesPerDay: z.number(),
  rSquared: z.number(),
  horizonDays: z.number(),
  projectedBytes: z.number().openapi({ description: "currentBytes grown at growthBytesPerDay until horizonDays from now." }),
  quotaBytes: z.number().nullable(),
  usedFraction: z.number().nullable(),
  status: z.enum(["ok", "warning", "full"]),
  fillsAt: z.string().nullable(),
  daysUntilFull: z.number().nullable(),
});
const Anomaly = z.union([
  z.object({
    kind: z.literal("metric"),
    metric: z.enum(["durationSeconds", "bytesAdded", "files", "compressionRatio"]),
    jobId: z.string(),
    at: z.string(),
    value: z.number(),
    mean: z.number(),
    stdDev: z.number(),
    sigmas: z.number(),
    direction: z.enum(["high", "low"]),
  }),
  z.object({ kind: z.literal("failure-rate"), at: z.string(), windowDays: z.number(), runs: z.number(), failures: z.number(), rate: z.number() }),
]);

const PlanAnalytics = z
  .object({
    planId: z.string(),
    at: z.string(),
    successRate: SuccessRate.openapi({ description: "Backups of the last 7 days." }),
    forecast: Forecast.openapi({ description: "The success rate expected 7 days from now, from a line through the daily rates." }),
    duration: DurationEstimate.nullable().openapi({ description: "How long a backup of `bytes` takes, from a regression of duration on bytes over past runs (null with fewer than 3)." }),
    storage: StorageForecast.nullable().openapi({ description: "The repository's growth per day and projected size, from its size after each backup (null with fewer than 3 samples)." }),
    anomalies: z.array(Anomaly).openapi({ description: "3-sigma outliers on duration, bytes added, files and compression ratio; a failure rate over 20%." }),
    risk: Risk,
    recommendations: z.array(Recommendation),
    series: z
      .object({
        backups: z.array(
          z.object({
            jobId: z.string(),
            at: z.string().openapi({ description: "When the backup finished." }),
            outcome: z.enum(["success", "failure", "cancelled"]),
            durationSeconds: z.number().openapi({ description: "The job's whole time, from its start to its end." }),
            bytesAdded: z.number().nullable().openapi({ description: "New data before compression (null when the job recorded none)." }),
          }),
        ),
        usage: z.array(z.object({ at: z.string(), bytes: z.number().openapi({ description: "The repository's size (its packs) after a backup into it." }) })),
      })
      .openapi({ description: "The points the figures were computed from (the latest 500 of each), for charts: the plan's finished backups, and its repository's size after each backup into it." }),
  })
  .openapi("PlanAnalytics");

const Overall = z
  .object({
    at: z.string(),
    plans: z.number(),
    successRate: SuccessRate,
    forecast: Forecast,
    risk: z.array(z.object({ planId: z.string(), score: z.number(), level: z.string() })),
    anomalies: z.number(),
    recommendations: z.array(Recommendation.extend({ planId: z.string() })),
    storage: z
      .array(
        z.object({
          repositoryId: z.string(),
          name: z.string(),
          quotaBytes: z.number(),
          usedBytes: z.number().nullable(),
          usedFraction: z.number().nullable(),
          growthBytesPerDay: z.number().nullable(),
          fillsAt: z.string().nullable().openapi({ description: "When the quota fills at the current growth (a line through the usage after each backup; null with fewer than 3 samples or no growth)." }),
          daysUntilFull: z.number().nullable(),
        }),
      )
      .openapi({ description: "Each repository with a quota (PATCH /v1/repositories/{id} quotaBytes) that the token's plans write into: its usage and the date its quota fills." }),
  })
  .openapi("OverallAnalytics");

const overall = createRoute({
  method: "get",
  path: "/analytics",
  operationId: "getAnalytics",
  summary: "Analytics over every plan the token sees: success rate and its 7-day forecast, plans ranked by risk, anomalies, recommendations",
  tags: ["analytics"],
  ...access("analytics:read"),
  request: { query: Options },
  responses: { 200: json(Overall, "Computed from the catalog's finished jobs."), ...problems(400) },
});

const perPlan = createRoute({
  method: "get",
  path: "/analytics/plans/{id}",
  operationId: "getPlanAnalytics",
  summary: "One plan's analytics: success rate and forecast, duration estimate, storage growth forecast, anomalies, risk score with its factors, recommendations",
  tags: ["analytics"],
  ...access("analytics:read", { resource: "plan", in: "param", field: "id" }),
  request: { params: IdParam, query: Options },
  responses: { 200: json(PlanAnalytics, "Computed from the catalog's finished jobs."), ...problems(400, 404) },
});

/** GET /v1/analytics and /v1/analytics/plans/{id}: analytics/ over catalog rows, nothing asked of Temporal or a worker. */
export function analyticsRoutes(deps: AppDeps) {
  const { catalog } = deps;
  return router()
    .openapi(overall, async (c) => {
      const { rpoHours, bytes } = c.req.valid("query");
      const { overall: result } = await gatherAnalytics(catalog, c.get("principal").scope, { rpoSeconds: rpoHours && rpoHours * 3600, estimateBytes: bytes });
      return c.json(result, 200);
    })
    .openapi(perPlan, async (c) => {
      const { id } = c.req.valid("param");
      const { rpoHours, bytes } = c.req.valid("query");
      const [plan] = await catalog.select().from(plans).where(eq(plans.id, id));
      if (!plan) throw ApiError.notFound("plan", id, "list plans with GET /v1/plans");
      return c.json(await planAnalytics(catalog, plan, { rpoSeconds: rpoHours && rpoHours * 3600, estimateBytes: bytes }), 200);
    });
}

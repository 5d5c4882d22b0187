import * as path from "node:path";
import { z } from "@hono/zod-openapi";
import { PathPatterns } from "../../engine/pathmatch.js";
import { validatePolicy } from "../../engine/retention.js";
import { cronProblem, isTimeZone } from "../cron.js";
import { LIMITS } from "../limits.js";

const absolutePath = z
  .string()
  .min(1)
  .max(LIMITS.path)
  .refine((p) => path.isAbsolute(p), "use an absolute path: the worker that reads it may run in another directory");

/** Include or exclude patterns, read as the engine reads them (engine/pathmatch.ts): one it cannot read is refused now, not at the next run. */
export const PathPatternList = z
  .array(
    z
      .string()
      .min(1)
      .max(LIMITS.pattern)
      .superRefine((pattern, ctx) => {
        try {
          new PathPatterns([pattern]);
        } catch (err) {
          ctx.addIssue({ code: "custom", message: (err as Error).message });
        }
      }),
  )
  .max(LIMITS.patterns);

const Source = z
  .strictObject({
    type: z.literal("files"),
    paths: z.array(absolutePath).min(1, "give at least one path to back up").max(LIMITS.paths, `give at most ${LIMITS.paths} paths; back up a common parent instead`).openapi({ example: ["/var/www"] }),
    exclude: PathPatternList.optional().openapi({
      example: ["*.tmp", "/var/www/cache/*"],
      description: "Paths to leave out. A pattern with a / matches the absolute path from the root; one without matches any name.",
    }),
  })
  .openapi("FileSource");

const Schedule = z
  .strictObject({
    cron: z
      .string()
      .max(200)
      .superRefine((cron, ctx) => {
        const problem = cronProblem(cron);
        if (problem) ctx.addIssue({ code: "custom", message: problem });
      })
      .openapi({ example: "0 3 * * *", description: "Five fields (minute hour day-of-month month day-of-week) or @hourly/@daily/@weekly/@monthly/@yearly." }),
    timezone: z
      .string()
      .max(100)
      .default("UTC")
      .refine(isTimeZone, "use an IANA time zone name such as Europe/Paris, America/New_York or UTC")
      .openapi({ example: "Europe/Paris" }),
  })
  .openapi("Schedule");

const count = z.number().int("use a whole number").min(0).optional();

const Retention = z
  .strictObject({
    keepLast: count,
    keepHourly: count,
    keepDaily: count,
    keepWeekly: count,
    keepMonthly: count,
    keepYearly: count,
    keepWithin: z
      .string()
      .max(50)
      .refine((within) => {
        try {
          validatePolicy({ keepWithin: within });
          return true;
        } catch {
          return false;
        }
      }, "use years, months, days and hours such as 30d, 6m, 1y6m or 2d12h (m means months)")
      .optional()
      .openapi({ example: "30d" }),
  })
  .refine((r) => Object.values(r).some((v) => v !== undefined && v !== 0), "a retention policy needs at least one non-zero rule, otherwise every snapshot would be removed; for example keepDaily: 7")
  .openapi("Retention");

const secondaryRepositoryIds = z
  .array(z.string().min(1).max(LIMITS.id))
  .max(8, "give at most 8 secondary repositories")
  .refine((ids) => new Set(ids).size === ids.length, "each secondary repository may be named once")
  .openapi({ description: "Repositories that get a copy of each new snapshot after it is verified; one that cannot be reached makes a warning on the job, not a failure.", example: ["3f9a0c1d2e4b5a69"] });

const verifySamplePercent = z.number().min(0).max(100).openapi({ description: "Share of the new snapshot's packs read back after each backup (0-100).", example: 10 });

export const PlanInput = z
  .strictObject({
    name: z.string().trim().min(1).max(100).openapi({ example: "www" }),
    repositoryId: z.string().min(1).max(LIMITS.id),
    source: Source,
    schedule: Schedule.optional(),
    retention: Retention.optional(),
    verifySamplePercent: verifySamplePercent.optional(),
    secondaryRepositoryIds: secondaryRepositoryIds.optional(),
  })
  .openapi("PlanInput");

export const PlanPatch = z
  .strictObject({
    name: z.string().trim().min(1).max(100).optional(),
    repositoryId: z.string().min(1).max(LIMITS.id).optional(),
    source: Source.optional(),
    schedule: Schedule.nullable().optional().openapi({ description: "null removes the schedule (and its Temporal Schedule)." }),
    retention: Retention.nullable().optional().openapi({ description: "null removes the retention policy." }),
    verifySamplePercent: verifySamplePercent.nullable().optional(),
    secondaryRepositoryIds: secondaryRepositoryIds.optional().openapi({ description: "Replaces the list; [] removes every secondary." }),
  })
  .openapi("PlanPatch");

export const Plan = z
  .object({
    id: z.string(),
    name: z.string(),
    repositoryId: z.string(),
    source: Source,
    schedule: Schedule.nullable(),
    retention: Retention.nullable(),
    verifySamplePercent: z.number().nullable(),
    secondaryRepositoryIds: z.array(z.string()),
    paused: z.boolean(),
    scheduleId: z.string().nullable().openapi({ description: "The Temporal Schedule id, when the plan has a schedule." }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Plan");

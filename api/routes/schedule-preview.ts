import { randomBytes } from "node:crypto";
import { createRoute, z } from "@hono/zod-openapi";
import { ScheduleNotFoundError, type Client, type ScheduleSpec } from "@temporalio/client";
import type { AppDeps } from "../app.js";
import { blackoutCalendars, type Blackout } from "../blackouts.js";
import { ApiError } from "../errors.js";
import { access, json, jsonBody, problems, router } from "../openapi.js";
import { withTemporal } from "../temporal.js";
import { Schedule } from "./plan-schemas.js";

/** Most runs one preview lists: each call creates and deletes Temporal schedules, and a describe lists ten runs, so twenty is two schedules at most. */
export const PREVIEW_MAX = 20;
/** How many runs Temporal's describe lists for a schedule (its FutureActionCount). */
const PER_DESCRIBE = 10;

const PreviewInput = z
  .strictObject({
    cron: Schedule.shape.cron,
    timezone: Schedule.shape.timezone,
    blackouts: Schedule.shape.blackouts,
    count: z.int().min(1).max(PREVIEW_MAX).default(PER_DESCRIBE).openapi({ description: `How many runs to list (1 to ${PREVIEW_MAX}, default ${PER_DESCRIBE}).` }),
  })
  .openapi("SchedulePreviewInput");

const Preview = z
  .object({
    nextRuns: z.array(z.string()).openapi({ description: "The next times a schedule with this cron, zone and blackout windows would start a run, as Temporal computes them (ISO 8601, UTC); fewer than asked when the cron comes due less often than that, none when never." }),
  })
  .openapi("SchedulePreview");

const preview = createRoute({
  method: "post",
  path: "/schedules/preview",
  operationId: "previewSchedule",
  summary: "The next runs a schedule would take, computed by Temporal before any plan is saved (the plan editor's preview)",
  tags: ["plans"],
  ...access("plans:write"),
  request: { body: jsonBody(PreviewInput) },
  responses: { 200: json(Preview, "The next runs."), ...problems(400, 403, 415) },
});

/**
 * Asks Temporal for the next `count` action times of a schedule spec: creates a
 * paused schedule under a `preview-<random>` id (paused: it never takes an action,
 * and Temporal still lists its future action times), describes it, and deletes it
 * whatever happens. A describe lists ten times; for more, a second schedule starts
 * just after the last one listed.
 */
export async function previewRuns(client: Client, spec: ScheduleSpec, count: number): Promise<Date[]> {
  const runs: Date[] = [];
  while (runs.length < count) {
    const startAt = runs.length ? new Date(runs[runs.length - 1].getTime() + 1000) : undefined;
    const listed = await describeOnce(client, { ...spec, ...(startAt ? { startAt } : {}) });
    runs.push(...listed);
    if (listed.length < PER_DESCRIBE) break;
  }
  return runs.slice(0, count);
}

async function describeOnce(client: Client, spec: ScheduleSpec): Promise<Date[]> {
  const scheduleId = `preview-${randomBytes(8).toString("hex")}`;
  let handle;
  try {
    handle = await client.schedule.create({
      scheduleId,
      spec,
      // Never started (the schedule is paused and deleted at once); should it be, no worker knows this type or polls this queue.
      action: { type: "startWorkflow", workflowType: "cairnSchedulePreview", taskQueue: "cairn-schedule-preview-nobody-polls", args: [] },
      state: { paused: true, note: "next-run preview through the Cairn API; deleted at once" },
    });
  } catch (err) {
    throw refused(err) ?? err;
  }
  try {
    const { info } = await handle.describe();
    return info.nextActionTimes;
  } finally {
    await handle.delete().catch((err) => {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    });
  }
}

/** Temporal's refusal of a spec our checks let through, as a 400 naming the field. */
function refused(err: unknown): ApiError | undefined {
  const message = String((err as Error)?.message ?? "");
  if (/time ?zone/i.test(message)) return new ApiError(400, "Invalid request", `timezone: ${message}; use an IANA time zone name such as Europe/Paris, America/New_York or UTC`, [{ in: "body", path: "timezone", message }]);
  if (err instanceof TypeError || /invalid|not in range|cron/i.test(message)) return new ApiError(400, "Invalid request", `cron: Temporal does not read this expression (${message}); write five fields such as "0 3 * * *"`, [{ in: "body", path: "cron", message }]);
  return undefined;
}

/** POST /v1/schedules/preview: the next runs of a cron, zone and blackout windows, before a plan is saved. */
export function schedulePreviewRoutes(deps: AppDeps) {
  return router().openapi(preview, async (c) => {
    const { cron, timezone, blackouts, count } = c.req.valid("json");
    const spec: ScheduleSpec = { cronExpressions: [cron], timezone, ...(blackouts?.length ? { skip: blackoutCalendars(blackouts as Blackout[]) } : {}) };
    const runs = await withTemporal(deps.temporal, () => previewRuns(deps.temporal, spec, count), 20_000);
    return c.json({ nextRuns: runs.map((t) => t.toISOString()) }, 200);
  });
}

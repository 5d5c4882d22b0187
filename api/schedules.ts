import { ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from "@temporalio/client";
import type { plans, repositories, ScheduleOverlap } from "../db/schema.js";
import { blackoutCalendars } from "./blackouts.js";
import { planTag } from "../engine/snapshot.js";
import { TASK_QUEUE, WORKFLOW_TYPES, type BackupInput, type DrillInput, type RepositoryTarget } from "../workflows/messages.js";
import { PRIORITY_KEYS } from "./queue.js";
import { searchAttributes, withTemporal } from "./temporal.js";

export type PlanRow = typeof plans.$inferSelect;
export type RepositoryRow = typeof repositories.$inferSelect;

/** One Temporal Schedule per plan, under a name an operator can find in the Web UI. */
export function scheduleId(planId: string): string {
  return `plan-${planId}`;
}

/** A registered repository as workflow inputs carry it: its password and credentials stay sealed. */
export function repositoryTarget(repo: RepositoryRow): RepositoryTarget {
  return {
    id: repo.id,
    url: repo.url,
    sealedPassword: repo.sealedPassword,
    ...(repo.sealedCredentials ? { sealedCredentials: repo.sealedCredentials } : {}),
    ...(repo.environmentCredentials ? { environmentCredentials: true } : {}),
    ...(repo.maxConcurrentJobs ? { maxConcurrentJobs: repo.maxConcurrentJobs } : {}),
  };
}

/** What backupWorkflow needs to run a plan; the passwords stay sealed. `secondaries` are the rows of the plan's secondaryRepositoryIds. */
export function backupInput(plan: PlanRow, repo: RepositoryRow, secondaries: RepositoryRow[] = []): BackupInput {
  return {
    planId: plan.id,
    planName: plan.name,
    repository: repositoryTarget(repo),
    source: plan.source,
    ...(plan.retention ? { retention: plan.retention } : {}),
    ...(plan.verifySamplePercent !== null ? { verifySamplePercent: plan.verifySamplePercent } : {}),
    tags: [planTag(plan.name)],
    ...(secondaries.length ? { secondaries: secondaries.map(repositoryTarget) } : {}),
    ...(retryOf(plan) ? { retry: retryOf(plan) } : {}),
    ...(plan.notifications?.length ? { notifications: plan.notifications } : {}),
    ...(repo.quotaBytes ? { quotaBytes: repo.quotaBytes } : {}),
  };
}

/** The plan's retry policy for its steps, when it sets one. */
function retryOf(plan: PlanRow): BackupInput["retry"] {
  const { maxAttempts, initialIntervalSeconds, backoffCoefficient } = plan.queue ?? {};
  if (maxAttempts === undefined && initialIntervalSeconds === undefined && backoffCoefficient === undefined) return undefined;
  return { maxAttempts, initialIntervalSeconds, backoffCoefficient };
}

/** Options for starting a backup of `plan`, the same from a schedule and from "run now". */
export function backupStart(plan: PlanRow, repo: RepositoryRow, secondaries: RepositoryRow[] = []) {
  return {
    taskQueue: TASK_QUEUE,
    args: [backupInput(plan, repo, secondaries)] as [BackupInput],
    typedSearchAttributes: searchAttributes("backup", plan.id, plan.source.type),
    priority: { priorityKey: PRIORITY_KEYS[plan.queue?.priority ?? "normal"] },
    ...(plan.queue?.timeoutMinutes ? { workflowExecutionTimeout: plan.queue.timeoutMinutes * 60_000 } : {}),
  };
}

/** Temporal's overlap policy for ours (the same names, lower case). */
export const OVERLAP_POLICIES: Record<ScheduleOverlap, ScheduleOverlapPolicy> = {
  skip: ScheduleOverlapPolicy.SKIP,
  buffer_one: ScheduleOverlapPolicy.BUFFER_ONE,
  buffer_all: ScheduleOverlapPolicy.BUFFER_ALL,
  cancel_other: ScheduleOverlapPolicy.CANCEL_OTHER,
  terminate_other: ScheduleOverlapPolicy.TERMINATE_OTHER,
  allow_all: ScheduleOverlapPolicy.ALLOW_ALL,
};

function scheduleOptions(plan: PlanRow, repo: RepositoryRow, secondaries: RepositoryRow[]): Omit<ScheduleOptions, "scheduleId"> {
  const { cron, timezone, overlap, blackouts } = plan.schedule!;
  return {
    // Blackout windows are Temporal's skip calendars: the server never takes an action in them, and leaves them out of the next runs it lists.
    spec: { cronExpressions: [cron], timezone, ...(blackouts?.length ? { skip: blackoutCalendars(blackouts) } : {}) },
    // Temporal appends the scheduled time to this id, so every run is backup-<plan>-<time> like run-now's.
    action: { type: "startWorkflow", workflowType: WORKFLOW_TYPES.backup, workflowId: `backup-${plan.id}`, ...backupStart(plan, repo, secondaries) },
    policies: { overlap: OVERLAP_POLICIES[overlap ?? "skip"] },
    state: { paused: plan.paused, note: plan.paused ? "paused through the Cairn API" : undefined },
  };
}

/**
 * Makes the plan's Temporal Schedule match the plan: created when a schedule
 * appears, updated when it changes, deleted when the schedule or the plan goes.
 * Plans that never had a schedule need no Temporal call.
 */
export async function syncSchedule(client: Client, before: PlanRow | undefined, after: PlanRow | undefined, repo: RepositoryRow | undefined, secondaries: RepositoryRow[] = []): Promise<void> {
  const planId = (after ?? before)?.id;
  if (!planId || (!before?.schedule && !after?.schedule)) return;
  const handle = client.schedule.getHandle(scheduleId(planId));
  await withTemporal(client, async () => {
    if (!after?.schedule || !repo) {
      await handle.delete().catch((err) => {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
      });
      return;
    }
    const options = scheduleOptions(after, repo, secondaries);
    try {
      // update() reads the current schedule first, so a schedule deleted behind our back is recreated below.
      await handle.update(() => ({ ...options, state: { paused: after.paused, note: options.state?.note } }));
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
      await client.schedule.create({ scheduleId: scheduleId(planId), ...options });
    }
  });
}

/** The Temporal Schedule of a plan's recovery drills. */
export function drillScheduleId(planId: string): string {
  return `drill-${planId}`;
}

/** What drillWorkflow needs to drill a plan; the passwords stay sealed. */
export function drillInput(plan: PlanRow, repo: RepositoryRow): DrillInput {
  return {
    planId: plan.id,
    planName: plan.name,
    repository: repositoryTarget(repo),
    source: plan.source,
    ...(plan.drill?.checkSql ? { checkSql: plan.drill.checkSql } : {}),
  };
}

/** Options for starting a drill of `plan`, the same from its schedule and from POST /v1/plans/{id}/drills. */
export function drillStart(plan: PlanRow, repo: RepositoryRow) {
  return {
    taskQueue: TASK_QUEUE,
    args: [drillInput(plan, repo)] as [DrillInput],
    typedSearchAttributes: searchAttributes("drill", plan.id, plan.source.type),
    priority: { priorityKey: PRIORITY_KEYS.low },
  };
}

/**
 * Makes the plan's drill schedule match its `drill.cron`: created, updated (the
 * plan's source and repository travel in its action), or deleted. It pauses
 * with the plan.
 */
export async function syncDrillSchedule(client: Client, before: PlanRow | undefined, after: PlanRow | undefined, repo: RepositoryRow | undefined): Promise<void> {
  const planId = (after ?? before)?.id;
  if (!planId || (!before?.drill?.cron && !after?.drill?.cron)) return;
  const handle = client.schedule.getHandle(drillScheduleId(planId));
  await withTemporal(client, async () => {
    if (!after?.drill?.cron || !repo) {
      await handle.delete().catch((err) => {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
      });
      return;
    }
    const note = after.paused ? "paused with its plan through the Cairn API" : undefined;
    const options: Omit<ScheduleOptions, "scheduleId"> = {
      spec: { cronExpressions: [after.drill.cron], timezone: after.drill.timezone },
      action: { type: "startWorkflow", workflowType: WORKFLOW_TYPES.drill, workflowId: `drill-${after.id}`, ...drillStart(after, repo) },
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
      state: { paused: after.paused, note },
    };
    try {
      await handle.update(() => ({ ...options, state: { paused: after.paused, note } }));
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
      await client.schedule.create({ scheduleId: drillScheduleId(planId), ...options });
    }
  });
}

/**
 * Alerts in the catalog: raised (deduplicated while not resolved), resolved when
 * their condition clears, and handed to the plans' notification channels. The
 * decisions are analytics/alerts.ts's pure functions; this file reads their input
 * from the catalog and applies them. Evaluated by the job recorder's loop
 * (api/recorder.ts): each finished job once, overdue plans and quotas periodically.
 *
 * Other parts of Cairn raise their own alerts with raiseAlert (a recovery drill
 * that failed: kind "drill_failed") and clear them with resolveAlert.
 */
import { randomBytes } from "node:crypto";
import type { Client } from "@temporalio/client";
import { WorkflowExecutionAlreadyStartedError } from "@temporalio/client";
import { and, asc, desc, eq, inArray, isNotNull, isNull, ne, or, sql } from "drizzle-orm";
import { alertsForFinishedJob, overdueAlerts, quotaAlerts, type AlertDecision, type AlertSpec } from "../analytics/alerts.js";
import { detectAnomalies } from "../analytics/anomalies.js";
import { jobRecordFromRow } from "../analytics/records.js";
import { forecastStorage } from "../analytics/storage.js";
import type { JobRecord } from "../analytics/types.js";
import type { Catalog } from "../db/client.js";
import { alerts, jobs, plans, repositories, repositoryUsage } from "../db/schema.js";
import { TASK_QUEUE, type AlertNotificationEvent, type BackupResult, type NotificationChannel, type VerifyResult } from "../workflows/messages.js";
import { withTemporal } from "./temporal.js";

export type AlertRow = typeof alerts.$inferSelect;
export type { AlertSpec } from "../analytics/alerts.js";

/** The workflow that sends one alert notification to one channel (workflows/notifications.ts). */
export const ALERT_NOTIFICATION_WORKFLOW = "alertNotificationWorkflow";

/**
 * Opens an alert, or, when one with the same dedupe key is open or acknowledged,
 * counts another occurrence on it (its title, detail and severity updated to the
 * latest). `opened` says which. Safe to call from several API processes at once.
 */
export async function raiseAlert(catalog: Catalog, spec: AlertSpec, now = new Date()): Promise<{ alert: AlertRow; opened: boolean }> {
  const [row] = await catalog
    .insert(alerts)
    .values({
      id: randomBytes(8).toString("hex"),
      kind: spec.kind,
      severity: spec.severity,
      state: "open",
      planId: spec.planId ?? null,
      repositoryId: spec.repositoryId ?? null,
      title: spec.title,
      detail: spec.detail,
      dedupeKey: spec.dedupeKey,
      openedAt: now,
      lastSeenAt: now,
    })
    .onConflictDoUpdate({
      target: alerts.dedupeKey,
      targetWhere: sql`state <> 'resolved'`,
      set: { occurrences: sql`${alerts.occurrences} + 1`, lastSeenAt: now, title: spec.title, detail: spec.detail, severity: spec.severity },
    })
    .returning();
  // A repeat always counts up, so only a fresh row has one occurrence.
  return { alert: row, opened: row.occurrences === 1 };
}

/** Resolves the unresolved alert with this dedupe key, if there is one; returns whether there was. */
export async function resolveAlert(catalog: Catalog, dedupeKey: string, resolution: string, now = new Date()): Promise<boolean> {
  const rows = await catalog
    .update(alerts)
    .set({ state: "resolved", resolvedAt: now, resolution })
    .where(and(eq(alerts.dedupeKey, dedupeKey), ne(alerts.state, "resolved")))
    .returning({ id: alerts.id });
  return rows.length > 0;
}

/** Applies a decision: resolutions first, so a key both cleared and raised (never in practice) stays open. */
export async function applyDecision(catalog: Catalog, decision: AlertDecision, now = new Date()): Promise<void> {
  const raised = new Set(decision.raise.map((r) => r.dedupeKey));
  for (const r of decision.resolve) if (!raised.has(r.dedupeKey)) await resolveAlert(catalog, r.dedupeKey, r.resolution, now);
  for (const spec of decision.raise) await raiseAlert(catalog, spec, now);
}

/** Acknowledges an open alert (someone is on it); an acknowledged one stays so, a resolved one cannot be. */
export async function acknowledgeAlert(catalog: Catalog, id: string, by: string, now = new Date()): Promise<AlertRow | undefined> {
  const [row] = await catalog
    .update(alerts)
    .set({ state: "acknowledged", acknowledgedAt: now, acknowledgedBy: by })
    .where(and(eq(alerts.id, id), eq(alerts.state, "open")))
    .returning();
  return row;
}

/** The repository a verify or check job checked, from its id (verify-<repository>-<time>). */
function checkedRepository(jobId: string): string | undefined {
  return /^(?:verify|check)-([0-9a-f]+)-/.exec(jobId)?.[1];
}

/**
 * Evaluates every finished job the alert evaluation has not seen, oldest first,
 * each claimed once (several API processes may run this): keeps the repository's
 * usage after a backup, then raises and resolves what the job shows. Returns how
 * many jobs it evaluated.
 */
export async function evaluateFinishedJobs(catalog: Catalog, now = new Date()): Promise<number> {
  const pending = await catalog
    .select({ id: jobs.id })
    .from(jobs)
    .where(and(isNull(jobs.alertsEvaluatedAt), isNotNull(jobs.finishedAt), ne(jobs.status, "running")))
    .orderBy(asc(jobs.finishedAt))
    .limit(200);
  let evaluated = 0;
  for (const { id } of pending) {
    const [row] = await catalog.update(jobs).set({ alertsEvaluatedAt: now }).where(and(eq(jobs.id, id), isNull(jobs.alertsEvaluatedAt))).returning();
    if (!row) continue;
    evaluated++;
    const [plan] = row.planId ? await catalog.select().from(plans).where(eq(plans.id, row.planId)) : [];
    const result = row.result as (BackupResult & VerifyResult) | null;
    if (row.kind === "backup" && row.status === "completed" && plan && result?.repositoryStats && row.finishedAt) {
      await catalog.insert(repositoryUsage).values({ repositoryId: plan.repositoryId, at: row.finishedAt, bytes: result.repositoryStats.packBytes, snapshots: result.repositoryStats.snapshots, jobId: row.id });
    }
    let anomalies: ReturnType<typeof detectAnomalies> = [];
    if (row.kind === "backup" && plan && row.finishedAt) {
      const history = await catalog.select().from(jobs).where(and(eq(jobs.planId, plan.id), eq(jobs.kind, "backup"))).orderBy(asc(jobs.finishedAt));
      const records = history.map(jobRecordFromRow).filter((r): r is JobRecord => r !== undefined && r.finishedAt <= row.finishedAt!);
      anomalies = detectAnomalies(records, row.finishedAt);
    }
    const decision = alertsForFinishedJob(
      {
        id: row.id,
        kind: row.kind,
        status: row.status,
        planId: row.planId,
        planName: plan?.name,
        repositoryId: checkedRepository(row.id),
        error: row.error,
        failedSteps: (row.steps ?? []).filter((s) => s.outcome !== "completed").map((s) => s.name),
        verifyErrors: row.kind === "verify" || row.kind === "check" ? (result?.errors ?? []) : undefined,
      },
      anomalies,
    );
    await applyDecision(catalog, decision, now);
  }
  return evaluated;
}

/** The latest usage sample of each repository. */
export async function latestUsage(catalog: Catalog, repositoryIds?: string[]): Promise<Map<string, { bytes: number; at: Date }>> {
  const rows = await catalog
    .selectDistinctOn([repositoryUsage.repositoryId], { repositoryId: repositoryUsage.repositoryId, bytes: repositoryUsage.bytes, at: repositoryUsage.at })
    .from(repositoryUsage)
    .where(repositoryIds ? inArray(repositoryUsage.repositoryId, repositoryIds.length ? repositoryIds : [""]) : undefined)
    .orderBy(repositoryUsage.repositoryId, desc(repositoryUsage.at));
  return new Map(rows.map((r) => [r.repositoryId, { bytes: r.bytes, at: r.at }]));
}

/** The usage history of one repository, oldest first. */
export async function usageHistory(catalog: Catalog, repositoryId: string): Promise<{ at: Date; bytes: number }[]> {
  return catalog.select({ at: repositoryUsage.at, bytes: repositoryUsage.bytes }).from(repositoryUsage).where(eq(repositoryUsage.repositoryId, repositoryId)).orderBy(asc(repositoryUsage.at));
}

/** "Backup overdue" for every plan, "storage nearly full" for every repository. */
export async function evaluatePeriodic(catalog: Catalog, now = new Date()): Promise<void> {
  const planRows = await catalog.select().from(plans);
  const lastSuccess = await catalog
    .select({ planId: jobs.planId, at: sql<Date>`max(${jobs.finishedAt})`.mapWith(jobs.finishedAt) })
    .from(jobs)
    .where(and(eq(jobs.kind, "backup"), eq(jobs.status, "completed")))
    .groupBy(jobs.planId);
  const last = new Map(lastSuccess.map((r) => [r.planId, r.at]));
  await applyDecision(catalog, overdueAlerts(now, planRows.map((p) => ({ ...p, lastSuccessAt: last.get(p.id) ?? undefined }))), now);

  const repos = await catalog.select({ id: repositories.id, name: repositories.name, quotaBytes: repositories.quotaBytes }).from(repositories);
  const usage = await latestUsage(catalog);
  const withQuota = await Promise.all(
    repos.map(async (r) => {
      const used = usage.get(r.id);
      const fillsAt = r.quotaBytes && used ? (forecastStorage(await usageHistory(catalog, r.id), now, { quotaBytes: r.quotaBytes })?.fillsAt ?? null) : null;
      return { ...r, usedBytes: used?.bytes, measuredAt: used?.at, fillsAt };
    }),
  );
  await applyDecision(catalog, quotaAlerts(withQuota), now);
}

/** The channels an alert goes to: those of its plan, or of every plan writing into its repository, that asked for its kind. */
async function channelsFor(catalog: Catalog, alert: AlertRow): Promise<{ planId: string; index: number; channel: NotificationChannel }[]> {
  const where = alert.planId ? eq(plans.id, alert.planId) : alert.repositoryId ? eq(plans.repositoryId, alert.repositoryId) : undefined;
  if (!where) return [];
  const rows = await catalog.select({ id: plans.id, notifications: plans.notifications }).from(plans).where(where);
  return rows.flatMap((p) => (p.notifications ?? []).map((channel, index) => ({ planId: p.id, index, channel })).filter((c) => c.channel.on.includes(alert.kind)));
}

/**
 * Hands alerts that opened or resolved since the last call to the notification
 * workflow, one per channel; each retries its sending on its own (Temporal), and
 * its workflow id makes a second hand-over (another API process) a no-op.
 */
export async function deliverAlertNotifications(catalog: Catalog, client: Client): Promise<number> {
  const due = await catalog
    .select()
    .from(alerts)
    .where(or(isNull(alerts.notifiedAt), and(eq(alerts.state, "resolved"), isNull(alerts.resolvedNotifiedAt))))
    .orderBy(asc(alerts.openedAt))
    .limit(100);
  let started = 0;
  for (const alert of due) {
    const state: AlertNotificationEvent["state"] = alert.notifiedAt === null ? "opened" : "resolved";
    // An alert raised and resolved before its opening was sent is told as resolved only.
    const event: AlertNotificationEvent = {
      type: "alert",
      alertId: alert.id,
      kind: alert.kind,
      severity: alert.severity,
      state: alert.state === "resolved" ? "resolved" : "opened",
      title: alert.title,
      detail: alert.state === "resolved" ? `${alert.detail} Resolved: ${alert.resolution ?? "the condition cleared"}.` : alert.detail,
      ...(alert.planId ? { planId: alert.planId } : {}),
      ...(alert.repositoryId ? { repositoryId: alert.repositoryId } : {}),
      at: (alert.state === "resolved" ? (alert.resolvedAt ?? alert.lastSeenAt) : alert.openedAt).toISOString(),
    };
    for (const { planId, index, channel } of await channelsFor(catalog, alert)) {
      await withTemporal(client, () =>
        client.workflow.start(ALERT_NOTIFICATION_WORKFLOW, { workflowId: `alert-${alert.id}-${event.state}-${planId}-${index}`, taskQueue: TASK_QUEUE, args: [{ channel, event }] }),
      ).catch((err) => {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      });
      started++;
    }
    const now = new Date();
    await catalog
      .update(alerts)
      .set(state === "opened" ? { notifiedAt: now, ...(alert.state === "resolved" ? { resolvedNotifiedAt: now } : {}) } : { resolvedNotifiedAt: now })
      .where(eq(alerts.id, alert.id));
  }
  return started;
}

import { ActivityCancellationType, allHandlersFinished, condition, isCancellation, proxyActivities, workflowInfo, type ActivityOptions } from "@temporalio/workflow";
import type { CairnActivities } from "../activities/index.js";
import { hasRetentionRules, PERMANENT_FAILURES, type BackupInput, type BackupResult, type JobStatus, type NotificationEvent, type NotifyOn, type ReplicaRecord, type StepRetry } from "./messages.js";
import { innermostMessage, sendToChannels } from "./notifications.js";
import { inJobSlots } from "./slots.js";
import { asJob, ensureSearchAttributes, trackStatus } from "./status.js";

const nonRetryableErrorTypes = Object.values(PERMANENT_FAILURES);

/**
 * The steps' activities with their timeouts and retries; a plan's own retry
 * policy (attempts, first interval, backoff) replaces each step's when given.
 */
function stepActivities(plan?: StepRetry) {
  const retry = (own: ActivityOptions["retry"]): ActivityOptions["retry"] =>
    plan
      ? {
          ...own,
          ...(plan.maxAttempts !== undefined ? { maximumAttempts: plan.maxAttempts } : {}),
          // The step's own ceiling may be below the plan's first interval: Temporal's default (100 times the first) applies then.
          ...(plan.initialIntervalSeconds !== undefined ? { initialInterval: `${plan.initialIntervalSeconds}s`, maximumInterval: undefined } : {}),
          ...(plan.backoffCoefficient !== undefined ? { backoffCoefficient: plan.backoffCoefficient } : {}),
        }
      : own;
  const proxy = (options: ActivityOptions) => proxyActivities<CairnActivities>({ ...options, retry: retry(options.retry) });
  /** Steps that only read or compare: quick, and retried a few times. */
  const quick: ActivityOptions = {
    startToCloseTimeout: "2 minutes",
    retry: { initialInterval: "2s", maximumAttempts: 5, nonRetryableErrorTypes },
  };

  const { prepareBackup, recordRun } = proxy(quick);

  /**
   * The snapshot may run for hours. A worker that dies stops heartbeating, so after
   * the heartbeat timeout the next attempt starts elsewhere and resumes from the
   * last checkpoint. A cancellation waits for the activity to stop and clean up.
   */
  const { snapshotBackup } = proxy({
    startToCloseTimeout: "24 hours",
    heartbeatTimeout: "30 seconds",
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: "5s", backoffCoefficient: 2, maximumInterval: "5 minutes", maximumAttempts: 10, nonRetryableErrorTypes },
  });

  const { verifyBackup } = proxy({
    startToCloseTimeout: "6 hours",
    heartbeatTimeout: "1 minute",
    retry: { initialInterval: "10s", maximumAttempts: 3, nonRetryableErrorTypes },
  });

  /** Archiving binary logs reads them over the replication protocol; idempotent, so retried like a snapshot. */
  const { archivePlanBinlogs } = proxy({
    startToCloseTimeout: "6 hours",
    heartbeatTimeout: "1 minute",
    retry: { initialInterval: "10s", backoffCoefficient: 2, maximumInterval: "5 minutes", maximumAttempts: 5, nonRetryableErrorTypes },
  });

  /**
   * A copy to a secondary may send a whole snapshot over a slow link. Each secondary
   * has its own activity and retries, so one that is down delays only itself.
   */
  const { replicateSnapshot } = proxy({
    startToCloseTimeout: "24 hours",
    heartbeatTimeout: "1 minute",
    retry: { initialInterval: "30s", backoffCoefficient: 2, maximumInterval: "10 minutes", maximumAttempts: 5, nonRetryableErrorTypes },
  });

  /** Retention needs the exclusive lock: other plans' backups may hold the repository for a while. */
  const { applyRetention } = proxy({
    startToCloseTimeout: "6 hours",
    heartbeatTimeout: "1 minute",
    retry: { initialInterval: "30s", backoffCoefficient: 2, maximumInterval: "10 minutes", maximumAttempts: 10, nonRetryableErrorTypes },
  });

  const { notify, sendNotification } = proxy({
    startToCloseTimeout: "1 minute",
    retry: { initialInterval: "5s", maximumAttempts: 4, nonRetryableErrorTypes },
  });

  return { prepareBackup, recordRun, snapshotBackup, verifyBackup, archivePlanBinlogs, replicateSnapshot, applyRetention, notify, sendNotification };
}

const BUILT_IN = stepActivities();

/**
 * One run of a backup plan: prepare -> snapshot -> verify -> binlogs (a physical MySQL plan that archives them) -> replicate (to each
 * secondary, in parallel) -> retention -> record -> notify, each step an activity with its own timeouts and retries. Returns
 * counts and ids only; the data stays in the repository.
 */
export async function backupWorkflow(input: BackupInput): Promise<BackupResult> {
  const steps = input.retry ? stepActivities(input.retry) : BUILT_IN;
  const status = trackStatus("backup");
  ensureSearchAttributes({ plan: input.planId, source: input.source.type });
  return asJob(input.repository.id, async () => {
    try {
      return await inJobSlots(input.repository, status, () => runBackup(input, steps, status));
    } catch (err) {
      // The plan's failure channels hear of it; the job fails with its own cause whatever they answer.
      if (!isCancellation(err)) await notifyChannels(steps, input, "failure", { status: "failed", snapshotId: status.snapshotId, error: innermostMessage(err) }).catch(() => undefined);
      throw err;
    }
  });
}

/** Sends the event to each channel of the plan that asked for `on`, in parallel; returns why each one that could not be reached failed. */
async function notifyChannels(steps: typeof BUILT_IN, input: BackupInput, on: NotifyOn, what: Omit<NotificationEvent, "planId" | "planName" | "jobId" | "at">): Promise<string[]> {
  const channels = (input.notifications ?? []).filter((c) => c.on.includes(on));
  if (!channels.length) return [];
  const event: NotificationEvent = { planId: input.planId, planName: input.planName, jobId: workflowInfo().workflowId, at: new Date().toISOString(), ...what };
  return sendToChannels(steps.sendNotification, channels, event);
}

async function runBackup(input: BackupInput, steps: typeof BUILT_IN, status: JobStatus): Promise<BackupResult> {
  const { prepareBackup, recordRun, snapshotBackup, verifyBackup, archivePlanBinlogs, replicateSnapshot, applyRetention, notify } = steps;

  status.phase = "prepare";
  await prepareBackup(input);

  status.phase = "snapshot";
  const snapshot = await snapshotBackup(input);
  status.snapshotId = snapshot.snapshotId;
  status.warnings.push(...snapshot.warnings);
  if (snapshot.resumedFrom) {
    const r = snapshot.resumedFrom;
    status.warnings.push(`the snapshot resumed after attempt ${r.attempt} stopped; the ${r.packsIndexed} packs it had stored were reused, not uploaded again`);
  }

  status.phase = "verify";
  await verifyBackup({ repository: input.repository, snapshotId: snapshot.snapshotId, samplePercent: input.verifySamplePercent ?? 10 });

  // A physical MySQL / MariaDB plan with binlogs: the logs since the last archive, so recovery reaches this run and past it.
  let binlogs: string[] | undefined;
  if (input.source.type === "mysql" && input.source.mode === "physical" && input.source.binlogs) {
    status.phase = "binlogs";
    binlogs = (await archivePlanBinlogs(input)).files;
  }

  let replicas: ReplicaRecord[] | undefined;
  if (input.secondaries?.length) {
    status.phase = "replicate";
    const outcomes = await Promise.allSettled(input.secondaries.map((to) => replicateSnapshot({ from: input.repository, to, snapshotId: snapshot.snapshotId })));
    replicas = [];
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome.status === "fulfilled") {
        replicas.push(outcome.value);
        continue;
      }
      if (isCancellation(outcome.reason)) throw outcome.reason;
      // The snapshot is safe in the primary repository: a secondary that is down must not turn the backup into a failure.
      const cause = (outcome.reason as Error).cause;
      const why = cause instanceof Error ? cause.message : (outcome.reason as Error).message;
      status.warnings.push(`snapshot ${snapshot.snapshotId.slice(0, 8)} was not copied to secondary repository ${input.secondaries[i].id}: ${why}; the plan's next run copies it`);
    }
  }

  let snapshotsRemoved = 0;
  let walFilesExpired: number | undefined;
  if (hasRetentionRules(input.retention)) {
    status.phase = "retention";
    ({ snapshotsRemoved, walFilesExpired } = await applyRetention({ repository: input.repository, planId: input.planId, retention: input.retention }));
  }

  status.phase = "record";
  const repositoryStats = await recordRun({ repository: input.repository });

  const { resumedFrom: _, ...counts } = snapshot;
  const result: BackupResult = { ...counts, warnings: status.warnings, snapshotsRemoved, ...(walFilesExpired ? { walFilesExpired } : {}), ...(replicas ? { replicas } : {}), ...(binlogs ? { binlogs } : {}), repositoryStats };

  status.phase = "notify";
  try {
    await notify({ webhookUrl: input.notify?.webhookUrl, summary: { planId: input.planId, planName: input.planName, status: "succeeded", ...result } });
  } catch (err) {
    if (isCancellation(err)) throw err;
    // The backup itself succeeded; a webhook that is down must not turn it into a failure.
    const cause = (err as Error).cause;
    status.warnings.push(`the notification could not be sent: ${cause instanceof Error ? cause.message : (err as Error).message}`);
  }
  status.warnings.push(
    ...(await notifyChannels(steps, input, "success", {
      status: "succeeded",
      snapshotId: result.snapshotId,
      filesTotal: result.filesNew + result.filesChanged + result.filesUnmodified,
      bytesAdded: result.bytesAdded,
      durationSeconds: result.durationSeconds,
      warnings: status.warnings.length,
    })),
  );

  status.phase = "done";
  await condition(allHandlersFinished);
  return result;
}

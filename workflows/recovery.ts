import { allHandlersFinished, CancellationScope, condition, isCancellation, proxyActivities } from "@temporalio/workflow";
import type { CairnActivities } from "../activities/index.js";
import { PERMANENT_FAILURES, type LogicalRestoreInput, type LogicalRestoreJobResult, type RecoveryInput, type RecoveryResult, type RecoveryWindow, type RecoveryWindowInput, type Answer, type JobStatus } from "./messages.js";
import { inJobSlots } from "./slots.js";
import { asJob, ensureSearchAttributes, trackStatus } from "./status.js";

const nonRetryableErrorTypes = Object.values(PERMANENT_FAILURES);

/** Checks and choices: quick, retried a few times (a repository may be briefly unreachable). */
const { validateRecovery, prepareRecovery } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "5 minutes",
  retry: { initialInterval: "2s", maximumAttempts: 3, nonRetryableErrorTypes },
});

/** Writing the data directory reads a whole base backup and its WAL: long, heartbeating, resumed elsewhere if a worker dies. */
const { restoreRecovery } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "24 hours",
  heartbeatTimeout: "1 minute",
  retry: { initialInterval: "10s", backoffCoefficient: 2, maximumInterval: "5 minutes", maximumAttempts: 5, nonRetryableErrorTypes },
});

/** Replaying WAL may take hours; a second attempt finds the server already running and waits on. */
const { startRecovery } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "12 hours",
  heartbeatTimeout: "1 minute",
  retry: { initialInterval: "5s", maximumAttempts: 3, nonRetryableErrorTypes },
});

const { verifyRecovery, promoteRecovery, stopRecoveredServer } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "15 minutes",
  heartbeatTimeout: "1 minute",
  retry: { initialInterval: "2s", maximumAttempts: 3, nonRetryableErrorTypes },
});

/**
 * Point-in-time recovery of a physical plan into a new data directory, as named
 * steps: validate (policy, empty directory, free port, base backup and WAL
 * chosen) -> prepare -> restore -> start and recover (paused at the target) ->
 * verify (the caller's queries) -> promote. A failure after the server started
 * stops it again, so its port and directory are free for another try.
 */
export async function recoveryWorkflow(input: RecoveryInput): Promise<RecoveryResult> {
  const status = trackStatus("recovery");
  ensureSearchAttributes({ plan: input.planId, source: "postgres" });
  // A recovery reads a whole base backup and its WAL: it takes the repository's and the global concurrency slots.
  return asJob(input.repository.id, () => inJobSlots(input.repository, status, () => recover(input, status)));
}

async function recover(input: RecoveryInput, status: JobStatus): Promise<RecoveryResult> {
  status.phase = "validate";
  const choice = await validateRecovery(input);
  status.snapshotId = choice.snapshotId;

  status.phase = "prepare";
  await prepareRecovery(input);

  status.phase = "restore";
  await restoreRecovery(input, choice);

  let started = false;
  try {
    status.phase = "recover";
    started = true;
    const landing = await startRecovery(input);

    status.phase = "verify";
    const verified = await verifyRecovery(input);

    status.phase = "promote";
    const promoted = await promoteRecovery(input);

    const result: RecoveryResult = {
      lsn: landing.lsn,
      ...(landing.time ? { time: landing.time } : {}),
      timeline: promoted.timeline,
      baseBackup: { snapshotId: choice.snapshotId, stopTime: choice.stopTime, stopLsn: choice.stopLsn },
      secondsToAcceptingConnections: (Date.parse(promoted.acceptingAt) - Date.parse(choice.startedAt)) / 1000,
      dataDir: input.into.dataDir,
      port: input.into.port,
      verified,
    };
    status.phase = "done";
    await condition(allHandlersFinished);
    return result;
  } catch (err) {
    if (started) {
      // Stop the server even when the recovery was cancelled; a stop that fails leaves it to the operator.
      await CancellationScope.nonCancellable(() => stopRecoveredServer(input)).catch(() => undefined);
      status.warnings.push(`the recovered server on port ${input.into.port} was stopped because the recovery did not finish${isCancellation(err) ? " (cancelled)" : ""}`);
    }
    throw err;
  }
}

const { recoveryWindow } = proxyActivities<CairnActivities>({ startToCloseTimeout: "50 seconds", retry: { maximumAttempts: 1 } });

/** The API's request for a plan's recovery window (it never opens a repository itself). */
export async function recoveryWindowWorkflow(input: RecoveryWindowInput): Promise<Answer<RecoveryWindow>> {
  return recoveryWindow(input);
}

const { restoreLogicalDump } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "12 hours",
  retry: { initialInterval: "10s", maximumAttempts: 3, nonRetryableErrorTypes },
});

/** A logical plan's restore: one database of one dump (whole into a new database, or chosen tables), a job of kind restore. */
export async function logicalRestoreWorkflow(input: LogicalRestoreInput): Promise<LogicalRestoreJobResult> {
  const status = trackStatus("restore");
  ensureSearchAttributes({ plan: input.planId, source: "postgres" });
  return asJob(input.repository.id, async () => {
    const result = await inJobSlots(input.repository, status, async () => {
      status.phase = "restore";
      return restoreLogicalDump(input);
    });
    status.snapshotId = result.snapshotId;
    status.phase = "done";
    await condition(allHandlersFinished);
    return result;
  });
}

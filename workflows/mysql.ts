import { allHandlersFinished, CancellationScope, condition, isCancellation, proxyActivities } from "@temporalio/workflow";
import type { CairnActivities } from "../activities/index.js";
import { PERMANENT_FAILURES, type Answer, type JobStatus, type MysqlRecoveryInput, type MysqlRecoveryResult, type MysqlRecoveryWindow, type MysqlRecoveryWindowInput, type MysqlRestoreInput, type MysqlRestoreJobResult, type MysqlRestorePreview } from "./messages.js";
import { inJobSlots } from "./slots.js";
import { asJob, ensureSearchAttributes, trackStatus } from "./status.js";

const nonRetryableErrorTypes = Object.values(PERMANENT_FAILURES);

/** Checks and choices: quick, retried a few times (a repository may be briefly unreachable). */
const { validateMysqlRecovery, prepareMysqlRecovery } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "5 minutes",
  retry: { initialInterval: "2s", maximumAttempts: 3, nonRetryableErrorTypes },
});

/** Writing and preparing the data directory reads a whole backup: long, heartbeating, started over elsewhere if a worker dies. */
const { restoreMysqlRecovery } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "24 hours",
  heartbeatTimeout: "1 minute",
  retry: { initialInterval: "10s", backoffCoefficient: 2, maximumInterval: "5 minutes", maximumAttempts: 5, nonRetryableErrorTypes },
});

/** Replaying binary logs is attempted once: a second attempt would apply the events already applied again. */
const { replayMysqlRecovery } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "12 hours",
  heartbeatTimeout: "1 minute",
  retry: { maximumAttempts: 1 },
});

/** Starting finds a server an earlier attempt started and waits for it. */
const { startMysqlRecovered, verifyMysqlRecovery, stopMysqlRecovered } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "15 minutes",
  heartbeatTimeout: "1 minute",
  retry: { initialInterval: "2s", maximumAttempts: 3, nonRetryableErrorTypes },
});

/**
 * Point-in-time recovery of a physical MySQL / MariaDB plan into a new data
 * directory, as named steps: validate (policy, empty directory, free port, backup
 * and binary logs chosen) -> prepare -> restore (files, then mariadb-backup
 * --prepare) -> replay (archived binary logs up to the target) -> start (mariadbd
 * on 127.0.0.1:port) -> verify (the caller's queries). A failure after the server
 * started stops it again, so its port and directory are free for another try.
 */
export async function mysqlRecoveryWorkflow(input: MysqlRecoveryInput): Promise<MysqlRecoveryResult> {
  const status = trackStatus("recovery");
  ensureSearchAttributes({ plan: input.planId, source: "mysql" });
  // A recovery reads a whole backup and its binary logs: it takes the repository's and the global concurrency slots.
  return asJob(input.repository.id, () => inJobSlots(input.repository, status, () => recover(input, status)));
}

async function recover(input: MysqlRecoveryInput, status: JobStatus): Promise<MysqlRecoveryResult> {
  status.phase = "validate";
  const choice = await validateMysqlRecovery(input);
  status.snapshotId = choice.snapshotId;

  status.phase = "prepare";
  await prepareMysqlRecovery(input);

  status.phase = "restore";
  await restoreMysqlRecovery(input, choice);

  if (choice.binlogs.length) {
    status.phase = "replay";
    await replayMysqlRecovery(input, choice);
  }

  let started = false;
  try {
    status.phase = "start";
    started = true;
    const { pid, acceptingAt } = await startMysqlRecovered(input);

    status.phase = "verify";
    const verified = await verifyMysqlRecovery(input);

    const result: MysqlRecoveryResult = {
      server: choice.server,
      backup: { snapshotId: choice.snapshotId, stopTime: choice.stopTime, ...(choice.binlogFile ? { binlogFile: choice.binlogFile, binlogPosition: choice.binlogPosition } : {}) },
      binlogsReplayed: choice.binlogs,
      target: input.target,
      dataDir: input.into.dataDir,
      port: input.into.port,
      pid,
      secondsToAcceptingConnections: (Date.parse(acceptingAt) - Date.parse(choice.startedAt)) / 1000,
      verified,
    };
    status.phase = "done";
    await condition(allHandlersFinished);
    return result;
  } catch (err) {
    if (started) {
      // Stop the server even when the recovery was cancelled; a stop that fails leaves it to the operator.
      await CancellationScope.nonCancellable(() => stopMysqlRecovered(input)).catch(() => undefined);
      status.warnings.push(`the recovered server on port ${input.into.port} was stopped because the recovery did not finish${isCancellation(err) ? " (cancelled)" : ""}`);
    }
    throw err;
  }
}

const { restoreMysqlDumpOfPlan } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "12 hours",
  retry: { initialInterval: "10s", maximumAttempts: 3, nonRetryableErrorTypes },
});

/** A logical MySQL / MariaDB plan's restore: one database of one dump (whole into a new database, or chosen tables), a job of kind restore. */
export async function mysqlRestoreWorkflow(input: MysqlRestoreInput): Promise<MysqlRestoreJobResult> {
  const status = trackStatus("restore");
  ensureSearchAttributes({ plan: input.planId, source: "mysql" });
  return asJob(input.repository.id, async () => {
    const result = await inJobSlots(input.repository, status, async () => {
      status.phase = "restore";
      return restoreMysqlDumpOfPlan(input);
    });
    status.snapshotId = result.snapshotId;
    status.phase = "done";
    await condition(allHandlersFinished);
    return result;
  });
}

const { mysqlRecoveryWindow, previewMysqlRestore } = proxyActivities<CairnActivities>({ startToCloseTimeout: "50 seconds", retry: { maximumAttempts: 1 } });

/** The API's request for a physical MySQL / MariaDB plan's recovery window. */
export async function mysqlRecoveryWindowWorkflow(input: MysqlRecoveryWindowInput): Promise<Answer<MysqlRecoveryWindow>> {
  return mysqlRecoveryWindow(input);
}

/** The API's request for what a logical MySQL / MariaDB restore would do. */
export async function previewMysqlRestoreWorkflow(input: MysqlRestoreInput): Promise<Answer<MysqlRestorePreview>> {
  return previewMysqlRestore(input);
}

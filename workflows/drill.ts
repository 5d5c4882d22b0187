import { ActivityFailure, allHandlersFinished, ApplicationFailure, CancellationScope, condition, isCancellation, proxyActivities } from "@temporalio/workflow";
import type { CairnActivities } from "../activities/index.js";
import { DRILL_FAILED, PERMANENT_FAILURES, type DrillInput, type DrillResult, type DrillScratch, type JobStatus, type RecoveryInput } from "./messages.js";
import { inJobSlots } from "./slots.js";
import { asJob, ensureSearchAttributes, trackStatus } from "./status.js";

const nonRetryableErrorTypes = [...Object.values(PERMANENT_FAILURES), DRILL_FAILED];

const { prepareDrill, discardDrill, checkDrill } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "15 minutes",
  retry: { initialInterval: "2s", maximumAttempts: 3, nonRetryableErrorTypes },
});

/** A restore read back in full: long, heartbeating; a worker that dies leaves the next attempt to start over in the same directory. */
const { drillFiles, restoreRecovery } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "24 hours",
  heartbeatTimeout: "1 minute",
  retry: { initialInterval: "10s", backoffCoefficient: 2, maximumInterval: "5 minutes", maximumAttempts: 3, nonRetryableErrorTypes },
});

const { validateRecovery, prepareRecovery } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "5 minutes",
  retry: { initialInterval: "2s", maximumAttempts: 3, nonRetryableErrorTypes },
});

const { startRecovery } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "12 hours",
  heartbeatTimeout: "1 minute",
  retry: { initialInterval: "5s", maximumAttempts: 2, nonRetryableErrorTypes },
});

/** The query a PostgreSQL drill runs when the plan names none: the server answers. */
export const DEFAULT_CHECK_SQL = "SELECT 1";

/**
 * A recovery drill: prepare (a fresh scratch directory under the drill
 * directory) -> restore the plan's latest backup there -> verify (files: every
 * file read back against the snapshot's content ids; PostgreSQL: the copy
 * started on a free loopback port and the check SQL run) -> discard (the
 * throwaway server stopped and the directory removed, whatever happened).
 * The result states the RTO, restore start to verified. A drill that fails
 * fails its job with the cause (type DrillFailedError).
 */
export async function drillWorkflow(input: DrillInput): Promise<DrillResult> {
  const status = trackStatus("drill");
  ensureSearchAttributes({ plan: input.planId, source: input.source.type });
  return asJob(input.repository.id, async () => {
    // A drill reads the repository like a restore: it takes the repository's and the global concurrency slots.
    const result = await inJobSlots(input.repository, status, () => drillInScratch(input, status));
    status.phase = "done";
    await condition(allHandlersFinished);
    return result;
  });
}

async function drillInScratch(input: DrillInput, status: JobStatus): Promise<DrillResult> {
  status.phase = "prepare";
  const scratch = await prepareDrill(input);
  try {
    const result = input.source.type === "files" ? await filesDrill(input, scratch, status) : await postgresDrill(input, scratch, status);
    status.snapshotId = result.snapshotId;
    status.progress = { filesDone: result.filesVerified, bytesDone: result.bytes, bytesTotal: result.bytes, bytesPerSecond: 0, etaSeconds: 0 };
    status.warnings.push(...result.warnings);
    await discard(scratch, status);
    return result;
  } catch (err) {
    await discard(scratch, status).catch(() => undefined);
    if (isCancellation(err)) throw err;
    throw ApplicationFailure.create({ message: `recovery drill of plan ${input.planName} failed: ${innermostMessage(err)}`, type: DRILL_FAILED, nonRetryable: true });
  }
}

/** Removes the scratch place even when the drill was cancelled; a removal that fails is said in the warnings. */
async function discard(scratch: DrillScratch, status: JobStatus): Promise<void> {
  const phase = status.phase;
  status.phase = "discard";
  try {
    await CancellationScope.nonCancellable(() => discardDrill(scratch));
  } catch (err) {
    status.warnings.push(`the drill's scratch directory ${scratch.dir} could not be removed: ${innermostMessage(err)}; remove it by hand`);
    throw err;
  } finally {
    status.phase = phase;
  }
}

async function filesDrill(input: DrillInput, scratch: DrillScratch, status: JobStatus): Promise<DrillResult> {
  status.phase = "restore";
  return drillFiles(input, scratch);
}

/** The latest base backup and its WAL recovered into the scratch directory and started there, never promoted anywhere but in that copy. */
async function postgresDrill(input: DrillInput, scratch: DrillScratch, status: JobStatus): Promise<DrillResult> {
  if (input.source.type !== "postgres" || input.source.mode !== "physical") {
    throw ApplicationFailure.nonRetryable("only files and physical PostgreSQL plans can be drilled", PERMANENT_FAILURES.invalidRequest);
  }
  const recovery: RecoveryInput = {
    planId: input.planId,
    planName: input.planName,
    repository: input.repository,
    source: input.source,
    target: { latest: true },
    into: { dataDir: scratch.dir, port: scratch.port! },
    drill: true,
  };
  status.phase = "validate";
  const choice = await validateRecovery(recovery);
  status.snapshotId = choice.snapshotId;
  await prepareRecovery(recovery);
  status.phase = "restore";
  const restored = await restoreRecovery(recovery, choice);
  status.phase = "recover";
  await startRecovery(recovery);
  status.phase = "verify";
  const sql = input.checkSql ?? DEFAULT_CHECK_SQL;
  const checked = await checkDrill(recovery, sql);
  return {
    planId: input.planId,
    outcome: "passed",
    snapshotId: choice.snapshotId,
    startedAt: choice.startedAt,
    rtoSeconds: (Date.parse(checked.verifiedAt) - Date.parse(choice.startedAt)) / 1000,
    filesVerified: restored.files,
    bytes: restored.bytes,
    check: { sql, rows: checked.rows },
    warnings: [],
  };
}

/** The activity's own message rather than "Activity task failed". */
function innermostMessage(err: unknown): string {
  let e = err as Error | undefined;
  while (e && e.cause instanceof Error) e = e.cause;
  if (e instanceof ActivityFailure) return "the step failed without a reason";
  return e?.message ?? String(err);
}

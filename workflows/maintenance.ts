import { allHandlersFinished, condition, proxyActivities } from "@temporalio/workflow";
import type { CairnActivities } from "../activities/index.js";
import { PERMANENT_FAILURES, type PruneInput, type PruneResult, type RestoreInput, type RestoreResult, type VerifyInput, type VerifyResult } from "./messages.js";
import { trackStatus } from "./status.js";

const { restoreSnapshot, checkRepository, pruneRepository } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "24 hours",
  heartbeatTimeout: "1 minute",
  retry: { initialInterval: "10s", backoffCoefficient: 2, maximumInterval: "10 minutes", maximumAttempts: 5, nonRetryableErrorTypes: Object.values(PERMANENT_FAILURES) },
});

/** Restores a snapshot (id, unique prefix or "latest") into a directory on the worker. */
export async function restoreWorkflow(input: RestoreInput): Promise<RestoreResult> {
  const status = trackStatus("restore");
  status.phase = "restore";
  status.snapshotId = input.snapshotId;
  const result = await restoreSnapshot(input);
  status.warnings.push(...result.warnings);
  status.phase = "done";
  await condition(allHandlersFinished);
  return result;
}

/** Checks a repository; with `readData` it reads data back too. Damage is reported in the result's errors. */
export async function verifyWorkflow(input: VerifyInput): Promise<VerifyResult> {
  const status = trackStatus("verify");
  status.phase = "check";
  const result = await checkRepository(input);
  status.warnings.push(...result.warnings);
  status.phase = "done";
  await condition(allHandlersFinished);
  return result;
}

/** Deletes data no snapshot needs and repacks wasteful packs. */
export async function pruneWorkflow(input: PruneInput): Promise<PruneResult> {
  const status = trackStatus("prune");
  status.phase = "prune";
  const result = await pruneRepository(input);
  status.phase = "done";
  await condition(allHandlersFinished);
  return result;
}

import { ActivityCancellationType, allHandlersFinished, CancellationScope, condition, patched, proxyActivities } from "@temporalio/workflow";
import type { CairnActivities } from "../activities/index.js";
import {
  PERMANENT_FAILURES,
  type CopyInput,
  type CopyResult,
  type PruneInput,
  type PruneResult,
  type RestoreInput,
  type RestoreResult,
  type VerifyInput,
  type VerifyResult,
  type VerifySnapshotInput,
  type VerifySnapshotResult,
} from "./messages.js";
import { inJobSlots } from "./slots.js";
import { asJob, trackStatus } from "./status.js";

const { restoreSnapshot, checkRepository, pruneRepository, verifySnapshotRef, copySnapshot } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "24 hours",
  heartbeatTimeout: "1 minute",
  // A cancelled job ends once its step has stopped and released the repository's lock, never while it still works.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: "10s", backoffCoefficient: 2, maximumInterval: "10 minutes", maximumAttempts: 5, nonRetryableErrorTypes: Object.values(PERMANENT_FAILURES) },
});

/** Restores a snapshot (id, unique prefix or "latest") into a directory on the worker. */
export async function restoreWorkflow(input: RestoreInput): Promise<RestoreResult> {
  const status = trackStatus("restore");
  return asJob(input.repository.id, async () => {
    const result = await inJobSlots(input.repository, status, async () => {
      status.phase = "restore";
      status.snapshotId = input.snapshotId;
      const r = await restoreSnapshot(input);
      status.warnings.push(...r.warnings);
      return r;
    });
    status.phase = "done";
    await condition(allHandlersFinished);
    return result;
  });
}

/** Checks a repository; with `readData` it reads data back too. Damage is reported in the result's errors. */
export async function verifyWorkflow(input: VerifyInput): Promise<VerifyResult> {
  const status = trackStatus("verify");
  return asJob(input.repository.id, async () => {
    const result = await inJobSlots(input.repository, status, async () => {
      status.phase = "check";
      const r = await checkRepository(input);
      status.warnings.push(...r.warnings);
      return r;
    });
    status.phase = "done";
    await condition(allHandlersFinished);
    return result;
  });
}

/**
 * A prune stops for a cancellation until it writes its new index; from then on it
 * deletes what that index no longer names (stopping half way would leave packs no
 * index names) and ends as completed, saying why the cancellation did not stop it.
 */
const PRUNE_CANCELLED_TOO_LATE =
  "the cancellation came too late: the prune had written its new index, and from then on it finishes deleting what that index no longer names instead of stopping; the repository is pruned and consistent";

/** Deletes data no snapshot needs and repacks wasteful packs. */
export async function pruneWorkflow(input: PruneInput): Promise<PruneResult> {
  const status = trackStatus("prune");
  return asJob(input.repository.id, async () => {
    const result = await inJobSlots(input.repository, status, async () => {
      status.phase = "prune";
      return pruneRepository(input);
    });
    status.phase = "done";
    // A cancelled prune step that still returned a result had gone past its last stopping point: it pruned, and the job says so.
    if (CancellationScope.current().consideredCancelled && patched("prune-late-cancellation")) {
      status.warnings.push(PRUNE_CANCELLED_TOO_LATE);
      await CancellationScope.nonCancellable(() => condition(allHandlersFinished));
      return { ...result, warnings: [PRUNE_CANCELLED_TOO_LATE] };
    }
    await condition(allHandlersFinished);
    return result;
  });
}

/** Verifies one snapshot: its trees, and a sample of the packs holding its data read back. Damage fails the job. */
export async function verifySnapshotWorkflow(input: VerifySnapshotInput): Promise<VerifySnapshotResult> {
  const status = trackStatus("verify");
  return asJob(input.repository.id, async () => {
    const result = await inJobSlots(input.repository, status, async () => {
      status.phase = "verify";
      const r = await verifySnapshotRef(input);
      status.snapshotId = r.snapshotId;
      status.warnings.push(...r.warnings);
      return r;
    });
    status.phase = "done";
    await condition(allHandlersFinished);
    return result;
  });
}

/** Copies one snapshot into another repository. */
export async function copyWorkflow(input: CopyInput): Promise<CopyResult> {
  const status = trackStatus("copy");
  return asJob(input.from.id, async () => {
    const result = await inJobSlots(input.from, status, async () => {
      status.phase = "copy";
      const r = await copySnapshot(input);
      status.snapshotId = r.snapshotId;
      return r;
    });
    status.phase = "done";
    await condition(allHandlersFinished);
    return result;
  });
}

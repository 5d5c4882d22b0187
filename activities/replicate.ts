import { Context } from "@temporalio/activity";
import { copySnapshots } from "../engine/copy.js";
import type { ReplicaRecord, ReplicateInput } from "../workflows/messages.js";
import { ProgressReporter } from "./progress.js";
import { withLockedRepository, type ActivityDeps } from "./repository.js";

/** Copying a snapshot to a plan's secondary repositories. */
export function replicationActivities(deps: ActivityDeps) {
  return {
    /**
     * Copies one snapshot from the plan's repository to a secondary, sending only
     * the blobs the secondary lacks; both stay open to backups (shared locks).
     * Idempotent: a retry finds what the last attempt stored, and a snapshot the
     * secondary already has is not written twice.
     */
    async replicateSnapshot(input: ReplicateInput): Promise<ReplicaRecord> {
      const ctx = Context.current();
      const reporter = new ProgressReporter(ctx, (p) => p);
      try {
        return await withLockedRepository(input.from, deps, { exclusive: false, operation: "replicate (source)" }, (from) =>
          withLockedRepository(input.to, deps, { exclusive: false, operation: "replicate" }, async (to) => {
            const r = await copySnapshots(from, to, {
              snapshotIds: [input.snapshotId],
              signal: ctx.cancellationSignal,
              onProgress: (p) => reporter.update({ filesDone: p.blobsSent, bytesDone: p.bytesSent, bytesTotal: 0 }),
            });
            const [copy] = [...r.copied, ...r.skipped];
            return { repositoryId: input.to.id, snapshotId: copy.to, blobsSent: r.blobsSent, bytesSent: r.bytesSent };
          }),
        );
      } finally {
        await reporter.stop();
      }
    },
  };
}

import { Context } from "@temporalio/activity";
import { copySnapshots } from "../engine/copy.js";
import { findSnapshot, loadSnapshots } from "../engine/snapshot.js";
import type { ReplicaRecord, ReplicateInput } from "../workflows/messages.js";
import { ProgressReporter } from "./progress.js";
import { withLockedRepository, type ActivityDeps } from "./repository.js";

/** Copying a plan's snapshots to its secondary repositories. */
export function replicationActivities(deps: ActivityDeps) {
  return {
    /**
     * Copies the new snapshot, and every earlier snapshot of the same plan the
     * secondary lacks, from the plan's repository to a secondary: a copy that failed
     * in one run (the secondary was down) is made by the next. Only blobs the
     * secondary lacks are sent; both stay open to backups (shared locks).
     * Idempotent: a retry finds what the last attempt stored, and a snapshot the
     * secondary already has is not written twice.
     */
    async replicateSnapshot(input: ReplicateInput): Promise<ReplicaRecord> {
      const ctx = Context.current();
      const reporter = new ProgressReporter(ctx, (p) => p);
      try {
        return await withLockedRepository(input.from, deps, { exclusive: false, operation: "replicate (source)" }, (from) =>
          withLockedRepository(input.to, deps, { exclusive: false, operation: "replicate" }, async (to) => {
            const latest = await findSnapshot(from, input.snapshotId);
            // A plan's snapshots share its host; other plans' snapshots are theirs to replicate.
            const planSnapshots = (await loadSnapshots(from)).filter((s) => s.host === latest.host).map((s) => s.id);
            const r = await copySnapshots(from, to, {
              snapshotIds: planSnapshots,
              signal: ctx.cancellationSignal,
              onProgress: (p) => reporter.update({ filesDone: p.blobsSent, bytesDone: p.bytesSent, bytesTotal: 0 }),
            });
            const copy = [...r.copied, ...r.skipped].find((c) => c.from === latest.id)!;
            const caughtUp = r.copied.filter((c) => c.from !== latest.id).length;
            return { repositoryId: input.to.id, snapshotId: copy.to, blobsSent: r.blobsSent, bytesSent: r.bytesSent, caughtUp };
          }),
        );
      } finally {
        await reporter.stop();
      }
    },
  };
}

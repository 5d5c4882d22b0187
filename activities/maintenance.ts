import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import { checkRepository } from "../engine/checker.js";
import { CairnError } from "../engine/errors.js";
import { prune } from "../engine/prune.js";
import { Restorer } from "../engine/restorer.js";
import { findSnapshot } from "../engine/snapshot.js";
import { PERMANENT_FAILURES, type PruneInput, type PruneResult, type RestoreInput, type RestoreResult, type VerifyInput, type VerifyResult } from "../workflows/messages.js";
import { briefList } from "./payload.js";
import { ProgressReporter } from "./progress.js";
import { withLockedRepository, type ActivityDeps } from "./repository.js";

/** A request the engine refuses (a snapshot id that does not exist, a subset it cannot read) will be refused again: do not retry it. */
function refused(err: unknown): unknown {
  return err instanceof CairnError && err.name === "CairnError" ? ApplicationFailure.nonRetryable(err.message, PERMANENT_FAILURES.invalidRequest) : err;
}

/**
 * Restore, check and prune. They heartbeat their progress; a cancellation takes
 * effect when the step ends, since the engine runs each of them to completion.
 */
export function maintenanceActivities(deps: ActivityDeps) {
  return {
    async restoreSnapshot(input: RestoreInput): Promise<RestoreResult> {
      const reporter = new ProgressReporter(Context.current(), (p) => p);
      try {
        return await withLockedRepository(input.repository, deps, { exclusive: false, operation: "restore" }, async (repo) => {
          const snapshot = await findSnapshot(repo, input.snapshotId).catch((err) => {
            throw refused(err);
          });
          const restorer = new Restorer(repo, {
            target: input.target,
            include: input.include,
            exclude: input.exclude,
            dryRun: input.dryRun,
            onProgress: (p) => reporter.update(p),
          });
          const r = await restorer.restore(snapshot.tree);
          return { files: r.files, bytesWritten: r.bytesWritten, totalBytes: r.totalBytes, dryRun: Boolean(input.dryRun), warnings: briefList(r.warnings) };
        });
      } finally {
        await reporter.stop();
      }
    },

    /** Structure check, and with `readData` ("10%", "1/5", "all") the data read back too. */
    async checkRepository(input: VerifyInput): Promise<VerifyResult> {
      const reporter = new ProgressReporter(Context.current(), (p) => p);
      try {
        const report = await withLockedRepository(input.repository, deps, { exclusive: false, operation: "check" }, (repo) =>
          checkRepository(repo, {
            readData: input.readData === "all",
            subset: input.readData && input.readData !== "all" ? input.readData : undefined,
            onProgress: (p) => reporter.update({ filesDone: p.packsDone, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }),
          }).catch((err) => {
            throw refused(err);
          }),
        );
        return { errors: briefList(report.errors.map((e) => e.message), "more errors"), warnings: briefList(report.warnings), packsRead: report.packsRead };
      } finally {
        await reporter.stop();
      }
    },

    /** Deletes data no snapshot needs, under an exclusive lock. */
    async pruneRepository(input: PruneInput): Promise<PruneResult> {
      const reporter = new ProgressReporter(Context.current(), (p) => p);
      try {
        return await withLockedRepository(input.repository, deps, { exclusive: true, operation: "prune", retryFor: 20_000 }, async (repo) => {
          const r = await prune(repo, { maxUnused: input.maxUnused, onProgress: (p) => reporter.update({ filesDone: p.done, bytesDone: 0, bytesTotal: 0 }) }).catch((err) => {
            throw refused(err);
          });
          return { packsDeleted: r.packs.unused + r.packs.unreferenced, packsRepacked: r.packs.repacked, bytesFreed: r.bytes.freed };
        });
      } finally {
        await reporter.stop();
      }
    },
  };
}

import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import { checkRepository } from "../engine/checker.js";
import { CairnError } from "../engine/errors.js";
import { prune } from "../engine/prune.js";
import { PERMANENT_FAILURES, type PruneInput, type PruneResult, type VerifyInput, type VerifyResult } from "../workflows/messages.js";
import { briefList } from "./payload.js";
import { ProgressReporter } from "./progress.js";
import { withLockedRepository, type ActivityDeps } from "./repository.js";

/** A request the engine refuses (a subset it cannot read, a prune option it does not know) will be refused again: do not retry it. */
function refused(err: unknown): unknown {
  return err instanceof CairnError && err.name === "CairnError" ? ApplicationFailure.nonRetryable(err.message, PERMANENT_FAILURES.invalidRequest) : err;
}

/**
 * Check and prune (restore is in ./restore.ts). They heartbeat their progress; a cancellation takes
 * effect when the step ends, since the engine runs each of them to completion.
 */
export function maintenanceActivities(deps: ActivityDeps) {
  return {
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

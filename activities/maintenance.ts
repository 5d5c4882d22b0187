import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import { checkRepository } from "../engine/checker.js";
import { copySnapshots } from "../engine/copy.js";
import { CairnError } from "../engine/errors.js";
import { prune } from "../engine/prune.js";
import { applyPolicy } from "../engine/retention.js";
import { findSnapshot, loadSnapshots } from "../engine/snapshot.js";
import {
  PERMANENT_FAILURES,
  type CopyInput,
  type CopyResult,
  type PruneInput,
  type PruneResult,
  type VerifyInput,
  type VerifyResult,
  type VerifySnapshotInput,
  type VerifySnapshotResult,
} from "../workflows/messages.js";
import { clustersOf, expireWal } from "../sources/postgres/expire.js";
import { briefList } from "./payload.js";
import { ProgressReporter } from "./progress.js";
import { withLockedRepository, type ActivityDeps } from "./repository.js";
import { verifySnapshot } from "./verify.js";

/** A request the engine refuses (a subset it cannot read, a prune option it does not know, a snapshot that is not there) will be refused again: do not retry it. */
function refused(err: unknown): unknown {
  return err instanceof CairnError && err.name === "CairnError" ? ApplicationFailure.nonRetryable(err.message, PERMANENT_FAILURES.invalidRequest) : err;
}

/**
 * Check, prune, snapshot verify and copy, as jobs the API starts (restore is in
 * ./restore.ts). They heartbeat their progress, which is also how a cancellation
 * reaches them: the engine stops between packs (trees, files) and the step ends
 * as cancelled, with its last progress sent to the workflow.
 */
export function maintenanceActivities(deps: ActivityDeps) {
  return {
    /** Structure check, and with `readData` ("10%", "1/5", "all") the data read back too. */
    async checkRepository(input: VerifyInput): Promise<VerifyResult> {
      const ctx = Context.current();
      const reporter = new ProgressReporter(ctx, (p) => p);
      try {
        const report = await withLockedRepository(input.repository, deps, { exclusive: false, operation: "check" }, (repo) =>
          checkRepository(repo, {
            signal: ctx.cancellationSignal,
            readData: input.readData === "all",
            subset: input.readData && input.readData !== "all" ? input.readData : undefined,
            onProgress: (p) => reporter.update({ filesDone: p.packsDone, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }),
          }).catch((err) => {
            throw refused(err);
          }),
        );
        return { errors: briefList(report.errors.map((e) => e.message), "more errors"), warnings: briefList(report.warnings), packsRead: report.packsRead };
      } catch (err) {
        // The engine stops between packs once the signal fires; the lock is released by now.
        if (Context.current().cancellationSignal.aborted) throw Context.current().cancellationSignal.reason;
        throw err;
      } finally {
        await reporter.stop();
      }
    },

    /** Forgets what the retention does not keep (with `forget`), then deletes data no snapshot needs, under an exclusive lock. */
    async pruneRepository(input: PruneInput): Promise<PruneResult> {
      const ctx = Context.current();
      const reporter = new ProgressReporter(ctx, (p) => p);
      try {
        return await withLockedRepository(input.repository, deps, { exclusive: true, operation: "prune", retryFor: 20_000 }, async (repo) => {
          let snapshotsRemoved: number | undefined;
          let walFilesExpired = 0;
          if (input.forget) {
            const host = input.forget.host;
            const all = await loadSnapshots(repo);
            const decided = applyPolicy(all.filter((s) => s.host === host), input.forget.retention);
            for (const s of decided.remove) await repo.backend.delete(`snapshots/${s.id}`);
            snapshotsRemoved = decided.remove.length;
            const gone = new Set(decided.remove.map((s) => s.id));
            for (const c of await expireWal(repo, all.filter((s) => !gone.has(s.id)), clustersOf(decided.remove))) walFilesExpired += c.expired.length;
          }
          const r = await prune(repo, { maxUnused: input.maxUnused, signal: ctx.cancellationSignal, onProgress: (p) => reporter.update({ filesDone: p.done, bytesDone: 0, bytesTotal: 0 }) }).catch((err) => {
            throw refused(err);
          });
          return { packsDeleted: r.packs.unused + r.packs.unreferenced, packsRepacked: r.packs.repacked, bytesFreed: r.bytes.freed, ...(snapshotsRemoved !== undefined ? { snapshotsRemoved } : {}), ...(walFilesExpired ? { walFilesExpired } : {}) };
        });
      } catch (err) {
        // The engine stops between packs once the signal fires; the lock is released by now.
        if (Context.current().cancellationSignal.aborted) throw Context.current().cancellationSignal.reason;
        throw err;
      } finally {
        await reporter.stop();
      }
    },

    /** One snapshot's trees, and `samplePercent` of its data packs read back; damage fails the job. */
    async verifySnapshotRef(input: VerifySnapshotInput): Promise<VerifySnapshotResult> {
      const reporter = new ProgressReporter(Context.current(), (p) => p);
      try {
        const result = await withLockedRepository(input.repository, deps, { exclusive: false, operation: "verify" }, async (repo) => {
          const snapshot = await findSnapshot(repo, input.snapshotRef).catch((err) => Promise.reject(refused(err)));
          const r = await verifySnapshot(
            repo,
            snapshot.id,
            input.samplePercent,
            (p) => reporter.update({ filesDone: p.packsDone, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }),
            Context.current().cancellationSignal,
          );
          return { ...r, snapshotId: snapshot.id };
        });
        if (result.errors.length) {
          throw ApplicationFailure.nonRetryable(
            `snapshot ${result.snapshotId.slice(0, 8)} did not verify: ${result.errors[0]}${result.errors.length > 1 ? ` (and ${result.errors.length - 1} more errors)` : ""}; ` +
              "run a check with readData (POST /v1/repositories/{id}/check) to see all damage",
            PERMANENT_FAILURES.verificationFailed,
          );
        }
        return { ...result, warnings: briefList(result.warnings) };
      } catch (err) {
        // The engine stops between packs once the signal fires; the lock is released by now.
        if (Context.current().cancellationSignal.aborted) throw Context.current().cancellationSignal.reason;
        throw err;
      } finally {
        await reporter.stop();
      }
    },

    /** Copies one snapshot into another repository; only blobs the destination lacks are sent, and a snapshot it has already is not written twice. */
    async copySnapshot(input: CopyInput): Promise<CopyResult> {
      const ctx = Context.current();
      const reporter = new ProgressReporter(ctx, (p) => p);
      try {
        return await withLockedRepository(input.from, deps, { exclusive: false, operation: "copy (source)" }, (from) =>
          withLockedRepository(input.to, deps, { exclusive: false, operation: "copy" }, async (to) => {
            const snapshot = await findSnapshot(from, input.snapshotRef).catch((err) => Promise.reject(refused(err)));
            const r = await copySnapshots(from, to, {
              snapshotIds: [snapshot.id],
              signal: ctx.cancellationSignal,
              onProgress: (p) => reporter.update({ filesDone: p.blobsSent, bytesDone: p.bytesSent, bytesTotal: 0 }),
            }).catch((err) => Promise.reject(refused(err)));
            const copied = r.copied.find((c) => c.from === snapshot.id);
            const skipped = r.skipped.find((c) => c.from === snapshot.id);
            return { snapshotId: snapshot.id, copiedSnapshotId: (copied ?? skipped)!.to, copied: copied !== undefined, blobsSent: r.blobsSent, bytesSent: r.bytesSent };
          }),
        );
      } catch (err) {
        // The engine stops between packs once the signal fires; the lock is released by now.
        if (Context.current().cancellationSignal.aborted) throw Context.current().cancellationSignal.reason;
        throw err;
      } finally {
        await reporter.stop();
      }
    },
  };
}

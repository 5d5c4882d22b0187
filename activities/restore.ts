import { readdir } from "node:fs/promises";
import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import { BackendError } from "../backends/backend.js";
import { Archiver } from "../engine/archiver.js";
import { CairnError, RepositoryNotFoundError } from "../engine/errors.js";
import type { Repository } from "../engine/repository.js";
import { Restorer } from "../engine/restorer.js";
import { findSnapshot, loadSnapshots, sameSet, type SnapshotEntry } from "../engine/snapshot.js";
import { subtreeAt, TreeLoader } from "../engine/tree.js";
import { readGuard, realPathRefusal } from "../policy/paths.js";
import { PERMANENT_FAILURES, type JobProgress, type RestoreInput, type RestoreResult, type SnapshotIdentity } from "../workflows/messages.js";
import { briefList } from "./payload.js";
import { ProgressReporter } from "./progress.js";
import { policyFailure, withLockedRepository, type ActivityDeps } from "./repository.js";

/** The host recorded in safety snapshots: no plan's retention (which keeps to its own host) removes them. */
export const SAFETY_HOST = "cairn-restore-safety";

/** What a restore heartbeats: its progress, and the safety snapshot once taken, so a retried attempt does not take another of a half-restored target. */
interface RestoreHeartbeat {
  progress: JobProgress;
  safetySnapshot?: RestoreResult["safetySnapshot"];
}

/** True when `dir` exists and holds anything (a file in its place counts). */
export async function holdsFiles(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length > 0;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return false;
    if (code === "ENOTDIR") return true;
    throw err;
  }
}

/**
 * True for errors that mean the repository cannot be reached now (its disk is
 * gone, its server down): a copy elsewhere may serve instead. A wrong password or
 * a refused request is not one of them; another repository would hide the mistake.
 */
export function unreachable(err: unknown): boolean {
  if (err instanceof ApplicationFailure) return err.type === PERMANENT_FAILURES.repositoryNotFound;
  if (err instanceof RepositoryNotFoundError) return true;
  return err instanceof BackendError && (err.kind === "transient" || err.kind === "not-found");
}

function sameBackup(s: SnapshotEntry, identity: SnapshotIdentity): boolean {
  return s.time === identity.time && s.host === identity.host && sameSet(s.paths, identity.paths);
}

/** A secondary's copy of the snapshot, if it holds one. */
async function copyOf(repo: Repository, identity: SnapshotIdentity): Promise<SnapshotEntry | undefined> {
  return (await loadSnapshots(repo)).find((s) => sameBackup(s, identity));
}

/**
 * The snapshot in the requested repository: by id, or by time, host and paths when
 * the id came from a copy (the API resolved it while this repository was down).
 * A snapshot it does not have is a request no retry can fix.
 */
async function requested(repo: Repository, input: RestoreInput): Promise<SnapshotEntry> {
  try {
    return await findSnapshot(repo, input.snapshotId);
  } catch (err) {
    if (!(err instanceof CairnError && err.name === "CairnError")) throw err;
    const copy = input.snapshot && (await copyOf(repo, input.snapshot));
    if (copy) return copy;
    throw ApplicationFailure.nonRetryable(err.message, PERMANENT_FAILURES.invalidRequest);
  }
}

/** What the engine refuses (a directory the snapshot lacks, patterns that select nothing) is a request no retry can fix. */
function refusedRequest(err: unknown): never {
  if (err instanceof CairnError && err.name === "CairnError") throw ApplicationFailure.nonRetryable(err.message, PERMANENT_FAILURES.invalidRequest);
  throw err;
}

/** Why a repository could not serve, in a sentence. */
function reason(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}

/** Restoring a snapshot, from a secondary repository when its own repository cannot be reached. */
export function restoreActivities(deps: ActivityDeps) {
  return {
    /**
     * Restores from the requested repository; when that one cannot be reached,
     * from the first secondary that holds a copy of the snapshot (same time, host
     * and paths). The result names the repository that served the data. A snapshot
     * missing from a repository that answers fails the restore: that is a wrong
     * request, not an outage.
     */
    async restoreSnapshot(input: RestoreInput): Promise<RestoreResult> {
      const refusal = await realPathRefusal(deps.policy, "restore", input.target).catch((err: NodeJS.ErrnoException) => {
        throw ApplicationFailure.nonRetryable(`cannot tell where ${input.target} leads (${err.code ?? err.message}); the execution policy refuses what it cannot check`, PERMANENT_FAILURES.policyRefused);
      });
      if (refusal) throw policyFailure(refusal);
      const ctx = Context.current();
      let safetySnapshot = (ctx.info.heartbeatDetails as RestoreHeartbeat | undefined)?.safetySnapshot;
      const inUse = await holdsFiles(input.target);
      if (inUse && !input.overwrite && !safetySnapshot) {
        throw ApplicationFailure.nonRetryable(`the target ${input.target} holds files and the restore names no overwrite mode; give overwrite "always", "if-changed" or "never"`, PERMANENT_FAILURES.invalidRequest);
      }
      const takeSafetySnapshot = inUse && input.overwrite !== "never" && input.safetySnapshot !== false && !input.dryRun;
      const reporter = new ProgressReporter<RestoreHeartbeat>(ctx, (progress) => ({ progress, ...(safetySnapshot ? { safetySnapshot } : {}) }));
      const secondaries = input.snapshot ? (input.secondaries ?? []) : [];
      const missed: string[] = [];
      let lastError: unknown;
      let outage = false;
      try {
        for (const [i, target] of [input.repository, ...secondaries].entries()) {
          const failover = i > 0;
          // Only failures before any file is written lead to another repository.
          let reached = false;
          try {
            const result = await withLockedRepository(target, deps, { exclusive: false, operation: "restore" }, async (repo) => {
              const snapshot = failover ? await copyOf(repo, input.snapshot!) : await requested(repo, input);
              if (!snapshot) return undefined;
              reached = true;
              const tree = input.path ? await subtreeAt(new TreeLoader(repo), snapshot.tree, input.path).catch(refusedRequest) : snapshot.tree;
              if (takeSafetySnapshot && !safetySnapshot) {
                // What this restore replaces stays restorable: the target as it is now, in the repository serving the restore.
                const saved = await new Archiver(repo, { host: SAFETY_HOST, tags: ["safety", `before-restore-of:${snapshot.id.slice(0, 8)}`], refuse: await readGuard(deps.policy, "restore"), signal: ctx.cancellationSignal }).backup([input.target]);
                safetySnapshot = { repositoryId: target.id, snapshotId: saved.id, path: input.target };
              }
              const r = await new Restorer(repo, {
                target: input.target,
                include: input.include,
                exclude: input.exclude,
                dryRun: input.dryRun,
                overwrite: input.overwrite,
                owners: deps.policy.restoreOwners,
                setidBits: deps.policy.restoreSetid,
                onProgress: (p) => reporter.update(p),
                signal: ctx.cancellationSignal,
              })
                .restore(tree)
                // The engine refuses what no retry changes: include patterns that select nothing, a target in the way.
                .catch(refusedRequest);
              // Which repository served comes first: briefList shortens long messages from their end.
              const warnings = failover ? [`restored from the snapshot's copy ${snapshot.id.slice(0, 8)} in secondary repository ${target.id}, because ${missed[0]}`, ...missed.slice(1)] : [];
              return {
                files: r.files,
                bytesWritten: r.bytesWritten,
                totalBytes: r.totalBytes,
                dryRun: Boolean(input.dryRun),
                warnings: briefList([...warnings, ...r.warnings]),
                servedBy: { repositoryId: target.id, url: target.url, failover },
                ...(safetySnapshot ? { safetySnapshot } : {}),
              };
            });
            if (result) return result;
            missed.push(`secondary repository ${target.id} holds no copy of the snapshot`);
          } catch (err) {
            // The requested repository's own mistakes are reported as they are; a secondary that cannot serve only makes way for the next.
            if (reached || (!failover && (!unreachable(err) || secondaries.length === 0))) throw err;
            lastError = err;
            outage ||= !(err instanceof ApplicationFailure);
            missed.push(`${failover ? "secondary " : ""}repository ${target.id} could not ${failover ? "serve" : "be reached"}: ${reason(err)}`);
          }
        }
      } catch (err) {
        // The restorer stops between files once the signal fires; the lock is released by now.
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
        throw err;
      } finally {
        await reporter.stop();
      }
      const message = `no repository could serve snapshot ${input.snapshotId.slice(0, 8)}: ${missed.join("; ")}`;
      // A repository that is down may come back: let Temporal retry. Repositories that are gone will not.
      if (outage) throw new Error(`${message}; will try again`, { cause: lastError });
      throw ApplicationFailure.nonRetryable(`${message}; mount or register the repositories again, or restore from another copy`, PERMANENT_FAILURES.repositoryNotFound);
    },
  };
}

import { promises as fs } from "node:fs";
import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import { Archiver, type BackupProgress } from "../engine/archiver.js";
import { parseCompression } from "../engine/compression.js";
import { prune } from "../engine/prune.js";
import type { Repository } from "../engine/repository.js";
import { applyPolicy, validatePolicy } from "../engine/retention.js";
import { loadSnapshots, planHost } from "../engine/snapshot.js";
import { hasRetentionRules, PERMANENT_FAILURES, type BackupInput, type BackupResult, type JobProgress, type RepositoryTarget, type RetentionSpec, type SnapshotHeartbeat, type VerifyResult } from "../workflows/messages.js";
import { briefList } from "./payload.js";
import { ProgressReporter } from "./progress.js";
import { realPathRefusal, readGuard } from "../policy/paths.js";
import { hostRefusal } from "../policy/destinations.js";
import { permanentOrSame, policyFailure, withLockedRepository, withRepository, type ActivityDeps } from "./repository.js";
import { checkQuota } from "./quota.js";
import { verifySnapshot } from "./verify.js";
import { checkMysqlSource, snapshotMysql } from "./mysql.js";
import { checkPostgresSource, snapshotPostgres } from "./postgres.js";
import { clustersOf, expireWal } from "../sources/postgres/expire.js";

/** How long an exclusive lock is waited for before the attempt fails and Temporal retries it later. */
const EXCLUSIVE_LOCK_WAIT_MS = 20_000;

export interface PrepareResult {
  repositoryId: string;
  snapshots: number;
}

/** The snapshot step's share of the job's result; `warnings` lists files that could not be read. */
export interface SnapshotStepResult
  extends Pick<BackupResult, "snapshotId" | "filesNew" | "filesChanged" | "filesUnmodified" | "bytesProcessed" | "bytesAdded" | "bytesStored" | "durationSeconds" | "warnings"> {
  /** Where an earlier attempt stopped, when this attempt resumed after it. */
  resumedFrom?: SnapshotHeartbeat["resume"];
}

export interface VerifyBackupInput {
  repository: RepositoryTarget;
  snapshotId: string;
  samplePercent: number;
}

export interface RetentionInput {
  repository: RepositoryTarget;
  planId: string;
  retention: RetentionSpec;
}

export interface RetentionResult {
  snapshotsRemoved: number;
  /** Archived WAL files deleted because no kept base backup of their cluster needs them. */
  walFilesExpired?: number;
  packsDeleted: number;
  bytesFreed: number;
}

export interface RecordResult {
  snapshots: number;
  packs: number;
  packBytes: number;
}

export interface NotifyInput {
  webhookUrl?: string;
  summary: Record<string, unknown>;
}

export interface NotifyResult {
  sent: boolean;
  detail: string;
}

/** The activities of a backup, in the order backupWorkflow runs them. */
export function backupActivities(deps: ActivityDeps) {
  /** Refuses, before anything is read, a source path the execution policy does not allow (links followed). */
  const allowSources = async (input: BackupInput) => {
    if (input.source.type !== "files") return;
    for (const p of input.source.paths) {
      const refusal = await realPathRefusal(deps.policy, "source", p).catch((err: NodeJS.ErrnoException) => {
        throw ApplicationFailure.nonRetryable(`cannot tell where ${p} leads (${err.code ?? err.message}); the execution policy refuses what it cannot check`, PERMANENT_FAILURES.policyRefused);
      });
      if (refusal) throw policyFailure(refusal);
    }
  };
  /** A webhook's host is judged like a destination's: no metadata or link-local address, nor (unless allowed) a private or loopback one. */
  const webhookRefusal = (url: string) => {
    let host: string;
    try {
      host = new URL(url).hostname.replace(/^\[|\]$/g, "");
    } catch {
      throw ApplicationFailure.nonRetryable(`${url} is not a URL; check the plan's notify.webhookUrl`, PERMANENT_FAILURES.invalidRequest);
    }
    return hostRefusal(deps.policy, host);
  };
  return {
    /** Opens the repository and checks the plan: source paths exist, the retention policy is valid. */
    async prepareBackup(input: BackupInput): Promise<PrepareResult> {
      if (input.source.type === "files" && !input.source.paths.length) throw ApplicationFailure.nonRetryable(`plan ${input.planName} names no source path; add at least one`, PERMANENT_FAILURES.invalidRequest);
      try {
        if (input.compression) parseCompression(input.compression);
      } catch (err) {
        throw ApplicationFailure.nonRetryable(`plan ${input.planName}: ${(err as Error).message}`, PERMANENT_FAILURES.invalidRequest);
      }
      if (hasRetentionRules(input.retention)) {
        try {
          validatePolicy(input.retention);
        } catch (err) {
          throw ApplicationFailure.nonRetryable(`plan ${input.planName}: ${(err as Error).message}`, PERMANENT_FAILURES.invalidRequest);
        }
      }
      await allowSources(input);
      if (input.source.type === "postgres") await checkPostgresSource(input.source, deps, input.planName);
      if (input.source.type === "mysql") await checkMysqlSource(input.source, deps, input.planName);
      return await withRepository(input.repository, deps, async (repo) => {
        for (const p of input.source.type === "files" ? input.source.paths : []) {
          await fs.lstat(p).catch((err: Error) => {
            throw ApplicationFailure.nonRetryable(
              `cannot back up ${p}: ${err.message}; fix the plan's paths, or make the source readable on every worker`,
              PERMANENT_FAILURES.sourceMissing,
            );
          });
        }
        await checkQuota(repo, input);
        return { repositoryId: repo.config.id, snapshots: (await repo.listIds("snapshots")).length };
      });
    },

    /**
     * Stores the source in a new snapshot under a shared lock. Each heartbeat first
     * writes an index file for the packs uploaded so far, so an attempt that starts
     * after a worker died deduplicates them instead of uploading them again.
     */
    async snapshotBackup(input: BackupInput): Promise<SnapshotStepResult> {
      const ctx = Context.current();
      const previous = ctx.info.heartbeatDetails as SnapshotHeartbeat | undefined;
      if (previous?.resume) ctx.log.info("resuming the snapshot from the last checkpoint of an earlier attempt", { ...previous.resume });
      const before = { packs: previous?.resume.packsIndexed ?? 0, bytes: previous?.resume.bytesIndexed ?? 0 };
      let phase = "saving";
      let currentPath: string | undefined;
      let resume: SnapshotHeartbeat["resume"] = { attempt: ctx.info.attempt, packsIndexed: before.packs, bytesIndexed: before.bytes };
      let open: Repository | undefined;
      await allowSources(input);
      const refuse = await readGuard(deps.policy, "source");
      const reporter = new ProgressReporter<SnapshotHeartbeat>(ctx, async (progress: JobProgress) => {
        const repo = open;
        if (repo && phase === "saving") {
          // Every pack counted here is in the index once the checkpoint is written.
          const written = { packs: repo.packsWritten, bytes: repo.packBytesWritten };
          await repo.checkpoint();
          resume = { attempt: ctx.info.attempt, packsIndexed: before.packs + written.packs, bytesIndexed: before.bytes + written.bytes, currentPath };
        }
        return { progress, resume };
      });
      try {
        return await withLockedRepository(input.repository, deps, { exclusive: false, operation: `backup of plan ${input.planName}` }, async (repo) => {
          open = repo;
          if (input.compression) repo.compression = parseCompression(input.compression);
          const source = input.source;
          const onProgress = (p: BackupProgress) => {
            phase = p.phase;
            currentPath = p.currentPath;
            reporter.update({ filesDone: p.filesDone, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal });
          };
          const result =
            source.type === "postgres"
              ? await snapshotPostgres(repo, source, deps, input.planName, { host: planHost(input.planId), tags: input.tags, signal: ctx.cancellationSignal, onProgress }).finally(() => reporter.stop())
              : source.type === "mysql"
                ? await snapshotMysql(repo, source, deps, input.planName, { host: planHost(input.planId), tags: input.tags, signal: ctx.cancellationSignal, onProgress }).finally(() => reporter.stop())
                : await new Archiver(repo, {
                  excludes: source.exclude,
                  tags: input.tags,
                  host: planHost(input.planId),
                  estimate: true,
                  signal: ctx.cancellationSignal,
                  refuse,
                  onProgress,
                })
                  // No checkpoint may start once the repository closes, so reporting stops first.
                  .backup(source.paths)
                  .finally(() => reporter.stop());
          const s = result.snapshot.summary!;
          return {
            snapshotId: result.id,
            filesNew: s.filesNew,
            filesChanged: s.filesChanged,
            filesUnmodified: s.filesUnmodified,
            bytesProcessed: s.totalBytes,
            bytesAdded: s.dataAdded,
            bytesStored: s.dataAddedPacked,
            durationSeconds: s.durationSeconds,
            warnings: briefList(result.errors.map((e) => `cannot read ${e.path}: ${e.message}`), "more unreadable files"),
            ...(previous?.resume ? { resumedFrom: previous.resume } : {}),
          };
        });
      } catch (err) {
        // The archiver stops at the next chunk once the signal fires; the lock is released by now.
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
        throw permanentOrSame(err);
      } finally {
        await reporter.stop();
      }
    },

    /** Reads back a sample of the packs the new snapshot uses; damage fails the backup. */
    async verifyBackup(input: VerifyBackupInput): Promise<VerifyResult> {
      const ctx = Context.current();
      const reporter = new ProgressReporter(ctx, (p) => p);
      try {
        const result = await withLockedRepository(input.repository, deps, { exclusive: false, operation: "verify" }, (repo) =>
          verifySnapshot(repo, input.snapshotId, input.samplePercent, (p) => reporter.update({ filesDone: p.packsDone, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal })),
        );
        if (result.errors.length) {
          throw ApplicationFailure.nonRetryable(
            `snapshot ${input.snapshotId.slice(0, 8)} did not verify: ${result.errors[0]}${result.errors.length > 1 ? ` (and ${result.errors.length - 1} more errors)` : ""}; ` +
              'run "cairn check --read-data" on the repository to see all damage',
            PERMANENT_FAILURES.verificationFailed,
          );
        }
        return { ...result, warnings: briefList(result.warnings) };
      } finally {
        await reporter.stop();
      }
    },

    /** Forgets the plan's snapshots its policy does not keep, then prunes, under an exclusive lock. */
    async applyRetention(input: RetentionInput): Promise<RetentionResult> {
      const reporter = new ProgressReporter(Context.current(), (p) => p);
      try {
        return await withLockedRepository(input.repository, deps, { exclusive: true, operation: "retention", retryFor: EXCLUSIVE_LOCK_WAIT_MS }, async (repo) => {
          const host = planHost(input.planId);
          const all = await loadSnapshots(repo);
          const decided = applyPolicy(all.filter((s) => s.host === host), input.retention);
          if (decided.remove.length === 0) return { snapshotsRemoved: 0, packsDeleted: 0, bytesFreed: 0 };
          for (const s of decided.remove) await repo.backend.delete(`snapshots/${s.id}`);
          // A physical PostgreSQL plan's forgotten base backups take the archived WAL only they needed with them.
          const gone = new Set(decided.remove.map((s) => s.id));
          const wal = await expireWal(repo, all.filter((s) => !gone.has(s.id)), clustersOf(decided.remove));
          const walFilesExpired = wal.reduce((n, c) => n + c.expired.length, 0);
          const pruned = await prune(repo, { onProgress: (p) => reporter.update({ filesDone: p.done, bytesDone: 0, bytesTotal: 0 }) });
          return { snapshotsRemoved: decided.remove.length, ...(walFilesExpired ? { walFilesExpired } : {}), packsDeleted: pruned.packs.unused + pruned.packs.unreferenced, bytesFreed: pruned.bytes.freed };
        });
      } finally {
        await reporter.stop();
      }
    },

    /** Repository figures for the run's record: how many snapshots, how many packs and their bytes. */
    async recordRun(input: { repository: RepositoryTarget }): Promise<RecordResult> {
      return await withRepository(input.repository, deps, async (repo) => {
        let packs = 0;
        let bytes = 0;
        for await (const obj of repo.backend.list("data/")) {
          packs++;
          bytes += obj.size;
        }
        return { snapshots: (await repo.listIds("snapshots")).length, packs, packBytes: bytes };
      });
    },

    /** POSTs the run's summary as JSON to the plan's webhook, when it has one. */
    async notify(input: NotifyInput): Promise<NotifyResult> {
      if (!input.webhookUrl) return { sent: false, detail: "no webhook is configured for this plan; nothing was sent" };
      const refusal = await webhookRefusal(input.webhookUrl);
      if (refusal) throw policyFailure(refusal);
      const ctx = Context.current();
      const response = await fetch(input.webhookUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(input.summary),
        signal: AbortSignal.any([ctx.cancellationSignal, AbortSignal.timeout(15_000)]),
      });
      const detail = `${input.webhookUrl} answered ${response.status} ${response.statusText}`.trim();
      if (response.ok) return { sent: true, detail };
      // A client error will not go away by itself; a server error or a rate limit may.
      if (response.status >= 400 && response.status < 500 && response.status !== 429) {
        throw ApplicationFailure.nonRetryable(`${detail}; check the plan's notify.webhookUrl`, PERMANENT_FAILURES.invalidRequest);
      }
      throw new Error(`${detail}; will try again`);
    },
  };
}

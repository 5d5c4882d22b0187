import { CairnError } from "../../engine/errors.js";
import type { Repository } from "../../engine/repository.js";
import type { SnapshotEntry } from "../../engine/snapshot.js";
import { baseBackups } from "./basebackup.js";
import { ClusterArchive } from "./recovery.js";
import { parseLsn, parseSegmentName, segnoOf, walFileKind } from "./wal.js";

/**
 * WAL retention, after pgBackRest's `repo-retention-archive`: the newest
 * `archiveBackups` base backups (default: every kept one) keep all WAL from their
 * start on, so point-in-time recovery reaches anywhere after the oldest of them.
 * An older kept base backup keeps only the WAL from its start to its stop, which it
 * needs to be consistent. Everything else before is expirable; timeline history
 * files never are (a recovery through a later timeline switch reads them).
 */
export interface WalExpiryOptions {
  /** How many of the newest base backups keep the WAL for point-in-time recovery after them; every kept one when absent. */
  archiveBackups?: number;
  /** Only say what would be deleted. */
  dryRun?: boolean;
}

export interface WalExpiry {
  systemId: string;
  /** Base backups of the cluster still in the repository. */
  backups: number;
  /** Base backups whose WAL is kept for point-in-time recovery (the newest ones). */
  archiveBackups: number;
  /** Files deleted (or, in a dry run, that would be). */
  expired: string[];
  /** Archived files left. */
  kept: number;
}

/** The archived files of a cluster no kept base backup and no point-in-time recovery window needs, sorted. */
export function expirableWal(cluster: ClusterArchive, archiveBackups?: number): string[] {
  const backups = cluster.backups;
  if (!backups.length) return [];
  if (archiveBackups !== undefined && (!Number.isInteger(archiveBackups) || archiveBackups < 1)) {
    throw new CairnError(`the number of base backups that keep their WAL must be a whole number of at least 1, got ${archiveBackups}`);
  }
  const size = backups[0].source.segmentSize;
  const start = (b: (typeof backups)[number]) => segnoOf(parseLsn(b.source.startLsn), size);
  const stop = (b: (typeof backups)[number]) => segnoOf(parseLsn(b.source.stopLsn), size);
  // Newest first by where they start in the WAL (a restored cluster's snapshot time says less).
  const byStart = [...backups].sort((a, b) => (start(b) > start(a) ? 1 : start(b) < start(a) ? -1 : 0));
  const window = byStart.slice(0, archiveBackups ?? byStart.length);
  const windowStart = window.reduce((min, b) => (start(b) < min ? start(b) : min), start(window[0]));
  const older = byStart.slice(window.length).map((b) => ({ from: start(b), to: stop(b) }));
  return [...cluster.files.keys()]
    .filter((name) => {
      const kind = walFileKind(name);
      if (kind === undefined || kind === "history") return false;
      const segno = parseSegmentName(name, size).segno;
      return segno < windowStart && !older.some((r) => r.from <= segno && segno <= r.to);
    })
    .sort();
}

/**
 * Expires the WAL of each cluster in `systemIds` against the base backups in
 * `snapshots` (what remains after a forget). A cluster with no base backup left
 * expires nothing: its WAL may be all there is.
 */
export async function expireWal(repo: Repository, snapshots: SnapshotEntry[], systemIds: Iterable<string>, o: WalExpiryOptions = {}): Promise<WalExpiry[]> {
  const out: WalExpiry[] = [];
  for (const systemId of new Set(systemIds)) {
    const cluster = await ClusterArchive.load(repo, systemId, snapshots);
    const expired = expirableWal(cluster, o.archiveBackups);
    if (!o.dryRun) for (const name of expired) await cluster.archive.remove(systemId, name);
    out.push({
      systemId,
      backups: cluster.backups.length,
      archiveBackups: Math.min(o.archiveBackups ?? cluster.backups.length, cluster.backups.length),
      expired,
      kept: cluster.files.size - expired.length,
    });
  }
  return out;
}

/** The clusters whose base backups are among `removed`: forgetting them may free WAL. */
export function clustersOf(removed: SnapshotEntry[]): string[] {
  return [...new Set(baseBackups(removed).map((b) => b.source.systemId))];
}

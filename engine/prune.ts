import { mapLimit } from "./concurrency.js";
import { CairnError, stopIfAborted } from "./errors.js";
import type { IndexFile } from "./index-file.js";
import { packKey, type PackEntry } from "./pack.js";
import type { Repository } from "./repository.js";
import { loadSnapshots } from "./snapshot.js";
import { decodeTree } from "./tree.js";

export interface PruneOptions {
  /**
   * How much unused space may stay in partly used packs rather than be repacked:
   * a share of the repository ("5%", the default), a size in bytes (a number, or
   * text such as "200M" / "1G"), or "unlimited" (never repack).
   */
  maxUnused?: number | string;
  /** Decide and report, change nothing. */
  dryRun?: boolean;
  /** With dryRun only: snapshot ids to count as already removed (a dry-run forget previews its prune with them). */
  forgotten?: ReadonlySet<string>;
  onProgress?: (p: PruneProgress) => void;
  /**
   * Stops prune while it finds used blobs or repacks, before the new index is
   * written and anything deleted: the repository stays as it was, at most with
   * new packs holding copies of blobs, which the next prune removes. Once the
   * new index is written prune finishes the deletions, which are quick.
   */
  signal?: AbortSignal;
}

export interface PruneProgress {
  phase: "finding used blobs" | "repacking" | "deleting";
  done: number;
  total: number;
}

export interface PruneResult {
  dryRun: boolean;
  snapshots: number;
  /** Blobs (data and trees) that some snapshot needs. */
  usedBlobs: number;
  packs: {
    /** Indexed packs present before prune. */
    before: number;
    /** Packs that held nothing any snapshot needs. */
    unused: number;
    /** Partly used packs whose used blobs were copied into new packs. */
    repacked: number;
    /** Pack files no index lists (left by an interrupted backup). */
    unreferenced: number;
    /** New packs written by the repack. */
    written: number;
    /** Packs left afterwards (including the new ones). */
    after: number;
  };
  bytes: {
    /** Size of every pack file before prune. */
    before: number;
    after: number;
    freed: number;
    /** Stored bytes of used blobs copied into new packs. */
    repacked: number;
    /** Unused bytes left in kept packs (tolerated by maxUnused). */
    unusedAfter: number;
  };
  /** Extra copies of blobs stored twice (by backups running at the same time) that prune drops. */
  duplicates: number;
  /** Index files replaced by the single new one. */
  indexFilesSuperseded: number;
  /** The storage keeps objects under retention (S3 Object Lock): nothing is repacked, since the old packs could not be deleted. */
  immutable: boolean;
  /** What prune would delete but the storage still retains; a prune after `until` deletes it. */
  keptByLock: { packs: number; bytes: number; indexFiles: number; until?: string };
}

interface PackInfo {
  id: string;
  blobs: PackEntry[];
  /** Size of the pack file; undefined when the index lists a pack that is not stored. */
  size?: number;
  /** The blobs of this pack that count as the copy snapshots use. */
  used: PackEntry[];
  usedBytes: number;
  unusedBytes: number;
}

/**
 * Removes data no snapshot needs. The caller MUST hold an exclusive lock.
 *
 * Crash safety comes from the order of the steps: new packs are written, then ONE
 * new index file that lists every pack that stays and supersedes every older index
 * file; only then are packs deleted, and the old index files last. Interrupted at
 * any point, the repository stays complete: at worst it holds packs no index lists
 * any more, which the next prune deletes.
 *
 * Refuses to delete anything when a blob some snapshot needs is missing.
 * Afterwards `repo.index` may still point at deleted packs for repacked blobs:
 * open the repository again before reading from it.
 */
export async function prune(repo: Repository, options: PruneOptions = {}): Promise<PruneResult> {
  const progress = options.onProgress ?? (() => undefined);
  // Backups that finished between opening the repository and taking the lock wrote index files since.
  await repo.loadIndex();
  // Index files the load skipped are superseded ones an interrupted prune left behind.
  const leftovers = (await repo.listIds("index")).filter((id) => !repo.indexFiles.has(id));
  const forgotten = options.dryRun ? options.forgotten : undefined;
  const snapshots = (await loadSnapshots(repo)).filter((s) => !forgotten?.has(s.id));
  const used = await findUsedBlobs(repo, snapshots.map((s) => s.tree), progress, options.signal);

  const stored = new Map<string, number>();
  for await (const obj of repo.backend.list("data/")) stored.set(obj.key.slice(obj.key.lastIndexOf("/") + 1), obj.size);

  const packs = new Map<string, PackInfo>();
  for (const file of (await repo.indexFilesWithEntries()).values()) {
    for (const p of file.packs) {
      if (!packs.has(p.id)) packs.set(p.id, { id: p.id, blobs: p.blobs, size: stored.get(p.id), used: [], usedBytes: 0, unusedBytes: 0 });
    }
  }
  const duplicates = claimUsedCopies([...packs.values()], used);

  const unreferenced = [...stored.keys()].filter((id) => !packs.has(id));
  const present = [...packs.values()].filter((p) => p.size !== undefined);
  const unused = present.filter((p) => p.used.length === 0);
  const partly = present.filter((p) => p.used.length > 0 && p.used.length < p.blobs.length);
  const usedBytes = present.reduce((n, p) => n + p.usedBytes, 0);
  const immutable = repo.backend.objectLock?.() !== undefined;
  const limit = immutable ? Infinity : unusedLimit(options.maxUnused ?? "5%", usedBytes);
  // Packs under retention stay, unused or not: deleting them would fail.
  const retained = await retention(repo, [...unused.map((p) => p.id), ...unreferenced].map(packKey));
  const keptPacks = [...unused.map((p) => p.id), ...unreferenced].filter((id) => retained.has(packKey(id)));
  const expired = (id: string) => !retained.has(packKey(id));

  // Repack the packs with the most unused bytes first until what is left is tolerable.
  let unusedLeft = partly.reduce((n, p) => n + p.unusedBytes, 0);
  const repack: PackInfo[] = [];
  for (const p of [...partly].sort((a, b) => b.unusedBytes - a.unusedBytes || (a.id < b.id ? -1 : 1))) {
    if (unusedLeft <= limit) break;
    repack.push(p);
    unusedLeft -= p.unusedBytes;
  }

  const removed = new Set([...unused.filter((p) => expired(p.id)), ...repack].map((p) => p.id));
  const staying = present.filter((p) => !removed.has(p.id));
  const unreferencedGone = unreferenced.filter(expired);
  const bytesBefore = [...stored.values()].reduce((n, s) => n + s, 0);
  const deletedBytes = [...removed, ...unreferencedGone].reduce((n, id) => n + stored.get(id)!, 0);
  const result: PruneResult = {
    dryRun: Boolean(options.dryRun),
    snapshots: snapshots.length,
    usedBlobs: used.size,
    packs: { before: present.length, unused: unused.length, repacked: repack.length, unreferenced: unreferenced.length, written: 0, after: staying.length },
    bytes: { before: bytesBefore, after: bytesBefore - deletedBytes, freed: deletedBytes, repacked: 0, unusedAfter: unusedLeft },
    duplicates,
    indexFilesSuperseded: 0,
    immutable,
    keptByLock: { packs: keptPacks.length, bytes: keptPacks.reduce((n, id) => n + stored.get(id)!, 0), indexFiles: 0, until: latest(retained.values()) },
  };
  if (options.dryRun) {
    // An estimate: repacked blobs are assumed to take as much room as before.
    result.bytes.repacked = repack.reduce((n, p) => n + p.usedBytes, 0);
    result.bytes.after += result.bytes.repacked;
    result.bytes.freed = result.bytes.before - result.bytes.after;
    return result;
  }
  if (immutable && removed.size === 0 && unreferencedGone.length === 0) {
    // A new index file would only add one more object under retention; superseded ones whose retention ended can go.
    await deleteIndexFiles(repo, leftovers, result);
    return result;
  }
  if (removed.size === 0 && unreferencedGone.length === 0 && repo.indexFiles.size <= 1 && leftovers.length === 0) return result;

  const oldIndexFiles = new Set(repo.indexFiles.keys());
  const packsBefore = repo.packsWritten;
  const packBytesBefore = repo.packBytesWritten;
  for (const id of removed) repo.packsBeingRemoved.add(id);
  try {
    const stayingIds = new Set(staying.map((p) => p.id));
    await repackBlobs(repo, repack, stayingIds, progress, (n) => (result.bytes.repacked += n), options.signal);
    await repo.flush();
    stopIfAborted(options.signal, pruneStopped());
    // Index files written during the repack are folded into the final one too, so exactly one remains.
    const written = [...(await repo.indexFilesWithEntries())].filter(([id]) => !oldIndexFiles.has(id));
    const finalPacks: IndexFile["packs"] = [...staying.map((p) => ({ id: p.id, blobs: p.blobs })), ...written.flatMap(([, f]) => f.packs)];
    const superseded = [...oldIndexFiles, ...written.map(([id]) => id), ...leftovers];
    if (superseded.length) await repo.flush({ supersedes: superseded, packs: finalPacks });

    const doomed = [...removed, ...unreferencedGone];
    progress({ phase: "deleting", done: 0, total: doomed.length + superseded.length });
    let done = 0;
    await mapLimit(doomed, 8, async (id) => {
      await repo.backend.delete(packKey(id));
      progress({ phase: "deleting", done: ++done, total: doomed.length + superseded.length });
    });
    await deleteIndexFiles(repo, superseded, result, () => progress({ phase: "deleting", done: ++done, total: doomed.length + superseded.length }));
    result.indexFilesSuperseded = superseded.length;
  } finally {
    repo.packsBeingRemoved.clear();
  }
  result.packs.written = repo.packsWritten - packsBefore;
  result.packs.after += result.packs.written;
  result.bytes.after += repo.packBytesWritten - packBytesBefore;
  result.bytes.freed = result.bytes.before - result.bytes.after;
  return result;
}

/**
 * Deletes superseded index files, except those still under retention: the
 * loader skips superseded files, and a later prune deletes them once it ends.
 */
async function deleteIndexFiles(repo: Repository, ids: string[], result: PruneResult, onDeleted: () => void = () => undefined): Promise<void> {
  const retained = await retention(repo, ids.map((id) => `index/${id}`));
  await mapLimit(ids, 8, async (id) => {
    if (!retained.has(`index/${id}`)) await repo.backend.delete(`index/${id}`);
    repo.indexFiles.delete(id);
    onDeleted();
  });
  result.keptByLock.indexFiles = retained.size;
  result.keptByLock.until = latest(retained.values(), result.keptByLock.until);
}

/** The keys among `keys` that the storage retains, with the date their retention ends. */
async function retention(repo: Repository, keys: string[]): Promise<Map<string, Date>> {
  const retained = new Map<string, Date>();
  const until = repo.backend.retainedUntil?.bind(repo.backend);
  if (!until) return retained;
  await mapLimit(keys, 8, async (key) => {
    const date = await until(key);
    if (date) retained.set(key, date);
  });
  return retained;
}

/** The latest of the dates and `since` (ISO text), as ISO text. */
function latest(dates: Iterable<Date>, since?: string): string | undefined {
  const max = Math.max(...[...dates].map((d) => d.getTime()), since ? Date.parse(since) : -Infinity);
  return Number.isFinite(max) ? new Date(max).toISOString() : undefined;
}

/** Walks every snapshot's trees; returns the ids (hex) of every tree and data blob in use. */
async function findUsedBlobs(repo: Repository, roots: string[], progress: (p: PruneProgress) => void, signal?: AbortSignal): Promise<Set<string>> {
  const used = new Set<string>();
  let frontier = [...new Set(roots)];
  let done = 0;
  let known = frontier.length;
  while (frontier.length) {
    for (const id of frontier) used.add(id);
    const next: string[] = [];
    await mapLimit(
      frontier,
      8,
      async (treeId) => {
        if (!repo.lookup(Buffer.from(treeId, "hex"))) throw missing(treeId, "tree");
        const tree = decodeTree(await repo.loadBlob(Buffer.from(treeId, "hex")), treeId);
        for (const node of tree.nodes) {
          for (const blob of node.content ?? []) used.add(blob);
          if (node.subtree && !used.has(node.subtree)) {
            used.add(node.subtree);
            next.push(node.subtree);
            known++;
          }
        }
        progress({ phase: "finding used blobs", done: ++done, total: known });
      },
      { signal, cancelled: () => pruneStopped() },
    );
    frontier = next;
  }
  return used;
}

/**
 * Picks, for every used blob, the one stored copy that counts as used; any other
 * copy counts as unused. Packs with more used blobs claim first, so a duplicate
 * is dropped from the pack where that costs least. Returns the number of extra copies.
 */
function claimUsedCopies(packs: PackInfo[], used: Set<string>): number {
  const inUse = (p: PackInfo) => p.blobs.reduce((n, b) => n + (used.has(b.id.toString("hex")) ? 1 : 0), 0);
  const order = packs
    .filter((p) => p.size !== undefined)
    .map((p) => ({ p, n: inUse(p) }))
    .sort((a, b) => b.n - a.n || (a.p.id < b.p.id ? -1 : 1));
  const claimed = new Set<string>();
  let duplicates = 0;
  for (const { p } of order) {
    for (const b of p.blobs) {
      const hex = b.id.toString("hex");
      if (used.has(hex) && !claimed.has(hex)) {
        claimed.add(hex);
        p.used.push(b);
        p.usedBytes += b.length;
      } else {
        if (used.has(hex)) duplicates++;
        p.unusedBytes += b.length;
      }
    }
  }
  const lost = [...used].filter((id) => !claimed.has(id));
  if (lost.length) throw missing(lost[0], "blob", lost.length);
  return duplicates;
}

/** Copies the used blobs of `packs` into new packs, unless a pack that stays holds a copy already. */
async function repackBlobs(
  repo: Repository,
  packs: PackInfo[],
  staying: Set<string>,
  progress: (p: PruneProgress) => void,
  counted: (bytes: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  const elsewhere = new Set<string>();
  for (const file of (await repo.indexFilesWithEntries()).values()) {
    for (const p of file.packs) if (staying.has(p.id)) for (const b of p.blobs) elsewhere.add(b.id.toString("hex"));
  }
  let done = 0;
  for (const pack of packs) {
    stopIfAborted(signal, pruneStopped(`${done} of ${packs.length} packs were repacked`));
    progress({ phase: "repacking", done, total: packs.length });
    const bytes = await repo.backend.get(packKey(pack.id));
    const copy = pack.used.filter((b) => !elsewhere.has(b.id.toString("hex")));
    // Decrypting verifies each blob: a damaged one stops prune before anything is deleted.
    await mapLimit(copy, 4, async (b) => {
      const { data } = await repo.pool.open({ envelope: bytes.subarray(b.offset, b.offset + b.length), compression: b.compression, expectId: b.id });
      counted(b.length);
      await repo.saveBlob(b.type, data!, b.id);
    });
    done++;
  }
  progress({ phase: "repacking", done, total: packs.length });
}

/** Why a cancelled prune stopped: before its new index, so nothing was deleted. */
function pruneStopped(done?: string): string {
  return `prune cancelled${done ? ` after ${done}` : ""}, before it wrote a new index or deleted anything; the repository is complete, and the next prune removes what this one copied`;
}

function missing(id: string, what: "tree" | "blob", count = 1): CairnError {
  return new CairnError(
    `${count > 1 ? `${count} blobs that snapshots need are` : `${what} ${id.slice(0, 16)}, which a snapshot needs, is`} missing from the repository; prune stopped without deleting anything. Run "cairn check" to see which snapshots are damaged, and "cairn forget" them or back up again`,
  );
}

/** The number of unused bytes to tolerate; a percentage is of the repository size after prune. */
export function unusedLimit(maxUnused: number | string, usedBytes: number): number {
  if (typeof maxUnused === "number") {
    if (!(maxUnused >= 0)) throw badMaxUnused(String(maxUnused));
    return maxUnused;
  }
  const text = maxUnused.trim().toLowerCase();
  if (text === "unlimited") return Infinity;
  const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(text);
  if (pct) {
    const p = Number(pct[1]);
    if (p > 100) throw badMaxUnused(maxUnused);
    // unused / (used + unused) <= p%  <=>  unused <= used * p / (100 - p)
    return p >= 100 ? Infinity : (usedBytes * p) / (100 - p);
  }
  const size = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/.exec(text);
  if (!size) throw badMaxUnused(maxUnused);
  return Number(size[1]) * 1024 ** "_kmgt".indexOf(size[2] || "_");
}

function badMaxUnused(text: string): CairnError {
  return new CairnError(`cannot read --max-unused "${text}": give a share such as 5%, a size such as 500M or 2G, or "unlimited"`);
}

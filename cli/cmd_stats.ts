import type { Command } from "commander";
import { BlobType } from "../engine/blob-index.js";
import { CairnError } from "../engine/errors.js";
import type { Repository } from "../engine/repository.js";
import { findSnapshot, loadSnapshots, type SnapshotEntry } from "../engine/snapshot.js";
import { TreeLoader } from "../engine/tree.js";
import { formatBytes, globals, output, withRepository } from "./common.js";

/** Sizes of a set of snapshots and of the repository holding them. */
export interface RepositoryStats {
  snapshots: number;
  /** Sum of file sizes over the snapshots: what restoring each of them would write. */
  restoreSize: number;
  /** Plaintext bytes of the unique blobs (data and trees) the snapshots reference. */
  rawData: number;
  /** Bytes those blobs take in packs (compressed and encrypted). */
  storedSize: number;
  dataBlobs: number;
  treeBlobs: number;
  /** Pack files in the repository and their total size (all snapshots, and data no snapshot needs). */
  packs: number;
  packBytes: number;
  /** restoreSize / rawData: how much deduplication saves. */
  dedupRatio: number;
  /** rawData / storedSize: how much compression saves (below 1 when encryption overhead dominates). */
  compressionRatio: number;
}

/** Walks the snapshots' trees (each tree once) and sums what they hold. */
export async function repositoryStats(repo: Repository, snapshots: SnapshotEntry[]): Promise<RepositoryStats> {
  const loader = new TreeLoader(repo);
  const treeSizes = new Map<string, number>();
  const blobs = new Set<string>();
  const treeSize = async (treeId: string): Promise<number> => {
    const known = treeSizes.get(treeId);
    if (known !== undefined) return known;
    blobs.add(treeId);
    let size = 0;
    for (const node of (await loader.load(treeId)).nodes) {
      if (node.type === "file") {
        size += node.size ?? 0;
        for (const id of node.content ?? []) blobs.add(id);
      } else if (node.type === "dir" && node.subtree) size += await treeSize(node.subtree);
    }
    treeSizes.set(treeId, size);
    return size;
  };
  let restoreSize = 0;
  for (const s of snapshots) restoreSize += await treeSize(s.tree);

  const stats: RepositoryStats = {
    snapshots: snapshots.length, restoreSize, rawData: 0, storedSize: 0, dataBlobs: 0, treeBlobs: 0,
    packs: 0, packBytes: 0, dedupRatio: 0, compressionRatio: 0,
  };
  for (const id of blobs) {
    const loc = repo.lookup(Buffer.from(id, "hex"));
    if (!loc) throw new CairnError(`blob ${id.slice(0, 16)} is referenced by a snapshot but missing from the index; run "cairn check"`);
    stats.rawData += loc.rawLength;
    stats.storedSize += loc.length;
    if (loc.type === BlobType.tree) stats.treeBlobs++;
    else stats.dataBlobs++;
  }
  for await (const obj of repo.backend.list("data/")) {
    stats.packs++;
    stats.packBytes += obj.size;
  }
  stats.dedupRatio = stats.rawData ? restoreSize / stats.rawData : 0;
  stats.compressionRatio = stats.storedSize ? stats.rawData / stats.storedSize : 0;
  return stats;
}

export function register(program: Command): void {
  program
    .command("stats")
    .description("show how much the snapshots hold and how much space they take")
    .argument("[snapshots...]", 'snapshot ids (or unique prefixes) or "latest"; default: every snapshot')
    .action(async (refs: string[], _o: unknown, cmd: Command) => {
      const opts = globals(cmd);
      const stats = await withRepository(opts, "shared", "stats", async (repo) => {
        const chosen = refs.length ? await Promise.all(refs.map((r) => findSnapshot(repo, r))) : await loadSnapshots(repo);
        const unique = [...new Map(chosen.map((s) => [s.id, s])).values()];
        return repositoryStats(repo, unique);
      });
      output(opts, stats, () =>
        [
          ["snapshots", `${stats.snapshots}`],
          ["restore size", formatBytes(stats.restoreSize)],
          ["raw data", `${formatBytes(stats.rawData)} in ${stats.dataBlobs} data and ${stats.treeBlobs} tree blobs`],
          ["stored size", formatBytes(stats.storedSize)],
          ["dedup ratio", `${stats.dedupRatio.toFixed(2)}x`],
          ["compression ratio", `${stats.compressionRatio.toFixed(2)}x`],
          ["packs in repository", `${stats.packs} (${formatBytes(stats.packBytes)})`],
        ]
          .map(([label, value]) => `${(label + ":").padEnd(21)}${value}`)
          .join("\n"),
      );
    });
}

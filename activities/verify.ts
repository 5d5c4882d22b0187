import type { BlobLocation } from "../engine/blob-index.js";
import { selectSubset } from "../engine/checker.js";
import { mapLimit } from "../engine/concurrency.js";
import { sha256Hex } from "../engine/crypto.js";
import { packKey } from "../engine/pack.js";
import type { Repository } from "../engine/repository.js";
import type { Snapshot } from "../engine/snapshot.js";
import { TreeLoader } from "../engine/tree.js";
import type { VerifyResult } from "../workflows/messages.js";

export interface SnapshotCheckProgress {
  packsDone: number;
  packsTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

/**
 * Checks one new snapshot rather than the whole repository: every tree it needs
 * loads and verifies, every data blob it names is indexed, and `samplePercent` of
 * the packs holding its data are downloaded with each of its blobs in them
 * decrypted and checked against its id.
 */
export async function verifySnapshot(
  repo: Repository,
  snapshotId: string,
  samplePercent: number,
  onProgress?: (p: SnapshotCheckProgress) => void,
  signal?: AbortSignal,
): Promise<VerifyResult> {
  const result: VerifyResult = { errors: [], warnings: [], packsRead: 0 };
  const snapshot = await repo.loadJSON<Snapshot>("snapshots", snapshotId);
  const packs = await dataPacks(repo, snapshot.tree, result.errors);
  const chosen = selectSubset([...packs.keys()].sort(), `${samplePercent}%`);
  const packEnd = (id: string) => Math.max(...[...packs.get(id)!.values()].map((b) => b.offset + b.length));
  const progress = { packsDone: 0, packsTotal: chosen.length, bytesDone: 0, bytesTotal: chosen.reduce((n, id) => n + packEnd(id), 0) };
  const cancelled = () => `verification cancelled after ${progress.packsDone} of ${progress.packsTotal} packs were read; it changed nothing`;
  await mapLimit(
    chosen,
    2,
    async (packId) => {
      const bytes = await repo.backend.get(packKey(packId));
      result.packsRead++;
      if (sha256Hex(bytes) !== packId) result.errors.push(`pack ${packKey(packId)} is damaged: its content no longer matches its name`);
      await Promise.all(
        [...packs.get(packId)!].map(async ([hex, loc]) => {
          try {
            if (loc.offset + loc.length > bytes.length) throw new Error("it lies beyond the end of the pack");
            await repo.pool.open({ envelope: bytes.subarray(loc.offset, loc.offset + loc.length), compression: loc.compression, expectId: loc.id, verifyOnly: true });
          } catch (err) {
            result.errors.push(`blob ${hex} in pack ${packId} is damaged: ${(err as Error).message}`);
          }
        }),
      );
      progress.packsDone++;
      progress.bytesDone += packEnd(packId);
      onProgress?.({ ...progress });
    },
    { signal, cancelled },
  );
  return result;
}

/** Walks the snapshot's trees; returns the packs holding its data blobs, each with the blobs it holds. */
async function dataPacks(repo: Repository, root: string, errors: string[]): Promise<Map<string, Map<string, BlobLocation>>> {
  const loader = new TreeLoader(repo);
  const packs = new Map<string, Map<string, BlobLocation>>();
  const seen = new Set<string>();
  const pending = [{ tree: root, path: "/" }];
  while (pending.length) {
    const { tree, path } = pending.pop()!;
    if (seen.has(tree)) continue;
    seen.add(tree);
    let nodes;
    try {
      nodes = (await loader.load(tree)).nodes;
    } catch (err) {
      errors.push(`tree ${tree} of ${path} cannot be read: ${(err as Error).message}`);
      continue;
    }
    for (const node of nodes) {
      const p = path === "/" ? `/${node.name}` : `${path}/${node.name}`;
      if (node.type === "dir" && node.subtree) pending.push({ tree: node.subtree, path: p });
      for (const hex of node.type === "file" ? node.content ?? [] : []) {
        const loc = repo.lookup(Buffer.from(hex, "hex"));
        if (!loc) {
          errors.push(`data blob ${hex} of ${p} is not in the index`);
          continue;
        }
        let blobs = packs.get(loc.packId);
        if (!blobs) packs.set(loc.packId, (blobs = new Map()));
        blobs.set(hex, loc);
      }
    }
  }
  return packs;
}

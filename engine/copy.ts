import { BlobType } from "./blob-index.js";
import { mapLimit } from "./concurrency.js";
import { CairnError } from "./errors.js";
import type { Repository } from "./repository.js";
import { findSnapshot, loadSnapshots, sameSet, type Snapshot, type SnapshotEntry } from "./snapshot.js";
import { fileContent } from "./export.js";
import { pageHash } from "./pagemap.js";
import { decodeTree, saveTree, type TreeNode } from "./tree.js";

/** Progress of a running copy, reported after each blob. */
export interface CopyProgress {
  snapshotsDone: number;
  snapshotsTotal: number;
  blobsSent: number;
  /** Pack bytes written to the destination so far. */
  bytesSent: number;
}

export interface CopyOptions {
  /** Snapshot references in the source ("latest", ids or id prefixes); all snapshots when absent or empty. */
  snapshotIds?: string[];
  onProgress?: (p: CopyProgress) => void;
  signal?: AbortSignal;
}

export interface CopyResult {
  /** Snapshots written to the destination: source id -> new id. */
  copied: { from: string; to: string }[];
  /** Snapshots the destination already had: source id -> its id there. */
  skipped: { from: string; to: string }[];
  /** Data and tree blobs stored in the destination. */
  blobsSent: number;
  /** Plaintext bytes of those blobs. */
  dataSent: number;
  /** Pack bytes written to the destination (after its compression and encryption). */
  bytesSent: number;
  /** File content bytes of the copied snapshots, for comparison with bytesSent. */
  snapshotBytes: number;
  /** True when both repositories share one blob id key (init --copy-chunker-params), so trees were copied as they are. */
  sharedIdKey: boolean;
}

/**
 * Copies snapshots from one repository to another. Blobs are read from `from`
 * (decrypted and verified against their ids) and stored in `to` under its own keys
 * and compression; only blobs `to` lacks are sent. A snapshot `to` already has (same
 * time, host and paths, and the same tree when ids are shared) is skipped, so running
 * a copy again sends nothing. Each snapshot document is written after its blobs are
 * flushed: an interrupted copy leaves no snapshot pointing at missing data.
 *
 * When `to` was made with `init --copy-chunker-params` the two share the blob id key
 * and trees are sent verbatim. Otherwise every blob id is recomputed under `to`'s key
 * and trees are rewritten, which means reading all data of each snapshot copied.
 */
export async function copySnapshots(from: Repository, to: Repository, options: CopyOptions = {}): Promise<CopyResult> {
  if (from.config.id === to.config.id) throw new CairnError("the source and destination are the same repository; give a different --from-repo");
  const sharedIdKey = from.idKey.equals(to.idKey);
  const selected = await selectSnapshots(from, options.snapshotIds);
  const existing = await loadSnapshots(to);
  const result: CopyResult = { copied: [], skipped: [], blobsSent: 0, dataSent: 0, bytesSent: 0, snapshotBytes: 0, sharedIdKey };
  const packedAtStart = to.packBytesWritten;
  const progress: CopyProgress = { snapshotsDone: 0, snapshotsTotal: selected.length, blobsSent: 0, bytesSent: 0 };
  const report = () => {
    progress.blobsSent = result.blobsSent;
    progress.bytesSent = to.packBytesWritten - packedAtStart;
    options.onProgress?.({ ...progress });
  };
  const blobs = new BlobCopier(from, to, sharedIdKey, (bytes) => {
    result.blobsSent++;
    result.dataSent += bytes;
    report();
  }, options.signal);
  // Parents are named by id, and ids differ between repositories: map the ones known there.
  const idInTo = new Map<string, string>();
  for (const s of selected) {
    const twin = existing.find((e) => sameSnapshot(s, e, sharedIdKey));
    if (twin) {
      idInTo.set(s.id, twin.id);
      result.skipped.push({ from: s.id, to: twin.id });
    } else {
      const tree = await blobs.tree(s.tree);
      await to.flush();
      const { id: _id, parent, ...doc } = s;
      const parentInTo = parent && idInTo.get(parent);
      const copy: Snapshot = { ...doc, tree, ...(parentInTo ? { parent: parentInTo } : {}) };
      const id = await to.saveJSON("snapshots", copy);
      existing.push({ id, ...copy });
      idInTo.set(s.id, id);
      result.copied.push({ from: s.id, to: id });
      result.snapshotBytes += s.summary?.totalBytes ?? 0;
    }
    progress.snapshotsDone++;
    report();
  }
  result.bytesSent = to.packBytesWritten - packedAtStart;
  return result;
}

async function selectSnapshots(from: Repository, refs: string[] = []): Promise<SnapshotEntry[]> {
  if (!refs.length) return loadSnapshots(from);
  const byId = new Map<string, SnapshotEntry>();
  for (const ref of refs) {
    const s = await findSnapshot(from, ref);
    byId.set(s.id, s);
  }
  // Oldest first, so a parent is in the destination before its children.
  return [...byId.values()].sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
}

/** The same backup, told apart by content rather than by file id (ciphertext, and so ids, differ between repositories). */
function sameSnapshot(a: Snapshot, b: Snapshot, sharedIdKey: boolean): boolean {
  return a.time === b.time && a.host === b.host && sameSet(a.paths, b.paths) && (!sharedIdKey || a.tree === b.tree);
}

/**
 * Sends the blobs of trees from one repository to another, each at most once per
 * run, and returns the id each blob has in the destination.
 */
class BlobCopier {
  private readonly done = new Map<string, Promise<string>>();

  constructor(
    private readonly from: Repository,
    private readonly to: Repository,
    private readonly sharedIdKey: boolean,
    private readonly onSent: (bytes: number) => void,
    private readonly signal?: AbortSignal,
  ) {}

  /** The page hashes of a page-mapped file under the destination's id key. */
  private async pageHashes(node: TreeNode): Promise<string> {
    const size = node.pages!.size;
    const hashes: Buffer[] = [];
    // Pieces start on page boundaries; only the file's last page may be short.
    for await (const piece of fileContent(this.from, node, node.name)) {
      for (let at = 0; at < piece.length; at += size) hashes.push(pageHash(this.to.idKey, piece.subarray(at, at + size)));
    }
    return Buffer.concat(hashes).toString("base64");
  }

  /** Copies a tree and everything below it; returns the tree's id in the destination. */
  tree(id: string): Promise<string> {
    return this.once(`t${id}`, async () => {
      if (this.signal?.aborted) throw new CairnError("copy cancelled; snapshots copied so far are complete in the destination");
      const raw = await this.from.loadBlob(Buffer.from(id, "hex"));
      const tree = decodeTree(raw, id);
      for (const node of tree.nodes) {
        if (node.pages) {
          if (this.to.config.version < 2) throw new CairnError(`the snapshot holds page-mapped files (a PostgreSQL base backup), which a format version ${this.to.config.version} repository cannot hold; copy into a repository made by this cairn`);
          // Page hashes are keyed like blob ids: under another key they are computed again.
          if (!this.sharedIdKey) node.pages = { ...node.pages, hashes: await this.pageHashes(node) };
        }
        if (node.content?.length) {
          const content = new Array<string>(node.content.length);
          await mapLimit(node.content, 4, async (blob, i) => {
            content[i] = await this.data(blob);
          });
          node.content = content;
        }
        if (node.subtree) node.subtree = await this.tree(node.subtree);
      }
      if (this.sharedIdKey) {
        await this.send(BlobType.tree, raw, id);
        return id;
      }
      const saved = await saveTree(this.to, tree);
      if (saved.added) this.onSent(raw.length);
      return saved.id;
    });
  }

  private data(id: string): Promise<string> {
    return this.once(`d${id}`, async () => {
      // With a shared id key the destination can tell what it has without reading the data.
      if (this.sharedIdKey && this.to.hasBlob(Buffer.from(id, "hex"))) return id;
      const data = await this.from.loadBlob(Buffer.from(id, "hex"));
      const toId = this.sharedIdKey ? id : this.to.blobId(data).toString("hex");
      await this.send(BlobType.data, data, toId);
      return toId;
    });
  }

  private async send(type: BlobType, data: Buffer, id: string): Promise<void> {
    const length = data.length;
    if (await this.to.saveBlob(type, data, Buffer.from(id, "hex"))) this.onSent(length);
  }

  private once(key: string, fn: () => Promise<string>): Promise<string> {
    let p = this.done.get(key);
    if (!p) {
      p = fn();
      this.done.set(key, p);
    }
    return p;
  }
}

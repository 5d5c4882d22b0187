import { createHash } from "node:crypto";
import { isNotFound } from "../backends/backend.js";
import { BlobType, type BlobLocation } from "./blob-index.js";
import { sha256Hex } from "./crypto.js";
import type { OpenBatchRequest, OpenBatchResult } from "./codec.js";
import { CairnError, stopIfAborted } from "./errors.js";
import { decodeIndex, type IndexFile } from "./index-file.js";
import { decodePackHeader, packHeaderLength, packKey, type PackEntry } from "./pack.js";
import { filePieces, PageMapOverrun } from "./pagemap.js";
import { mapLimit } from "./concurrency.js";
import { release } from "./release.js";
import type { Repository } from "./repository.js";
import type { Snapshot } from "./snapshot.js";
import { decodeTree } from "./tree.js";

/** What a problem is about; `object` names it (a pack id, `index/<id>`, a blob id, ...). */
export type CheckErrorKind = "index" | "pack" | "blob" | "tree" | "snapshot" | "key";

export interface CheckError {
  kind: CheckErrorKind;
  object: string;
  message: string;
}

export interface CheckOptions {
  /** Download packs and verify every blob in them. */
  readData?: boolean;
  /** Read only some packs: "10%" or "0.1" (a random sample), or "n/m" (the n-th of m groups, by pack id order). Implies readData. */
  subset?: string;
  onProgress?: (p: CheckProgress) => void;
  /** Stops the check between trees and between packs; it has changed nothing. */
  signal?: AbortSignal;
}

export interface CheckProgress {
  packsDone: number;
  packsTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface CheckReport {
  errors: CheckError[];
  warnings: string[];
  /** Packs named by the index. */
  packs: number;
  packsRead: number;
  blobsRead: number;
  snapshots: number;
}

/** Packs read at once; each has one piece in flight. */
const PACKS_AT_ONCE = 3;
/**
 * Pieces a codec thread holds at once: one it verifies and one waiting, so it does not
 * idle while this thread verifies a piece of its own (see verifyPiece).
 */
const THREAD_DEPTH = 2;
/** A pack is read in pieces of at most this many bytes, cut between blobs (bounds the bytes in memory, whatever the pack size). */
const PIECE = 2 << 20;
/** Bytes kept of a pack's last piece for its header (a longer header is read on its own). */
const TAIL = 64 * 1024;
const CHECK_STOPPED = "check cancelled; it changed nothing in the repository";

type Fail = (kind: CheckErrorKind, object: string, message: string) => void;

/**
 * Checks a repository: that every file loads and every reference resolves, and
 * with `readData` that the bytes in the packs are the bytes that were written.
 * Problems are collected, never thrown, so one damaged object does not hide others.
 */
export async function checkRepository(repo: Repository, options: CheckOptions = {}): Promise<CheckReport> {
  const report: CheckReport = { errors: [], warnings: [], packs: 0, packsRead: 0, blobsRead: 0, snapshots: 0 };
  const fail: Fail = (kind, object, message) => report.errors.push({ kind, object, message });

  await checkIndexFiles(repo, fail);
  const packs = indexedPacks((await repo.indexFilesWithEntries()).values());
  report.packs = packs.size;
  const present = await checkPackFiles(repo, packs, fail, report.warnings);
  await checkKeys(repo, fail);
  await checkSnapshots(repo, report, fail, options.signal);

  if (options.readData || options.subset !== undefined) {
    const readable = [...packs.keys()].filter((id) => present.has(id)).sort();
    const chosen = options.subset === undefined ? readable : selectSubset(readable, options.subset);
    await readPacks(repo, chosen.map((id) => ({ id, size: present.get(id)!, blobs: packs.get(id)! })), report, fail, options.onProgress, options.signal);
  }
  return report;
}

/** Loads the index files the open skipped or superseded: a damaged one is an error naming it. */
async function checkIndexFiles(repo: Repository, fail: Fail): Promise<void> {
  for (const id of await repo.listIds("index")) {
    if (repo.indexFiles.has(id)) continue;
    try {
      decodeIndex(await repo.loadUnpacked("index", id));
    } catch (err) {
      if (isNotFound(err)) continue; // removed by a prune since the listing
      fail("index", `index/${id}`, `index file index/${id} cannot be read: ${(err as Error).message}`);
    }
  }
}

function indexedPacks(files: Iterable<IndexFile>): Map<string, PackEntry[]> {
  const packs = new Map<string, PackEntry[]>();
  for (const f of files) {
    for (const p of f.packs) {
      const list = packs.get(p.id);
      if (list) list.push(...p.blobs);
      else packs.set(p.id, [...p.blobs]);
    }
  }
  return packs;
}

/** Every indexed pack must exist and be long enough; packs no index names are only a warning. Returns the packs present, with their sizes. */
async function checkPackFiles(repo: Repository, packs: Map<string, PackEntry[]>, fail: Fail, warnings: string[]): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for await (const obj of repo.backend.list("data/")) sizes.set(obj.key.slice(obj.key.lastIndexOf("/") + 1), obj.size);
  const present = new Map<string, number>();
  for (const [id, blobs] of packs) {
    const size = sizes.get(id);
    if (size === undefined) {
      fail("pack", id, `pack ${packKey(id)} is missing; the index names it for ${blobs.length} blobs`);
      continue;
    }
    const end = packEnd(blobs);
    if (size < end) {
      fail("pack", id, `pack ${packKey(id)} is truncated: ${size} bytes, the index needs at least ${end}`);
      continue;
    }
    present.set(id, size);
  }
  for (const id of sizes.keys()) {
    if (!packs.has(id)) warnings.push(`unreferenced pack ${packKey(id)}: no index names it; prune removes it`);
  }
  return present;
}

async function checkKeys(repo: Repository, fail: Fail): Promise<void> {
  for (const id of await repo.listIds("keys")) {
    const bytes = await repo.backend.get(`keys/${id}`);
    if (sha256Hex(bytes) !== id) fail("key", `keys/${id}`, `key file keys/${id} is damaged: its content no longer matches its name`);
  }
}

/** Loads every snapshot and walks every tree reachable from it, each tree once. */
async function checkSnapshots(repo: Repository, report: CheckReport, fail: Fail, signal?: AbortSignal): Promise<void> {
  const seenTrees = new Set<string>();
  const missingBlobs = new Set<string>();
  for (const id of await repo.listIds("snapshots")) {
    report.snapshots++;
    let snapshot: Snapshot;
    try {
      snapshot = await repo.loadJSON<Snapshot>("snapshots", id);
    } catch (err) {
      fail("snapshot", `snapshots/${id}`, `snapshot ${id} cannot be read: ${(err as Error).message}`);
      continue;
    }
    const pending: { tree: string; path: string }[] = [{ tree: snapshot.tree, path: "/" }];
    while (pending.length) {
      stopIfAborted(signal, CHECK_STOPPED);
      const { tree: treeId, path } = pending.pop()!;
      if (seenTrees.has(treeId)) continue;
      seenTrees.add(treeId);
      const where = `${path} in snapshot ${id.slice(0, 8)}`;
      if (!typedBlobIndexed(repo, treeId, BlobType.tree)) {
        fail("tree", treeId, `tree ${treeId} of ${where} is not in the index`);
        continue;
      }
      let nodes;
      try {
        nodes = decodeTree(await repo.loadBlob(Buffer.from(treeId, "hex")), treeId).nodes;
      } catch (err) {
        fail("tree", treeId, `tree ${treeId} of ${where} cannot be read: ${(err as Error).message}`);
        continue;
      }
      for (const node of nodes) {
        const p = path === "/" ? `/${node.name}` : `${path}/${node.name}`;
        if (node.type === "dir" && node.subtree) pending.push({ tree: node.subtree, path: p });
        for (const blob of node.type === "file" ? node.content ?? [] : []) {
          if (missingBlobs.has(blob) || typedBlobIndexed(repo, blob, BlobType.data)) continue;
          missingBlobs.add(blob);
          fail("blob", blob, `data blob ${blob} of ${p} in snapshot ${id.slice(0, 8)} is not in the index`);
        }
        if (node.type === "file" && node.pages) {
          // A page map that does not fit its blobs would restore wrong bytes: say so here, before a restore needs it
          // (a missing blob is reported above: its length counts as unbounded here).
          try {
            filePieces(node, (blob) => repo.lookup(Buffer.from(blob, "hex"))?.rawLength ?? Infinity);
          } catch (err) {
            if (err instanceof PageMapOverrun) fail("tree", treeId, `the page map of ${p} in snapshot ${id.slice(0, 8)} reads past the end of blob ${err.blob.slice(0, 16)}`);
            else fail("tree", treeId, `${p} in snapshot ${id.slice(0, 8)}: ${(err as Error).message}`);
          }
        }
      }
    }
  }
}

const BLOB_ID = /^[0-9a-f]{64}$/;
/** One key buffer reused for every look-up (Buffer#write decodes the hex in place). */
const idKey = Buffer.alloc(32);

function typedBlobIndexed(repo: Repository, hex: string, type: BlobType): boolean {
  if (typeof hex !== "string" || hex.length !== 64 || !BLOB_ID.test(hex)) return false;
  idKey.write(hex, "hex");
  return repo.index.typeOf(idKey) === type;
}

/**
 * The packs a subset names. "n/m" splits the packs, sorted by id, into m runs of
 * (nearly) equal length and takes the n-th, so m runs with n = 1..m read every
 * pack exactly once. A percentage or fraction picks that share at random.
 */
export function selectSubset(sortedIds: string[], subset: string): string[] {
  const group = /^(\d+)\/(\d+)$/.exec(subset.trim());
  if (group) {
    const n = Number(group[1]);
    const m = Number(group[2]);
    if (m < 1 || n < 1 || n > m) throw new CairnError(`--read-data-subset ${subset}: n/m needs 1 <= n <= m, e.g. 1/5`);
    const from = Math.floor(((n - 1) * sortedIds.length) / m);
    const to = Math.floor((n * sortedIds.length) / m);
    return sortedIds.slice(from, to);
  }
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(subset.trim());
  const share = pct ? Number(pct[1]) / 100 : /^(0(?:\.\d+)?|1(?:\.0+)?)$/.test(subset.trim()) ? Number(subset) : NaN;
  if (!(share >= 0 && share <= 1)) throw new CairnError(`--read-data-subset ${subset} is not understood: give a percentage (10%), a fraction (0.1) or n/m (1/5)`);
  const count = share === 0 ? 0 : Math.max(1, Math.round(share * sortedIds.length));
  const pool = [...sortedIds];
  for (let i = pool.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, count).sort();
}

/**
 * Reads each pack in pieces, in order, and verifies its name (the SHA-256 of its bytes,
 * hashed here as the pieces come), its header against the index, and every blob (on
 * the codec threads, one job per piece).
 */
async function readPacks(
  repo: Repository,
  packs: { id: string; size: number; blobs: PackEntry[] }[],
  report: CheckReport,
  fail: Fail,
  onProgress?: (p: CheckProgress) => void,
  signal?: AbortSignal,
): Promise<void> {
  const progress: CheckProgress = { packsDone: 0, packsTotal: packs.length, bytesDone: 0, bytesTotal: 0 };
  const buffers = new PieceBuffers();
  for (const p of packs) progress.bytesTotal += packEnd(p.blobs);
  await mapLimit(packs, PACKS_AT_ONCE, async ({ id, size, blobs }) => {
    stopIfAborted(signal, `${CHECK_STOPPED} after ${progress.packsDone} of ${progress.packsTotal} packs were read`);
    const sorted = blobs.map((b, i) => ({ b, i })).sort((x, y) => x.b.offset - y.b.offset);
    const hash = createHash("sha256");
    const errors: (string | undefined)[] = new Array(blobs.length);
    let tail = Buffer.alloc(0);
    for (const piece of pieces(sorted, size)) {
      const into = buffers.take(piece.end - piece.start);
      let bytes: Buffer;
      try {
        bytes = await repo.backend.get(packKey(id), { offset: piece.start, length: piece.end - piece.start, into });
      } catch (err) {
        buffers.give(into);
        fail("pack", id, `pack ${packKey(id)} cannot be read: ${(err as Error).message}`);
        return;
      }
      hash.update(bytes);
      // The header is read from the last piece before it moves to a codec thread.
      if (piece.end === size) tail = Buffer.from(bytes.subarray(Math.max(0, bytes.length - TAIL)));
      // A backend that does not read in place returned a buffer of its own: it is dead once verified.
      const inPlace = bytes.buffer === into.buffer;
      if (!inPlace) buffers.give(into);
      if (!piece.blobs.length) {
        if (inPlace) buffers.give(into);
        continue;
      }
      const items = piece.blobs.map(({ b }) => ({ offset: b.offset - piece.start, length: b.length, compression: b.compression, expectId: b.id }));
      const result = await verifyPiece(repo, inPlace ? { buffer: into, used: bytes.length, giveBack: true, items, verifyOnly: true } : { buffer: bytes, items, verifyOnly: true });
      if (inPlace) buffers.give(result.buffer);
      // Verified here, the piece is dead now; moved to a codec thread, it is gone from this one already.
      else release(bytes);
      result.items.forEach((item, k) => (errors[piece.blobs[k].i] = item.error));
    }
    report.packsRead++;
    if (hash.digest("hex") !== id) fail("pack", id, `pack ${packKey(id)} is damaged: its content no longer matches its name`);
    // Its problems are reported after the name check, which says the most about a damaged pack.
    compareHeader(id, await packHeader(repo, id, size, tail), blobs, fail, report.warnings);
    errors.forEach((error, i) => {
      const hex = blobs[i].id.toString("hex");
      if (!error) report.blobsRead++;
      else fail("blob", hex, `blob ${hex} in pack ${id} is damaged: ${error}`);
    });
    progress.packsDone++;
    progress.bytesDone += packEnd(blobs);
    onProgress?.({ ...progress });
  });
}

/**
 * Buffers for pieces, reused from piece to piece (a codec thread hands each back with its
 * verdict): a new buffer for every piece cost fresh pages (a page fault every 4 KiB) and
 * left the freed ones scattered in the allocator. At most one per pack read at once.
 */
class PieceBuffers {
  private readonly free: Buffer[] = [];

  /** A buffer of at least `n` bytes: PIECE, or more for a piece that holds a larger blob or the header. */
  take(n: number): Buffer {
    const buf = this.free.pop();
    if (buf && buf.length >= n) return buf;
    release(buf);
    return Buffer.allocUnsafeSlow(Math.max(PIECE, Math.ceil(n / (1 << 20)) * (1 << 20)));
  }

  give(buf: Buffer | undefined): void {
    if (buf?.length) this.free.push(buf);
  }
}

/**
 * Verifies one piece's blobs. This thread only reads and hashes the packs, which leaves
 * most of a core idle: it verifies a piece itself whenever the codec threads hold
 * THREAD_DEPTH pieces each, and uses one codec thread fewer than the pool has (on two
 * cores, this thread and one codec thread). A codec thread costs about 14 MiB before it
 * holds any data (its own V8 heap and modules).
 */
function verifyPiece(repo: Repository, req: Omit<OpenBatchRequest, "op">): Promise<OpenBatchResult> {
  return repo.pool.openBatchShared(req, repo.pool.threads - 1, THREAD_DEPTH, true);
}

/**
 * Cuts a pack of `size` bytes into pieces that cover it whole, in order, each cut at
 * the start of a blob so that every blob lies in one piece; a piece grows up to PIECE
 * bytes (or one blob, when a blob is larger). The last piece holds the header.
 */
function* pieces<T extends { b: PackEntry }>(sorted: T[], size: number): Generator<{ start: number; end: number; blobs: T[] }> {
  let start = 0;
  let end = 0;
  let blobs: T[] = [];
  for (const x of sorted) {
    if (blobs.length && x.b.offset >= end && x.b.offset + x.b.length - start > PIECE) {
      yield { start, end: x.b.offset, blobs };
      start = x.b.offset;
      blobs = [];
    }
    blobs.push(x);
    end = Math.max(end, x.b.offset + x.b.length);
  }
  yield { start, end: size, blobs };
}

/** The pack's header: `PackEntry[]`, or the Error reading it met. `tail` is the pack's last bytes, read already. */
async function packHeader(repo: Repository, id: string, size: number, tail: Buffer): Promise<PackEntry[] | Error> {
  try {
    const headerLen = packHeaderLength(tail, size);
    const sealed = headerLen + 4 <= tail.length ? tail.subarray(tail.length - 4 - headerLen, tail.length - 4) : await repo.backend.get(packKey(id), { offset: size - 4 - headerLen, length: headerLen });
    return decodePackHeader(sealed, size - 4 - headerLen, repo.keyFor);
  } catch (err) {
    return err as Error;
  }
}

function compareHeader(id: string, header: PackEntry[] | Error, indexed: PackEntry[], fail: Fail, warnings: string[]): void {
  if (header instanceof Error) {
    fail("pack", id, `pack ${id} has a damaged header: ${header.message}`);
    return;
  }
  const inHeader = new Map(header.map((e) => [e.id.toString("hex"), e]));
  for (const b of indexed) {
    const hex = b.id.toString("hex");
    const h = inHeader.get(hex);
    if (!h) fail("pack", id, `pack ${id} does not list blob ${hex}, which the index places in it`);
    else if (!sameLocation(h, b)) fail("pack", id, `pack ${id} and the index disagree about blob ${hex} (offset, length, type or sizes)`);
    inHeader.delete(hex);
  }
  if (inHeader.size) warnings.push(`pack ${id} holds ${inHeader.size} blob(s) no index names; prune removes them`);
}

/** Where the last indexed blob of a pack ends: the pack is at least this long. */
function packEnd(blobs: PackEntry[]): number {
  return blobs.reduce((end, b) => Math.max(end, b.offset + b.length), 0);
}

function sameLocation(a: Omit<BlobLocation, "pack">, b: Omit<BlobLocation, "pack">): boolean {
  return a.offset === b.offset && a.length === b.length && a.type === b.type && a.compression === b.compression && a.rawLength === b.rawLength;
}

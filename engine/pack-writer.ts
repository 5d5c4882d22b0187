import { randomBytes } from "node:crypto";
import type { Backend } from "../backends/backend.js";
import { BlobType } from "./blob-index.js";
import type { CodecPool } from "./codec-pool.js";
import type { CompressionSpec } from "./compression.js";
import type { CipherName, DataKey } from "./crypto.js";
import { encodeIndex, type IndexFile } from "./index-file.js";
import type { IndexStore } from "./index-store.js";
import { PackBuilder, packKey } from "./pack.js";
import { release } from "./release.js";

/**
 * Data blobs up to SMALL_BLOB bytes are sealed in batches of about BATCH_BYTES on a
 * codec thread: one round trip per blob cost more than the work, so small blobs were
 * sealed on the main thread, which then did all the work of a tree of small files
 * alone while the codec threads idled.
 */
const SMALL_BLOB = 16 * 1024;
const BATCH_BYTES = 256 * 1024;
const INDEX_EVERY_PACKS = 8;
const MAX_SEALING = 8;
/**
 * Bytes of plaintext handed to the codec threads and not yet in a pack. Eight jobs of
 * chunks up to 8 MiB each could hold 64 MiB queued on the threads; a few MiB per
 * thread keeps both busy.
 */
const MAX_SEALING_BYTES = 8 * 1024 * 1024;
const MAX_UPLOADS = 2;
/** Bytes a staged pack (see PackBuilder) may have handed to the backend and not yet written before adding waits. */
const MAX_UNWRITTEN = 4 * 1024 * 1024;

/** What the pack writer works with; the pool and the key change when the data key rotates. */
export interface PackWriterContext {
  backend: Backend;
  index: IndexStore;
  packSize: number;
  cipher: CipherName;
  pool(): CodecPool;
  key(): DataKey;
  /** Stores an encoded index file (encrypted, under `index/`) and returns its id. */
  saveIndex(encoded: Buffer): Promise<string>;
}

/**
 * Groups new blobs into packs: seals them on the codec threads (a bounded number of
 * jobs at once), uploads full packs (a bounded number at once) and writes index
 * files for uploaded packs. The first failure of a background job is kept and
 * thrown by the next saveBlob() or flush().
 */
export class PackWriter {
  /** Compression for data blobs written from now on (trees always use zstd:3). */
  compression: CompressionSpec;
  /** Bytes of pack files written in this session (for stats and tests). */
  packBytesWritten = 0;
  packsWritten = 0;

  private packers: Record<number, PackBuilder | undefined> = {};
  /** Blobs accepted and not yet in an uploaded pack (hex ids). */
  private readonly inFlight = new Set<string>();
  private readonly sealing = new Set<Promise<void>>();
  private sealingBytes = 0;
  private readonly uploads = new Set<Promise<void>>();
  private pendingIndex: IndexFile["packs"] = [];
  private writeError?: unknown;
  /** Small data blobs waiting to be sealed together (see SMALL_BLOB). */
  private batch: { id: Buffer; data: Buffer }[] = [];
  private batchBytes = 0;
  private abandoned = false;

  constructor(
    private readonly ctx: PackWriterContext,
    compression: CompressionSpec,
  ) {
    this.compression = compression;
  }

  /** True while a blob is accepted but not yet in an uploaded pack. */
  isPending(id: Buffer): boolean {
    return this.inFlight.has(id.toString("hex"));
  }

  /** True while sealing or uploading is under way. */
  get busy(): boolean {
    return this.sealing.size > 0 || this.uploads.size > 0;
  }

  /**
   * Takes a blob for this writer: false when the repository has it or it is already on
   * its way into a pack; otherwise it is marked in flight. A failed write is thrown.
   */
  private claim(id: Buffer): boolean {
    if (this.writeError) throw this.writeError;
    const hex = id.toString("hex");
    if (this.ctx.index.isStored(id) || this.inFlight.has(hex)) return false;
    this.inFlight.add(hex);
    return true;
  }

  /**
   * Stores a blob unless the repository already has it. Returns true when the blob
   * was new. `data` must not be modified afterwards (it may be transferred to a worker).
   */
  async saveBlob(type: BlobType, data: Buffer, id: Buffer): Promise<boolean> {
    if (!this.claim(id)) return false;
    if (type === BlobType.data && this.ctx.pool().threads > 0 && data.length <= SMALL_BLOB) {
      this.batch.push({ id, data });
      this.batchBytes += data.length;
      if (this.batchBytes >= BATCH_BYTES) await this.sealBatch();
      return true;
    }
    const rawLength = data.length;
    // Trees are sealed on this thread: they are a small share of the bytes, and a tree
    // of small files would otherwise start the codec threads (tens of MiB of memory)
    // for them alone.
    const tree = type === BlobType.tree;
    await this.track(rawLength, () =>
      this.ctx
        .pool()
        .seal({ data, compression: tree ? { algorithm: "zstd", level: 3 } : this.compression }, true, tree)
        .then((r) => this.addToPack(type, id, r.envelope, r.compression, rawLength, true)),
    );
    return true;
  }

  /**
   * Adds a blob sealed elsewhere (a codec thread that read and hashed it, see
   * read-seal.ts) unless the repository already has it; returns true when it was new.
   * `envelope` is copied into the pack and stays the caller's, never modified.
   */
  async addSealed(id: Buffer, envelope: Buffer, compression: number, rawLength: number): Promise<boolean> {
    if (!this.claim(id)) return false;
    await this.addToPack(BlobType.data, id, envelope, compression, rawLength);
    return true;
  }

  /**
   * Starts a sealing job of `bytes` once fewer than MAX_SEALING are running and their
   * bytes leave room under MAX_SEALING_BYTES (one job always runs), and keeps it in
   * `sealing` until it ends; its failure is kept in writeError (the first one wins).
   */
  private async track(bytes: number, start: () => Promise<void>): Promise<void> {
    while (this.sealing.size >= MAX_SEALING || (this.sealing.size > 0 && this.sealingBytes + bytes > MAX_SEALING_BYTES)) await Promise.race(this.sealing);
    this.sealingBytes += bytes;
    const job: Promise<void> = start()
      .catch((err) => {
        this.writeError ??= err;
      })
      .finally(() => {
        this.sealing.delete(job);
        this.sealingBytes -= bytes;
      });
    this.sealing.add(job);
  }

  /** Hands the waiting small data blobs to a codec thread as one job. */
  private async sealBatch(): Promise<void> {
    const blobs = this.batch;
    if (!blobs.length) return;
    this.batch = [];
    const data = Buffer.allocUnsafeSlow(this.batchBytes);
    this.batchBytes = 0;
    let at = 0;
    for (const b of blobs) at += b.data.copy(data, at);
    await this.track(data.length, () =>
      this.ctx
        .pool()
        .sealBatch({ data, lengths: blobs.map((b) => b.data.length), compression: this.compression })
        .then(async (r) => {
          let off = 0;
          for (const [i, b] of blobs.entries()) {
            await this.addToPack(BlobType.data, b.id, r.envelope.subarray(off, off + r.lengths[i]), r.compressions[i], b.data.length);
            off += r.lengths[i];
          }
          // Every envelope was copied into its pack (not given): the job's buffer is dead.
          release(r.envelope);
        }),
    );
  }

  /** With `given`, the envelope is the pack's from now on (see PackBuilder.add). */
  private async addToPack(type: BlobType, id: Buffer, envelope: Buffer, compression: number, rawLength: number, given = false): Promise<void> {
    const packer = (this.packers[type] ??= this.newPack(type));
    packer.add(envelope, { id, compression, rawLength }, given);
    if (packer.size >= this.ctx.packSize) {
      this.packers[type] = undefined;
      await this.uploadPack(packer);
    } else if (packer.unwritten > MAX_UNWRITTEN) await packer.drained();
  }

  /**
   * A pack written to the backend as it fills where the backend can stage an object
   * (its bytes kept in a directory of packs until the pack is named), else held in memory.
   */
  private newPack(type: BlobType): PackBuilder {
    // Once abandoned (the repository is closing), work that ends late stages nothing more.
    const staged = this.abandoned ? undefined : this.ctx.backend.stage?.(`data/${randomBytes(1).toString("hex")}`);
    return new PackBuilder(type, staged);
  }

  /**
   * Gives up the packs being filled, once the jobs under way have ended (the run failed
   * or was cancelled; after a flush there are none): a staged one is removed from the backend.
   */
  async abandon(): Promise<void> {
    this.abandoned = true;
    // Sealing jobs still running (the run failed beside them) add their blobs to packs when they end.
    while (this.sealing.size || this.uploads.size) await Promise.race([...this.sealing, ...this.uploads]);
    const packers = Object.values(this.packers).filter((p) => p !== undefined);
    this.packers = {};
    await Promise.all(packers.map((p) => p.discard()));
  }

  private async uploadPack(packer: PackBuilder): Promise<void> {
    while (this.uploads.size >= MAX_UPLOADS) await Promise.race(this.uploads);
    const { id, parts, size } = packer.finish(this.ctx.key(), this.ctx.cipher);
    const job: Promise<void> = (async () => {
      await packer.save(this.ctx.backend, packKey(id), parts);
      await packer.discard();
      this.packBytesWritten += size;
      this.packsWritten++;
      this.ctx.index.addPack(id, packer.entries);
      for (const e of packer.entries) this.inFlight.delete(e.id.toString("hex"));
      this.pendingIndex.push({ id, blobs: packer.entries });
      if (this.pendingIndex.length >= INDEX_EVERY_PACKS) await this.writeIndex();
    })()
      .catch((err) => {
        this.writeError ??= err;
      })
      .finally(async () => {
        await packer.discard();
        this.uploads.delete(job);
      });
    this.uploads.add(job);
  }

  private async writeIndex(supersedes: string[] = []): Promise<string | undefined> {
    if (this.pendingIndex.length === 0 && supersedes.length === 0) return undefined;
    const encoded = encodeIndex({ supersedes, packs: this.pendingIndex });
    this.pendingIndex = [];
    const id = await this.ctx.saveIndex(encoded);
    this.ctx.index.addFile(id, supersedes);
    return id;
  }

  /**
   * Writes an index file for the packs uploaded so far (blobs still being packed are
   * not covered), so a backup that dies later does not upload them again: the next
   * run finds their blobs in the index. flush() waits for it as for an upload.
   */
  checkpoint(): Promise<void> {
    const job: Promise<void> = this.writeIndex()
      .then(() => undefined)
      .catch((err) => {
        this.writeError ??= err;
      })
      .finally(() => this.uploads.delete(job));
    this.uploads.add(job);
    return job;
  }

  /**
   * Waits for every pending blob, uploads partial packs and writes the index.
   * `packs` are packs already stored that the new index file lists as well (prune
   * passes every pack it keeps, so one index file supersedes all older ones).
   */
  async flush(options: { supersedes?: string[]; packs?: IndexFile["packs"] } = {}): Promise<string | undefined> {
    await this.sealBatch();
    while (this.sealing.size) await Promise.race(this.sealing);
    for (const type of [BlobType.data, BlobType.tree]) {
      const packer = this.packers[type];
      if (packer && packer.count) {
        this.packers[type] = undefined;
        await this.uploadPack(packer);
      }
    }
    while (this.uploads.size) await Promise.race(this.uploads);
    if (this.writeError) throw this.writeError;
    if (options.packs) this.pendingIndex.push(...options.packs);
    return this.writeIndex(options.supersedes);
  }
}

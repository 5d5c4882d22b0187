import { createHash, type Hash } from "node:crypto";
import type { Backend, StagedObject } from "../backends/backend.js";
import { BlobType } from "./blob-index.js";
import { IntegrityError, open, seal, type CipherName, type DataKey } from "./crypto.js";
import { ownsBuffer, release } from "./release.js";

/** One blob as listed in a pack header. */
export interface PackEntry {
  id: Buffer;
  type: BlobType;
  compression: number;
  offset: number;
  length: number;
  rawLength: number;
}

const HEADER_ENTRY = 42; // type 1, compression 1, length 4, rawLength 4, id 32
/**
 * Envelopes smaller than OWN_PART, and every envelope the pack is not given (see add),
 * are copied into segments of SEGMENT bytes. A small envelope is a slice of Node's
 * shared 8 KiB allocation pool, and keeping it keeps its whole slab alive, with the
 * short-lived buffers that were cut from the same slab (plaintext copies, compressor
 * output): holding a pack of small blobs as their envelopes cost about three times the
 * pack's size.
 */
const SEGMENT = 1024 * 1024;
const OWN_PART = 64 * 1024;

/**
 * Collects encrypted blobs into one pack file:
 * `blob envelopes… | encrypted header | u32 LE length of the encrypted header`.
 * The header lists every blob in order, so a pack can be read without an index.
 *
 * With a staged object (Backend.stage) the pack's bytes go to the backend as they come,
 * a segment or a large envelope at a time, hashed on the way, and are freed once
 * written: a backup no longer holds every pack being filled and stored in memory
 * (16 MiB each: the data pack, the tree pack, and the pack being stored).
 */
export class PackBuilder {
  readonly entries: PackEntry[] = [];
  private parts: Buffer[] = [];
  /** The buffers this pack owns (segments, envelopes it was given), freed by discard(). */
  private held: Buffer[] = [];
  private segment?: Buffer;
  private segmentUsed = 0;
  size = 0;
  /** Staged only: the hash of the bytes handed to the staged object so far (the pack's id at the end). */
  private readonly hash?: Hash;
  /** Staged only: the writes queued, one after the other; never rejects (see failure). */
  private writing: Promise<void> = Promise.resolve();
  private failure?: { error: unknown };
  /** Staged only: bytes handed to the staged object and not yet written. */
  unwritten = 0;

  constructor(
    readonly type: BlobType,
    private readonly staged?: Promise<StagedObject>,
  ) {
    if (staged) {
      this.hash = createHash("sha256");
      // Its failure is met by the first write or by save().
      staged.catch(() => undefined);
    }
  }

  /**
   * Adds an envelope. With `given`, the pack takes it over: it keeps a large one as it
   * is, copies a small one and frees it at once (see release.ts); the caller must not
   * use it again. Otherwise the envelope is copied and stays the caller's.
   */
  add(envelope: Buffer, meta: { id: Buffer; compression: number; rawLength: number }, given = false): PackEntry {
    const entry: PackEntry = { id: meta.id, type: this.type, compression: meta.compression, offset: this.size, length: envelope.length, rawLength: meta.rawLength };
    if (given && envelope.length >= OWN_PART && ownsBuffer(envelope)) {
      this.closeSegment();
      this.emit(envelope, envelope);
    } else {
      if (!this.segment || this.segment.length - this.segmentUsed < envelope.length) {
        this.closeSegment();
        this.segment = Buffer.allocUnsafeSlow(Math.max(SEGMENT, envelope.length));
      }
      this.segmentUsed += envelope.copy(this.segment, this.segmentUsed);
      if (given) release(envelope);
    }
    this.entries.push(entry);
    this.size += entry.length;
    return entry;
  }

  /** Resolves once every byte handed to the staged object so far is written (or failed); at once without one. */
  drained(): Promise<void> {
    return this.writing;
  }

  /**
   * Frees the pack's bytes once it is stored (or given up): the parts finish() returned
   * read as empty afterwards. A staged pack not committed is removed from the backend.
   */
  async discard(): Promise<void> {
    for (const b of this.held) release(b);
    this.held = [];
    this.parts = [];
    if (this.segment) release(this.segment);
    this.segment = undefined;
    if (this.staged) {
      await this.writing;
      await this.staged.then((s) => s.abort(), () => undefined);
    }
  }

  private closeSegment(): void {
    if (this.segment && this.segmentUsed) this.emit(this.segment.subarray(0, this.segmentUsed), this.segment);
    this.segment = undefined;
    this.segmentUsed = 0;
  }

  /** The next bytes of the pack; `owner` (the buffer they lie in) is the pack's and freed once they are stored. */
  private emit(part: Buffer, owner?: Buffer): void {
    if (!this.staged) {
      this.parts.push(part);
      if (owner) this.held.push(owner);
      return;
    }
    this.hash!.update(part);
    const n = part.length;
    this.unwritten += n;
    const staged = this.staged;
    this.writing = this.writing
      .then(async () => {
        if (!this.failure) await (await staged).write(part);
      })
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => {
        this.unwritten -= n;
        if (owner) release(owner);
      });
  }

  get count(): number {
    return this.entries.length;
  }

  /**
   * Finishes the pack: its parts (blobs, encrypted header, header length) to be
   * stored in order, and its id, the SHA-256 of those bytes. The parts are not
   * concatenated: the backend writes them as one object. A staged pack has handed
   * them to its staged object already and returns none.
   */
  finish(key: DataKey, cipher: CipherName): { id: string; parts: Buffer[]; size: number } {
    this.closeSegment();
    const header = Buffer.allocUnsafe(this.entries.length * HEADER_ENTRY);
    this.entries.forEach((e, i) => {
      const at = i * HEADER_ENTRY;
      header[at] = e.type;
      header[at + 1] = e.compression;
      header.writeUInt32LE(e.length, at + 2);
      header.writeUInt32LE(e.rawLength, at + 6);
      e.id.copy(header, at + 10);
    });
    const sealed = seal(header, key, cipher);
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32LE(sealed.length);
    const size = this.size + sealed.length + 4;
    if (this.staged) {
      this.emit(sealed);
      this.emit(len);
      return { id: this.hash!.digest("hex"), parts: [], size };
    }
    const parts = [...this.parts, sealed, len];
    this.parts = [];
    const hash = createHash("sha256");
    for (const p of parts) hash.update(p);
    return { id: hash.digest("hex"), parts, size };
  }

  /** Stores the finished pack (`parts` as finish() returned them) under `key`: a put, or the staged object's commit. */
  async save(backend: Backend, key: string, parts: Buffer[]): Promise<void> {
    if (!this.staged) return backend.put(key, parts);
    await this.writing;
    if (this.failure) throw this.failure.error;
    await (await this.staged).commit(key);
  }
}

/** Reads the header of a whole pack, checking that the entries tile the data exactly. */
export function readPackHeader(pack: Buffer, keyFor: (epoch: number) => Buffer | undefined): PackEntry[] {
  const headerLen = packHeaderLength(pack, pack.length);
  return decodePackHeader(pack.subarray(pack.length - 4 - headerLen, pack.length - 4), pack.length - 4 - headerLen, keyFor);
}

/** The length of a pack's encrypted header, from `tail` (at least the pack's last 4 bytes) of a pack `packLength` bytes long. */
export function packHeaderLength(tail: Buffer, packLength: number): number {
  if (packLength < 4 || tail.length < 4) throw new IntegrityError("pack is truncated");
  const headerLen = tail.readUInt32LE(tail.length - 4);
  if (headerLen + 4 > packLength) throw new IntegrityError("pack header length is out of range");
  return headerLen;
}

/** Opens a pack's encrypted header, which starts at `dataLength` in the pack: its entries must tile the data before it exactly. */
export function decodePackHeader(sealed: Buffer, dataLength: number, keyFor: (epoch: number) => Buffer | undefined): PackEntry[] {
  const header = open(sealed, keyFor);
  if (header.length % HEADER_ENTRY !== 0) throw new IntegrityError("pack header has a partial entry");
  const entries: PackEntry[] = [];
  let offset = 0;
  for (let at = 0; at < header.length; at += HEADER_ENTRY) {
    const type = header[at];
    if (type !== BlobType.data && type !== BlobType.tree) throw new IntegrityError(`pack header names unknown blob type ${type}`);
    const length = header.readUInt32LE(at + 2);
    entries.push({ type: type as BlobType, compression: header[at + 1], length, rawLength: header.readUInt32LE(at + 6), id: Buffer.from(header.subarray(at + 10, at + 42)), offset });
    offset += length;
  }
  if (offset !== dataLength) throw new IntegrityError("pack header does not describe the pack's data exactly");
  return entries;
}

export function packKey(id: string): string {
  return `data/${id.slice(0, 2)}/${id}`;
}

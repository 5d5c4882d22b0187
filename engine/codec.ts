import { createSecretKey, type KeyObject } from "node:crypto";
import { decompressBlob, Scratch, type CompressionSpec } from "./compression.js";
import { blobId, IntegrityError, open, seal, sha256Hex, type CipherName } from "./crypto.js";
import { joinReleasing, release } from "./release.js";
import { readSeal, type ReadSealRequest, type ReadSealResult } from "./read-seal.js";
import { restoreRange, type RestoreRangeRequest, type RestoreRangeResult } from "./restore-writer.js";

/** Key material a codec needs; sent once to each worker thread. */
export interface CodecKeys {
  idKey: Buffer;
  dataKeys: { epoch: number; key: Buffer }[];
  epoch: number;
  cipher: CipherName;
}

export interface SealRequest {
  op: "seal";
  data: Uint8Array;
  compression: CompressionSpec;
}

export interface SealResult {
  envelope: Buffer;
  compression: number;
}

export interface OpenRequest {
  op: "open";
  envelope: Uint8Array;
  compression: number;
  /** When given, the plaintext must hash (keyed) to this id. */
  expectId?: Uint8Array;
  /** Return only a verdict, not the plaintext (saves copying during check). */
  verifyOnly?: boolean;
  /**
   * The plaintext may lie in the codec's scratch buffer (see Scratch): the caller uses it
   * before the next open on this codec and never keeps it. Only on the thread that runs the job.
   */
  transient?: boolean;
}

export interface OpenResult {
  data?: Buffer;
}

/** Opens many blobs that sit in one buffer (a pack, or a range of one) in a single job. */
export interface OpenBatchRequest {
  op: "openBatch";
  buffer: Uint8Array;
  items: { offset: number; length: number; compression: number; expectId: Uint8Array }[];
  /** The bytes of `buffer` in use, when fewer than its length (a reused buffer). */
  used?: number;
  /** Hand `buffer` back in the result (moved back from a codec thread), for the caller to reuse. */
  giveBack?: boolean;
  verifyOnly?: boolean;
  /** Also return the SHA-256 of the whole buffer (a pack's name). */
  hash?: boolean;
}

export interface OpenBatchResult {
  items: { data?: Buffer; error?: string }[];
  sha256?: string;
  /** The request's buffer, with `giveBack`. */
  buffer?: Buffer;
}

/** Seals many small blobs laid end to end in `data` (the i-th is `lengths[i]` bytes) in a single job. */
export interface SealBatchRequest {
  op: "sealBatch";
  data: Uint8Array;
  lengths: number[];
  compression: CompressionSpec;
}

/** The envelopes end to end in `envelope`, the i-th `lengths[i]` bytes with compression `compressions[i]`. */
export interface SealBatchResult {
  envelope: Buffer;
  lengths: number[];
  compressions: number[];
}

export type CodecRequest = SealRequest | SealBatchRequest | OpenRequest | OpenBatchRequest | RestoreRangeRequest | ReadSealRequest;

/** Compress-then-encrypt and decrypt-then-decompress for blobs: the CPU-heavy part of every job. */
export class Codec {
  private readonly keys: Map<number, Buffer>;
  private readonly idKey: Buffer;
  /**
   * The keys as KeyObjects for open(): a cipher or HMAC made from a Buffer imports its key
   * every time, which on blobs of a few KiB costs about as much as the work itself.
   */
  private readonly openKeys: Map<number, KeyObject>;
  private readonly idKeyObject: KeyObject;
  private readonly scratch = new Scratch();

  constructor(private readonly material: CodecKeys) {
    this.keys = new Map(material.dataKeys.map((k) => [k.epoch, Buffer.from(k.key)]));
    this.idKey = Buffer.from(material.idKey);
    this.openKeys = new Map([...this.keys].map(([epoch, key]) => [epoch, createSecretKey(key)]));
    this.idKeyObject = createSecretKey(this.idKey);
  }

  seal(req: SealRequest): SealResult {
    const key = this.keys.get(this.material.epoch)!;
    return this.scratch.compress(req.data, req.compression, (id, data) => ({
      envelope: seal(data, { epoch: this.material.epoch, key }, this.material.cipher),
      compression: id,
    }));
  }

  open(req: OpenRequest): OpenResult {
    const sealed = open(req.envelope, (e) => this.openKeys.get(e));
    const plain = req.transient || req.verifyOnly ? this.scratch.decompress(req.compression, sealed) : decompressBlob(req.compression, sealed);
    // The decrypted envelope is dead once decompressed (or, when the plaintext is the envelope
    // itself, once verified): freed now, not at the next collection (see release.ts). Every blob
    // a check or restore opened left one behind, up to 8 MiB each, and fresh pages for the next.
    const aliased = plain.buffer === sealed.buffer;
    if (!aliased) release(sealed);
    if (req.expectId) {
      const got = blobId(this.idKeyObject, plain);
      if (!got.equals(Buffer.from(req.expectId.buffer, req.expectId.byteOffset, req.expectId.byteLength))) {
        throw new IntegrityError(`blob content does not match its id ${Buffer.from(req.expectId).toString("hex").slice(0, 16)}`);
      }
    }
    if (!req.verifyOnly) return { data: plain };
    if (aliased) release(sealed);
    return {};
  }

  openBatch(req: OpenBatchRequest): OpenBatchResult {
    const buf = Buffer.from(req.buffer.buffer, req.buffer.byteOffset, Math.min(req.used ?? Infinity, req.buffer.byteLength));
    const items = req.items.map((it) => {
      try {
        if (it.offset + it.length > buf.length) throw new IntegrityError("the blob lies beyond the end of the pack");
        const envelope = buf.subarray(it.offset, it.offset + it.length);
        return this.open({ op: "open", envelope, compression: it.compression, expectId: it.expectId, verifyOnly: req.verifyOnly });
      } catch (err) {
        return { error: (err as Error).message };
      }
    });
    const result: OpenBatchResult = req.hash ? { items, sha256: sha256Hex(buf) } : { items };
    if (req.giveBack) result.buffer = Buffer.from(req.buffer.buffer, req.buffer.byteOffset, req.buffer.byteLength);
    return result;
  }

  sealBatch(req: SealBatchRequest): SealBatchResult {
    const data = Buffer.from(req.data.buffer, req.data.byteOffset, req.data.byteLength);
    const envelopes: Buffer[] = [];
    const compressions: number[] = [];
    let at = 0;
    for (const length of req.lengths) {
      const r = this.seal({ op: "seal", data: data.subarray(at, at + length), compression: req.compression });
      envelopes.push(r.envelope);
      compressions.push(r.compression);
      at += length;
    }
    const lengths = envelopes.map((e) => e.length);
    return { envelope: joinReleasing(envelopes, lengths), lengths, compressions };
  }

  run(req: CodecRequest): SealResult | SealBatchResult | OpenResult | OpenBatchResult | RestoreRangeResult | ReadSealResult {
    switch (req.op) {
      case "seal":
        return this.seal(req);
      case "sealBatch":
        return this.sealBatch(req);
      case "open":
        return this.open(req);
      case "openBatch":
        return this.openBatch(req);
      case "restoreRange":
        return restoreRange(this, req);
      case "readSeal":
        return readSeal(this, this.idKey, req);
    }
  }
}

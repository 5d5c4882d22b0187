import { createHash } from "node:crypto";

/** Content-defined chunking parameters, stored in the repository config. */
export interface ChunkerParams {
  minSize: number;
  avgSize: number;
  maxSize: number;
  /** Hex seed for the gear table: keyed per repository, so cut points reveal nothing across repositories. */
  seed: string;
}

export const DEFAULT_CHUNK_SIZES = { minSize: 512 * 1024, avgSize: 1024 * 1024, maxSize: 8 * 1024 * 1024 };

/**
 * FastCDC-style chunker with normalized chunking: a gear rolling hash over a
 * 32-byte window, a stricter mask before the average size and a looser one after,
 * so chunk sizes cluster around the average. Cut points depend only on nearby
 * content, so an insertion changes only the chunks around it.
 */
export class Chunker {
  private readonly gear = new Int32Array(256);
  private readonly maskStrict: number;
  private readonly maskLoose: number;
  readonly minSize: number;
  readonly avgSize: number;
  readonly maxSize: number;

  constructor(params: ChunkerParams) {
    const { minSize, avgSize, maxSize } = params;
    if (!(minSize > 0 && minSize < avgSize && avgSize < maxSize)) {
      throw new Error(`chunker sizes must satisfy 0 < min < avg < max, got ${minSize}/${avgSize}/${maxSize}`);
    }
    this.minSize = minSize;
    this.avgSize = avgSize;
    this.maxSize = maxSize;
    const seed = Buffer.from(params.seed, "hex");
    for (let i = 0; i < 256; i++) {
      this.gear[i] = createHash("sha256").update(seed).update(Uint8Array.of(i)).digest().readInt32LE(0);
    }
    const bits = Math.round(Math.log2(avgSize));
    // Masks over the high bits: in a gear hash, bit k depends on the last k+1 bytes.
    this.maskStrict = topBits(bits + 2);
    this.maskLoose = topBits(bits - 2);
  }

  /**
   * Returns the end (exclusive) of the chunk starting at `start`, looking at
   * `data[start, end)`, as soon as the bytes up to it are there: a reader need not hold
   * maxSize bytes ahead of every chunk (one of 1 MiB on average). Returns -1 when those
   * bytes hold no cut point and `eof` is false: the caller must supply more bytes first.
   * `scan` then keeps where the search stopped, so the next call, with more bytes, goes
   * on from there; the cut point is the same however the bytes came. Give a fresh
   * `{ at: 0, h: 0 }` for each chunk.
   */
  cut(data: Uint8Array, start: number, end: number, eof: boolean, scan: ChunkScan): number {
    if (end - start <= this.minSize) return eof ? end : -1;
    const gear = this.gear;
    const limit = start + this.maxSize;
    const stop = Math.min(end, limit);
    const normal = Math.min(stop, start + this.avgSize);
    let h = scan.h;
    let i = start + Math.max(this.minSize, scan.at);
    const ms = this.maskStrict;
    for (; i < normal; i++) {
      h = ((h << 1) + gear[data[i]]) | 0;
      if ((h & ms) === 0) return i + 1;
    }
    const ml = this.maskLoose;
    for (; i < stop; i++) {
      h = ((h << 1) + gear[data[i]]) | 0;
      if ((h & ml) === 0) return i + 1;
    }
    if (stop === limit || eof) return stop;
    scan.at = i - start;
    scan.h = h;
    return -1;
  }
}

/** Where a cut-point search stopped: offset from the chunk's start, and the rolling hash there. */
export interface ChunkScan {
  at: number;
  h: number;
}

function topBits(n: number): number {
  return n >= 32 ? -1 : ((((1 << n) - 1) << (32 - n)) | 0);
}

import { brotliCompressSync, brotliDecompressSync, constants as zc, gunzipSync, gzipSync } from "node:zlib";
import { createRequire } from "node:module";
import { compress as zstdCompress, decompress as zstdDecompress } from "zstd-napi";
import type * as ZstdBinding from "zstd-napi/binding.js";

/** zstd-napi's native binding (a CommonJS module): decompression into a buffer the caller owns. */
const zstdBinding = createRequire(import.meta.url)("zstd-napi/binding.js") as typeof ZstdBinding;

/** Compression ids as stored in pack headers and index files. */
export const Compression = { none: 0, zstd: 1, gzip: 2, brotli: 3 } as const;
export type CompressionId = (typeof Compression)[keyof typeof Compression];

/** A compression choice: algorithm and level ("zstd:3", "gzip:6", "brotli:4", "none"). */
export interface CompressionSpec {
  algorithm: keyof typeof Compression;
  level: number;
}

export const DEFAULT_COMPRESSION: CompressionSpec = { algorithm: "zstd", level: 3 };

const LEVELS: Record<CompressionSpec["algorithm"], [number, number, number]> = {
  none: [0, 0, 0],
  zstd: [1, 19, 3],
  gzip: [1, 9, 6],
  brotli: [0, 11, 4],
};

/** Parses "zstd", "zstd:3", "gzip:9", "brotli", "none"; throws with a usable message otherwise. */
export function parseCompression(text: string): CompressionSpec {
  const [name, levelText] = text.trim().toLowerCase().split(":");
  if (!(name in LEVELS)) {
    throw new Error(`unknown compression ${JSON.stringify(text)}: use zstd[:1-19], gzip[:1-9], brotli[:0-11] or none`);
  }
  const algorithm = name as CompressionSpec["algorithm"];
  const [min, max, def] = LEVELS[algorithm];
  const level = levelText === undefined ? def : Number(levelText);
  if (!Number.isInteger(level) || level < min || level > max) {
    throw new Error(`compression level for ${algorithm} must be a whole number from ${min} to ${max}, got ${levelText}`);
  }
  return { algorithm, level };
}

export function formatCompression(spec: CompressionSpec): string {
  return spec.algorithm === "none" ? "none" : `${spec.algorithm}:${spec.level}`;
}

/** Blobs shorter than this are stored as they are. */
const MIN_INPUT = 64;

/** Whether `compressed` bytes save enough of `raw` (a 32nd) to store the blob compressed rather than as it is. */
function saves(compressed: number, raw: number): boolean {
  return compressed <= raw - (raw >> 5);
}

/**
 * Compresses `data`; returns it unchanged with id `none` when compression does not
 * save at least 1/32 of the size (incompressible chunks are stored raw).
 */
export function compressBlob(data: Uint8Array, spec: CompressionSpec): { id: CompressionId; data: Uint8Array } {
  if (spec.algorithm === "none" || data.byteLength < MIN_INPUT) return { id: Compression.none, data };
  let out: Uint8Array;
  switch (spec.algorithm) {
    case "zstd":
      out = zstdCompress(data, { compressionLevel: spec.level });
      break;
    case "gzip":
      out = gzipSync(data, { level: spec.level });
      break;
    case "brotli":
      out = brotliCompressSync(data, { params: { [zc.BROTLI_PARAM_QUALITY]: spec.level, [zc.BROTLI_PARAM_SIZE_HINT]: data.byteLength } });
      break;
  }
  if (!saves(out.byteLength, data.byteLength)) return { id: Compression.none, data };
  return { id: Compression[spec.algorithm], data: out };
}

export function decompressBlob(id: number, data: Uint8Array): Buffer {
  switch (id) {
    case Compression.none:
      return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    case Compression.zstd:
      return zstdDecompress(data);
    case Compression.gzip:
      return gunzipSync(data);
    case Compression.brotli:
      return brotliDecompressSync(data);
    default:
      throw new Error(`unknown compression id ${id}`);
  }
}

/**
 * A buffer reused for plaintexts that are consumed at once (written to a file, or only
 * verified): each blob decompressed into a fresh buffer is garbage that V8 frees only
 * at its next collection, which external memory triggers late, so a thread opening
 * blobs at a high rate held tens of MiB of dead plaintexts and paid a page fault for
 * every 4 KiB of each new one.
 */
export class Scratch {
  private buf: Buffer = Buffer.alloc(0);
  /** Compressed output (see compress), apart from `buf`, so a plaintext decompressed into `buf` outlives a compression. */
  private cbuf: Buffer = Buffer.alloc(0);
  private readonly dctx = new zstdBinding.DCtx();
  private cctx?: InstanceType<typeof zstdBinding.CCtx>;

  /** A buffer of at least `n` bytes; its content is the caller's until the next call. */
  private take(n: number): Buffer {
    return (this.buf = grown(this.buf, n));
  }

  /**
   * Compresses like compressBlob and hands the result to `use`, which must not keep it:
   * zstd writes into this scratch buffer. zstd-napi's compress() allocates a buffer of
   * the input's size for every blob and copies the result out of it, and those dead
   * buffers were most of a codec thread's memory during a backup.
   */
  compress<T>(data: Uint8Array, spec: CompressionSpec, use: (id: CompressionId, bytes: Uint8Array) => T): T {
    if (spec.algorithm !== "zstd" || data.byteLength < MIN_INPUT) {
      const r = compressBlob(data, spec);
      return use(r.id, r.data);
    }
    const out = (this.cbuf = grown(this.cbuf, zstdBinding.compressBound(data.byteLength)));
    const n = (this.cctx ??= new zstdBinding.CCtx()).compress(out, data, spec.level);
    if (!saves(n, data.byteLength)) return use(Compression.none, data);
    return use(Compression.zstd, out.subarray(0, n));
  }

  /**
   * Decompresses like decompressBlob, but a zstd frame that records its size (every
   * frame Cairn writes) lands in this scratch buffer: the result is valid until the
   * next call. Other compressions, and unencrypted "none", return what decompressBlob does.
   */
  decompress(id: number, data: Uint8Array): Buffer {
    if (id !== Compression.zstd) return decompressBlob(id, data);
    const size = zstdBinding.getFrameContentSize(data);
    if (size === null || size > 64 << 20) return decompressBlob(id, data);
    const out = this.take(size);
    const n = this.dctx.decompress(out, data);
    if (n !== size) throw new Error(`zstd frame holds ${n} bytes, its header says ${size}`);
    return out.subarray(0, n);
  }
}

/** `buf`, or a new buffer when it is shorter than `n`: grown in steps of 1 MiB, so a thread ends near its largest blob (8 MiB at most with the default chunker). */
function grown(buf: Buffer, n: number): Buffer {
  return buf.length >= n ? buf : Buffer.allocUnsafeSlow(Math.ceil(n / (1 << 20)) * (1 << 20));
}

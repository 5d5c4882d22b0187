import { closeSync, readSync } from "node:fs";
import type { Codec } from "./codec.js";
import type { CompressionSpec } from "./compression.js";
import { blobId } from "./crypto.js";
import { joinReleasing } from "./release.js";

/**
 * Small files a backup has opened (and judged, see BackupOptions.refuse) on the main
 * thread: a codec thread reads each whole from its descriptor, closes it, hashes the
 * bytes and seals them, so the main thread of a backup of many small files only walks,
 * stats and opens, and the reads, hashes and seals of many files run on every core.
 * Each descriptor is closed by the job, whatever happens to it.
 */
export interface ReadSealRequest {
  op: "readSeal";
  fds: number[];
  /** A file with more bytes than this is not sealed: it is reported as grown (size -1), to be read the ordinary way. */
  limit: number;
  compression: CompressionSpec;
}

/**
 * Per file, in request order: `sizes[i]` bytes read (-1: grew past the limit, -2: could
 * not be read, `errors[i]` says why). A file of one byte or more has its keyed id at
 * `ids[32i, 32i+32)` and its envelope of `lengths[i]` bytes next in `envelope`, with
 * compression `compressions[i]`. An empty file has no blob (length 0).
 */
export interface ReadSealResult {
  sizes: number[];
  ids: Buffer;
  envelope: Buffer;
  lengths: number[];
  compressions: number[];
  errors: (string | null)[];
}

export const GREW = -1;
export const UNREADABLE = -2;
const ID_BYTES = 32;

let scratch: Buffer | undefined;

/** Runs a ReadSealRequest on `codec`'s thread (see ReadSealRequest). */
export function readSeal(codec: Codec, idKey: Buffer, req: ReadSealRequest): ReadSealResult {
  if (!scratch || scratch.length < req.limit + 1) scratch = Buffer.allocUnsafeSlow(req.limit + 1);
  const buf = scratch;
  const n = req.fds.length;
  const sizes: number[] = [];
  const errors: (string | null)[] = [];
  const ids = Buffer.allocUnsafeSlow(n * ID_BYTES);
  const envelopes: Buffer[] = [];
  const lengths: number[] = [];
  const compressions: number[] = [];
  let i = 0;
  try {
    for (; i < n; i++) readOne(i);
  } catch (err) {
    // Sealing failed (a bug, not a file): the descriptors not reached yet are still open.
    closeAll(req.fds.slice(i + 1));
    throw err;
  }
  function readOne(i: number): void {
    const fd = req.fds[i];
    let got = 0;
    let error: string | null = null;
    try {
      for (;;) {
        const r = readSync(fd, buf, got, req.limit + 1 - got, null);
        if (r === 0) break;
        got += r;
        if (got > req.limit) break;
      }
    } catch (err) {
      error = (err as Error).message;
    } finally {
      try {
        closeSync(fd);
      } catch {
        // Closing a descriptor only read from cannot lose data.
      }
    }
    const size = error ? UNREADABLE : got > req.limit ? GREW : got;
    sizes.push(size);
    errors.push(error);
    if (size <= 0) {
      lengths.push(0);
      compressions.push(0);
      return;
    }
    const data = buf.subarray(0, size);
    blobId(idKey, data).copy(ids, i * ID_BYTES);
    const sealed = codec.seal({ op: "seal", data, compression: req.compression });
    envelopes.push(sealed.envelope);
    lengths.push(sealed.envelope.length);
    compressions.push(sealed.compression);
  }
  return { sizes, ids, envelope: joinReleasing(envelopes, lengths), lengths, compressions, errors };
}

/** Closes the descriptors of a job that will not run (the codec threads are stopping). */
export function closeAll(fds: number[]): void {
  for (const fd of fds) {
    try {
      closeSync(fd);
    } catch {
      // already closed or never valid: nothing to release
    }
  }
}

import { closeSync, constants, fchmodSync, fchownSync, futimesSync, readlinkSync, writeSync } from "node:fs";
import * as path from "node:path";
import type { Codec } from "./codec.js";
import { openPatientlySync } from "./descriptors.js";

/**
 * One read range of a pack, with the files its blobs go into: a codec thread opens
 * each blob and writes it straight into its files, so restored bytes never travel
 * back to the main thread and a file whose blobs all lie in the range is finished
 * (metadata set, closed) by the same thread, in the same job.
 */
export interface RestoreRangeRequest {
  op: "restoreRange";
  buffer: Uint8Array;
  /**
   * `targets`: pairs of file number and offset in that file. `pieces`, when given:
   * pairs of offset in the blob and length, one per target (a page-mapped file takes
   * a stretch of a blob); without it every target gets the whole blob.
   */
  blobs: { offset: number; length: number; compression: number; expectId: Uint8Array; targets: number[]; pieces?: number[] }[];
  /** Files written by this job. `writes` is how many of the targets are theirs; `meta` is given when this job completes the file. */
  files: { path: string; writes: number; meta?: FileMeta }[];
  /** The target with its links resolved: every file opened must lie inside it. */
  root: string;
}

export interface FileMeta {
  mode: number;
  /** Set when the restore gives files their owners. */
  uid?: number;
  gid?: number;
  /** Seconds, as fs.futimes takes them. */
  mtime: number;
}

/** A restore job stops at its first failure and says which blob or file it was. */
export type RestoreRangeFailure =
  | { kind: "blob"; blob: number; message: string }
  | { kind: "file"; file: number; message: string; code?: string }
  | { kind: "outside"; file: number; real: string };

export interface RestoreRangeResult {
  bytesWritten: number;
  /** Files this job finished (the ones with `meta`), before any failure. */
  filesFinished: number;
  warnings: string[];
  failure?: RestoreRangeFailure;
}

/** Files one job keeps open at once; more (blobs shared by many files in odd orders) are closed and reopened. */
const OPEN_PER_JOB = 8;

/**
 * Blobs are taken in pack order and each is dropped once written, so a job holds its
 * range and one opened blob. Files are opened with O_NOFOLLOW and checked through
 * /proc/self/fd to lie inside the target (a directory on the way swapped for a link
 * would lead elsewhere); metadata is set through the same handle.
 */
export function restoreRange(codec: Codec, req: RestoreRangeRequest): RestoreRangeResult {
  const buf = Buffer.from(req.buffer.buffer, req.buffer.byteOffset, req.buffer.byteLength);
  const result: RestoreRangeResult = { bytesWritten: 0, filesFinished: 0, warnings: [] };
  const left = req.files.map((f) => f.writes);
  const open = new Map<number, number>();
  let fileAt = -1;
  const closeAll = () => {
    for (const fd of open.values()) closeSync(fd);
    open.clear();
  };
  try {
    for (const [bi, blob] of req.blobs.entries()) {
      let data: Buffer;
      try {
        if (blob.offset + blob.length > buf.length) throw new Error("the blob lies beyond the end of the range read");
        data = codec.open({ op: "open", envelope: buf.subarray(blob.offset, blob.offset + blob.length), compression: blob.compression, expectId: blob.expectId, transient: true }).data!;
      } catch (err) {
        result.failure = { kind: "blob", blob: bi, message: (err as Error).message };
        return result;
      }
      for (let t = 0; t < blob.targets.length; t += 2) {
        const fi = (fileAt = blob.targets[t]);
        const file = req.files[fi];
        let fd = open.get(fi);
        if (fd === undefined) {
          if (open.size >= OPEN_PER_JOB) closeAll();
          fd = openPatientlySync(file.path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
          open.set(fi, fd);
          const real = realOf(fd);
          if (real !== undefined && real !== req.root && !real.startsWith(req.root + path.sep)) {
            result.failure = { kind: "outside", file: fi, real };
            return result;
          }
        }
        const position = blob.targets[t + 1];
        const from = blob.pieces ? blob.pieces[t] : 0;
        const end = blob.pieces ? from + blob.pieces[t + 1] : data.length;
        if (end > data.length) {
          result.failure = { kind: "blob", blob: bi, message: `it holds ${data.length} bytes, but a page map needs bytes up to ${end} of it` };
          return result;
        }
        let done = from;
        while (done < end) done += writeSync(fd, data, done, end - done, position + done - from);
        result.bytesWritten += end - from;
        if (--left[fi] > 0) continue;
        open.delete(fi);
        try {
          if (file.meta) {
            setMeta(fd, file.path, file.meta, result.warnings);
            result.filesFinished++;
          }
        } finally {
          closeSync(fd);
        }
      }
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    result.failure = { kind: "file", file: fileAt, message: e.message, code: e.code };
  } finally {
    closeAll();
  }
  return result;
}

/** Where an open descriptor leads; undefined where /proc is missing (not Linux), where the O_NOFOLLOW opens stand alone. */
function realOf(fd: number): string | undefined {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/** Owner, then mode (a chown clears setuid bits), then times; a failure is a warning, as on the main thread. */
function setMeta(fd: number, dest: string, meta: FileMeta, warnings: string[]): void {
  try {
    if (meta.uid !== undefined && meta.gid !== undefined) fchownSync(fd, meta.uid, meta.gid);
    fchmodSync(fd, meta.mode);
    futimesSync(fd, meta.mtime, meta.mtime);
  } catch (err) {
    warnings.push(`${dest}: could not set metadata (${(err as Error).message})`);
  }
}

import { IntegrityError } from "./crypto.js";
import { CairnError } from "./errors.js";
import { packKey } from "./pack.js";
import type { Piece } from "./pagemap.js";
import { cannotRestore, type FileJob, type RestoreContext } from "./restore-context.js";
import type { MetaSetter } from "./restore-meta.js";
import type { RestoreRangeRequest } from "./restore-writer.js";
import type { Repository } from "./repository.js";

/** Read ranges: gaps up to MAX_GAP between needed blobs are read through; a range stops growing at MAX_RANGE (bounds the bytes in flight). */
const MAX_GAP = 1 << 20;
const MAX_RANGE = 4 << 20;

/** A blob to restore: where it lies and which files (at which offsets) get it. */
interface PlannedBlob {
  loc: { id: string; offset: number; length: number; rawLength: number; compression: number };
  targets: { job: FileJob; piece: Piece }[];
}

/** Bytes `start` to `end` of one pack, read at once, and the blobs in them. */
export interface PackRange {
  packId: string;
  start: number;
  end: number;
  blobs: PlannedBlob[];
}

/**
 * Pack scheduling: every blob the files of a batch need, grouped by pack and sorted by
 * offset into read ranges, so each pack is read once, in order, and a blob several
 * files share is read and opened once. `ready[i]` says whether files[i] is written at all.
 */
export function planRanges(repo: Repository, files: readonly FileJob[], ready: readonly boolean[]): PackRange[] {
  const byPack = new Map<string, Map<string, PlannedBlob>>();
  for (const [i, job] of files.entries()) {
    if (!ready[i]) continue;
    for (const w of job.writes) {
      const loc = repo.lookup(Buffer.from(w.id, "hex"))!;
      let blobs = byPack.get(loc.packId);
      if (!blobs) byPack.set(loc.packId, (blobs = new Map()));
      let b = blobs.get(w.id);
      if (!b) blobs.set(w.id, (b = { loc: { id: w.id, offset: loc.offset, length: loc.length, rawLength: loc.rawLength, compression: loc.compression }, targets: [] }));
      b.targets.push({ job, piece: w });
    }
  }
  const out: PackRange[] = [];
  for (const [packId, blobs] of byPack) {
    const sorted = [...blobs.values()].sort((a, b) => a.loc.offset - b.loc.offset);
    for (const r of coalesce(sorted, MAX_GAP, MAX_RANGE)) out.push({ ...r, packId });
  }
  return out;
}

/** Groups blobs sorted by offset into read ranges, bridging small gaps so one read serves many blobs. */
function coalesce<B extends { loc: { offset: number; length: number } }>(blobs: B[], maxGap: number, maxRange: number): { start: number; end: number; blobs: B[] }[] {
  const out: { start: number; end: number; blobs: B[] }[] = [];
  for (const b of blobs) {
    const last = out[out.length - 1];
    const end = b.loc.offset + b.loc.length;
    if (last && b.loc.offset - last.end <= maxGap && end - last.start <= maxRange) {
      last.end = Math.max(last.end, end);
      last.blobs.push(b);
    } else out.push({ start: b.loc.offset, end, blobs: [b] });
  }
  return out;
}

/**
 * Reads one range and hands it to a codec thread, which opens its blobs and writes
 * them into their files (restore-writer.ts); a file whose last blobs were in this
 * range is finished there too, or here (`finish`) when its blobs were spread over
 * ranges in flight at once.
 */
export async function restoreRange(ctx: RestoreContext, meta: MetaSetter, range: PackRange, finish: (job: FileJob) => Promise<void>): Promise<void> {
  const files: RestoreRangeRequest["files"] = [];
  const jobs: FileJob[] = [];
  const fileNo = new Map<FileJob, number>();
  const blobs = range.blobs.map((b) => {
    const targets: number[] = [];
    // A page-mapped file takes a stretch of the blob; `pieces` says which, for every target.
    const whole = b.targets.every((t) => t.piece.from === 0 && t.piece.length === b.loc.rawLength);
    const pieces: number[] = [];
    for (const t of b.targets) {
      let fi = fileNo.get(t.job);
      if (fi === undefined) {
        fileNo.set(t.job, (fi = files.length));
        files.push({ path: t.job.dest, writes: 0 });
        jobs.push(t.job);
      }
      files[fi].writes++;
      targets.push(fi, t.piece.offset);
      pieces.push(t.piece.from, t.piece.length);
    }
    return { offset: b.loc.offset - range.start, length: b.loc.length, compression: b.loc.compression, expectId: Buffer.from(b.loc.id, "hex"), targets, ...(whole ? {} : { pieces }) };
  });
  for (const [fi, f] of files.entries()) if (f.writes === jobs[fi].remaining) f.meta = meta.metaOf(jobs[fi].node);
  const bytes = await ctx.repo.backend.get(packKey(range.packId), { offset: range.start, length: range.end - range.start });
  const res = await ctx.repo.pool.restoreRange({ buffer: bytes, blobs, files, root: ctx.realRoot }, true);
  ctx.result.bytesWritten += res.bytesWritten;
  ctx.progress.bytesDone += res.bytesWritten;
  ctx.result.warnings.push(...res.warnings);
  const failure = res.failure;
  if (failure?.kind === "blob") {
    const dest = jobs[blobs[failure.blob].targets[0]].dest;
    throw new IntegrityError(`pack ${range.packId} is damaged (${failure.message}); ${dest} cannot be restored from it`);
  }
  if (failure?.kind === "outside") {
    throw new CairnError(`refusing to write ${jobs[failure.file].dest}: it leads to ${failure.real}, outside the target (was a directory on the way replaced by a link?)`);
  }
  if (failure?.kind === "file") {
    const dest = failure.file >= 0 ? jobs[failure.file].dest : ctx.root;
    throw cannotRestore(dest, Object.assign(new Error(failure.message), { code: failure.code }));
  }
  for (const [fi, f] of files.entries()) {
    const job = jobs[fi];
    job.remaining -= f.writes;
    if (f.meta) ctx.progress.filesDone++;
    else if (job.remaining === 0) await finish(job);
  }
}

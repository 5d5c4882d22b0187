import { constants, type Stats } from "node:fs";
import { blobId } from "./crypto.js";
import { openPatiently } from "./descriptors.js";
import { filePieces, pageHash, PAGE_HASH_BYTES, type Piece } from "./pagemap.js";
import { lstatOrUndefined, type FileJob, type RestoreContext } from "./restore-context.js";
import type { Repository } from "./repository.js";

/**
 * Pieces whose bytes differ between the target file and the snapshot (delta restore,
 * and verify after restore): a whole blob is compared by its keyed id, a page-mapped
 * file page by page with the hashes its page map keeps.
 */
export async function changedPieces(repo: Repository, job: Pick<FileJob, "dest" | "node" | "writes">, st: Stats): Promise<Piece[]> {
  const changed: Piece[] = [];
  const pages = job.node.pages;
  const hashes = pages && Buffer.from(pages.hashes, "base64");
  const h = await openPatiently(job.dest, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    for (const w of job.writes) {
      if (w.offset + w.length > st.size) {
        changed.push(w);
        continue;
      }
      const buf = Buffer.allocUnsafe(w.length);
      const { bytesRead } = await h.read(buf, 0, w.length, w.offset);
      if (bytesRead !== w.length) changed.push(w);
      else if (pages && hashes) {
        for (let at = 0; at < w.length; at += pages.size) {
          const i = (w.offset + at) / pages.size;
          const want = hashes.subarray(i * PAGE_HASH_BYTES, (i + 1) * PAGE_HASH_BYTES);
          if (!pageHash(repo.idKey, buf.subarray(at, Math.min(w.length, at + pages.size))).equals(want)) {
            changed.push(w);
            break;
          }
        }
      } else if (!blobId(repo.idKey, buf).equals(repo.lookup(Buffer.from(w.id, "hex"))!.id)) changed.push(w);
    }
  } finally {
    await h.close();
  }
  return changed;
}

/** Reads back every file of a batch and records in the result each one that is missing, has the wrong size or differs from the snapshot. */
export async function verifyRestored(ctx: RestoreContext, files: readonly FileJob[]): Promise<void> {
  for (const job of files) {
    const st = await lstatOrUndefined(job.dest);
    if (!st?.isFile()) {
      if (ctx.options.overwrite !== "never") ctx.result.verifyErrors.push(`${job.dest}: missing after restore`);
      continue;
    }
    if (st.size !== (job.node.size ?? 0)) {
      ctx.result.verifyErrors.push(`${job.dest}: size ${st.size}, expected ${job.node.size}`);
      continue;
    }
    const bad = await changedPieces(ctx.repo, { ...job, writes: filePieces(job.node, (id) => ctx.rawLength(id)) }, st);
    if (bad.length) ctx.result.verifyErrors.push(`${job.dest}: ${bad.length} chunk(s) differ from the snapshot`);
  }
}

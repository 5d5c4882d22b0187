import { mapLimit } from "./concurrency.js";
import { cannotRestore, RestoreContext, type FileJob, type RestoreOptions, type RestoreResult } from "./restore-context.js";
import { MetaSetter } from "./restore-meta.js";
import { planRanges, restoreRange } from "./restore-packs.js";
import { RestoreTarget } from "./restore-target.js";
import { verifyRestored } from "./restore-verify.js";
import { RestoreWalk } from "./restore-walk.js";
import type { Repository } from "./repository.js";

export type { OverwritePolicy, RestoreOptions, RestoreProgress, RestoreResult } from "./restore-context.js";
export { nsToSeconds } from "./restore-meta.js";

/**
 * Files prepared at once (existing targets, empty files). Each codec thread keeps at
 * most a few files open per range (restore-writer.ts), so a restore holds a few dozen
 * descriptors whatever the size of the tree (a shell's limit is often 1024, sometimes
 * 256); an open that still meets EMFILE waits and retries.
 */
const FILES_AT_ONCE = 16;

/**
 * Restores a snapshot tree into a target directory. Reads pack by pack (each pack
 * once), decrypts on the worker threads, verifies every blob against its keyed id,
 * and writes with positional writes. Never writes outside the target: names are
 * checked, links in the target are replaced rather than followed, every file
 * opened is checked to really lie inside the target, and metadata is set through
 * handles opened without following links. Symlinks are restored as they were
 * recorded (their target is data, never followed), after every file is written.
 *
 * The parts, each in its module: the walk that plans (restore-walk.ts), the target's
 * directories, files and links (restore-target.ts), pack scheduling and the codec
 * threads' range jobs (restore-packs.ts, restore-writer.ts), metadata
 * (restore-meta.ts) and verification (restore-verify.ts). This class runs them in order.
 */
export class Restorer {
  private readonly ctx: RestoreContext;
  private readonly meta: MetaSetter;
  private readonly target: RestoreTarget;
  private readonly walk: RestoreWalk;
  /** How many of the walk's directories exist in the target already. */
  private dirsMade = 0;

  constructor(repo: Repository, private readonly options: RestoreOptions) {
    this.ctx = new RestoreContext(repo, options);
    this.meta = new MetaSetter(this.ctx);
    this.target = new RestoreTarget(this.ctx, this.meta);
    this.walk = new RestoreWalk(this.ctx, () => this.restoreBatch());
  }

  async restore(treeId: string): Promise<RestoreResult> {
    const { ctx, walk } = this;
    // A first walk counts what to restore and refuses a snapshot that cannot be
    // restored (unsafe names, missing blobs) before anything is written.
    await walk.count(treeId);
    ctx.progress.filesTotal = ctx.result.files;
    ctx.progress.bytesTotal = ctx.result.totalBytes;
    if (this.options.dryRun) return ctx.result;
    await ctx.resolveRoot();
    await walk.collect(treeId);
    await this.restoreBatch();
    for (const l of walk.links) await this.target.restoreLink(l.dest, l.node);
    if (this.options.delete) await this.target.deleteExtra(walk.keepNames);
    for (const d of [...walk.dirs].reverse()) await this.meta.apply(d.dest, d.node);
    return ctx.result;
  }

  /** Creates the directories planned so far, then restores (and verifies) the files planned so far. */
  private async restoreBatch(): Promise<void> {
    const { walk } = this;
    for (; this.dirsMade < walk.dirs.length; this.dirsMade++) await this.target.ensureDir(walk.dirs[this.dirsMade].dest);
    await this.restoreFiles(walk.files);
    if (this.options.verify) await verifyRestored(this.ctx, walk.files);
    walk.files = [];
  }

  private async restoreFiles(files: FileJob[]): Promise<void> {
    const { ctx } = this;
    // Creating thousands of files is round trips to the file system: do many at once.
    // A file with content in a directory this restore created needs no preparing: its
    // first write creates it.
    const ready = new Array<boolean>(files.length);
    const toPrepare: number[] = [];
    for (const [i, job] of files.entries()) {
      if (this.target.createdByFirstWrite(job)) ready[i] = true;
      else toPrepare.push(i);
    }
    await mapLimit(toPrepare, FILES_AT_ONCE, async (i) => {
      ctx.stopIfCancelled();
      const job = files[i];
      ready[i] = await this.target.prepareFile(job).catch((err: unknown) => {
        throw cannotRestore(job.dest, err);
      });
      if (ready[i] && job.writes.length === 0) await this.finishFile(job);
    });
    await mapLimit(planRanges(ctx.repo, files, ready), Math.max(2, ctx.repo.pool.threads + 1), async (range) => {
      ctx.stopIfCancelled();
      await restoreRange(ctx, this.meta, range, (job) => this.finishFile(job));
      this.options.onProgress?.({ ...ctx.progress });
    });
  }

  /** A file whose every blob is written (or that has none): its metadata is set. */
  private async finishFile(job: FileJob): Promise<void> {
    await this.meta.apply(job.dest, job.node);
    this.ctx.progress.filesDone++;
  }
}

import { constants, promises as fs } from "node:fs";
import * as path from "node:path";
import { openPatiently } from "./descriptors.js";
import { CairnError } from "./errors.js";
import { lstatOrUndefined, type FileJob, type RestoreContext } from "./restore-context.js";
import type { MetaSetter } from "./restore-meta.js";
import { changedPieces } from "./restore-verify.js";
import type { TreeNode } from "./tree.js";

/**
 * The target side of a restore: directories, files made ready for writing, links and
 * extra files removed, all without ever leaving the target. Names are checked by the
 * walk; here links in the target are replaced rather than followed, and every file
 * opened is checked to really lie inside the target.
 */
export class RestoreTarget {
  constructor(
    private readonly ctx: RestoreContext,
    private readonly meta: MetaSetter,
  ) {}

  async ensureDir(dest: string): Promise<void> {
    const st = await lstatOrUndefined(dest);
    if (st?.isDirectory()) return;
    if (st) {
      if (this.ctx.options.overwrite === "never") throw new CairnError(`${dest} exists and is not a directory; move it away or use --overwrite always`);
      await fs.rm(dest, { force: true });
    }
    await fs.mkdir(dest);
    const real = await fs.realpath(dest);
    if (!this.ctx.insideRoot(real)) throw new CairnError(`refusing to restore ${dest}: it leads to ${real}, outside the target (was a directory on the way replaced by a link?)`);
    this.ctx.createdDirs.add(dest);
    this.ctx.result.dirs++;
  }

  /** True when the file's first write may create it: it has content and lies in a directory this restore created. */
  createdByFirstWrite(job: FileJob): boolean {
    return job.writes.length > 0 && this.ctx.createdDirs.has(path.dirname(job.dest));
  }

  /** Decides how to write one file; returns false when it is skipped. Creates (or truncates) it. */
  async prepareFile(job: FileJob): Promise<boolean> {
    const { ctx } = this;
    const policy = ctx.options.overwrite ?? "always";
    // In a directory this restore created, nothing can be in the way. A file with
    // content there is created by its first write and never comes here
    // (createdByFirstWrite; every directory is created before), so this one is empty.
    if (ctx.createdDirs.has(path.dirname(job.dest))) {
      const h = await openPatiently(job.dest, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      await this.confine(h, job.dest).finally(() => h.close());
      return true;
    }
    const st = await lstatOrUndefined(job.dest);
    const size = job.node.size ?? 0;
    if (st) {
      if (policy === "never") {
        ctx.result.filesSkipped++;
        return false;
      }
      if (!st.isFile()) {
        if (st.isDirectory()) throw new CairnError(`${job.dest} is a directory in the target but a file in the snapshot; move it away first`);
        await fs.rm(job.dest, { force: true });
      } else if (policy === "if-changed") {
        job.writes = await changedPieces(ctx.repo, job, st);
        job.remaining = job.writes.length;
        if (job.writes.length === 0 && st.size === size) {
          ctx.result.filesSkipped++;
          await this.meta.apply(job.dest, job.node);
          ctx.progress.filesDone++;
          return false;
        }
        await fs.truncate(job.dest, size);
        return true;
      }
    }
    // Truncated only once it is known to lie inside the target.
    const h = await openPatiently(job.dest, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      await this.confine(h, job.dest);
      await h.truncate(0);
      if (size > 0) await h.truncate(size);
    } finally {
      await h.close();
    }
    return true;
  }

  /** Throws unless the file open in `h` really lies inside the target (a directory on the way swapped for a link would lead elsewhere). */
  private async confine(h: fs.FileHandle, dest: string): Promise<void> {
    // Where /proc is missing (not Linux), the O_NOFOLLOW opens and the checks on created directories stand alone.
    const real = await fs.readlink(`/proc/self/fd/${h.fd}`).catch(() => undefined);
    if (real !== undefined && !this.ctx.insideRoot(real)) throw new CairnError(`refusing to write ${dest}: it leads to ${real}, outside the target (was a directory on the way replaced by a link?)`);
  }

  /** A symlink as it was recorded: its target is data, never followed. */
  async restoreLink(dest: string, node: TreeNode): Promise<void> {
    const st = await lstatOrUndefined(dest);
    if (st) {
      if (this.ctx.options.overwrite === "never") {
        this.ctx.result.filesSkipped++;
        return;
      }
      if (st.isDirectory()) throw new CairnError(`${dest} is a directory in the target but a symlink in the snapshot; move it away first`);
      await fs.rm(dest, { force: true });
    }
    await fs.symlink(node.linktarget ?? "", dest);
    await this.meta.apply(dest, node, true);
  }

  /** Removes, in each directory of `keep`, the entries it does not name (--delete). */
  async deleteExtra(keep: Map<string, Set<string>>): Promise<void> {
    for (const [dir, names] of keep) {
      const present = await fs.readdir(dir).catch(() => [] as string[]);
      for (const n of present) {
        if (names.has(n)) continue;
        const victim = path.join(dir, n);
        if (!victim.startsWith(this.ctx.root + path.sep)) continue;
        await fs.rm(victim, { recursive: true, force: true });
        this.ctx.result.deleted.push(victim);
      }
    }
  }
}

import { constants, promises as fs } from "node:fs";
import { openPatiently } from "./descriptors.js";
import type { RestoreContext } from "./restore-context.js";
import type { FileMeta } from "./restore-writer.js";
import type { TreeNode } from "./tree.js";

type MetaNode = Pick<TreeNode, "mode" | "uid" | "gid" | "mtime">;

/**
 * A restored entry's owner, mode and times, never set through a link. Problems are
 * warnings in the result: the content is restored all the same.
 */
export class MetaSetter {
  constructor(private readonly ctx: RestoreContext) {}

  /** What a codec thread sets on a file it finishes (restore-writer.ts). */
  metaOf(node: MetaNode): FileMeta {
    return {
      mode: this.mode(node),
      mtime: nsToSeconds(node.mtime),
      ...(this.ctx.chown ? { uid: node.uid, gid: node.gid } : {}),
    };
  }

  /**
   * A symlink gets lchown and lutimes; anything else is opened with O_NOFOLLOW and
   * changed through its handle (a link put in its place makes the open fail instead of
   * changing the link's target).
   */
  async apply(dest: string, node: MetaNode, isLink = false): Promise<void> {
    try {
      if (isLink) {
        const mtime = nsToSeconds(node.mtime);
        if (this.ctx.chown) await fs.lchown(dest, node.uid, node.gid);
        await fs.lutimes(dest, mtime, mtime);
        return;
      }
      const h = await openPatiently(dest, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        await this.set(h, dest, node);
      } finally {
        await h.close();
      }
    } catch (err) {
      this.warn(dest, err);
    }
  }

  /** Owner, then mode (a chown clears setuid bits), then times, through an open handle (never a link). */
  private async set(h: fs.FileHandle, dest: string, node: MetaNode): Promise<void> {
    const mtime = nsToSeconds(node.mtime);
    try {
      if (this.ctx.chown) await h.chown(node.uid, node.gid);
      await h.chmod(this.mode(node));
      await h.utimes(mtime, mtime);
    } catch (err) {
      this.warn(dest, err);
    }
  }

  private mode(node: MetaNode): number {
    return this.ctx.options.setidBits === false ? node.mode & ~0o6000 : node.mode;
  }

  private warn(dest: string, err: unknown): void {
    this.ctx.result.warnings.push(`${dest}: could not set metadata (${(err as Error).message})`);
  }
}

/**
 * A time for fs.utimes, which takes seconds as a double: near 2026 a double
 * resolves about 0.24 µs, so the exact nanoseconds cannot be set. Aiming at the
 * middle of the microsecond keeps the restored time in the right microsecond
 * (aiming at its start could round down into the one before).
 */
export function nsToSeconds(ns: string): number {
  const us = BigInt(ns) / 1000n;
  return Number(us / 1_000_000n) + (Number(us % 1_000_000n) + 0.5) / 1e6;
}

import * as path from "node:path";
import { CairnError } from "./errors.js";
import { filePieces } from "./pagemap.js";
import { PathPatterns } from "./pathmatch.js";
import type { FileJob, RestoreContext } from "./restore-context.js";
import { isSafeName, TreeLoader, type TreeNode } from "./tree.js";

/**
 * Files planned and restored together: the restore walks the snapshot a second time and
 * writes each batch as soon as it is planned, so it holds one batch of file jobs and
 * blob plans (about 1 KiB a file), not the whole tree's. On 200,000 small files restored
 * into tmpfs (two runs each, same machine): 4096 files a batch peaked at 190-192 MiB,
 * 16384 at 224-229, at the same CPU time (20-24 s; restic 0.18.1: 210 MiB, 22 s). An
 * earlier measurement that smaller batches cost CPU was the file system's: ext4 spends
 * system time skipping recently deleted inodes when a restore follows the deletion of
 * the previous one, and that varied from run to run by more than the batches did.
 */
const FILE_BATCH = 4096;

/**
 * Trees the walk keeps decoded. Each tree is read once per walk, so the cache only
 * spares the second walk the trees the first one read last; 64 trees of 1000 files
 * held 64,000 whole nodes (and their content ids), so a smaller file batch alone
 * saved nothing: 16384-file batches with 64 trees cached peaked at 350 MiB.
 */
const TREES_CACHED = 4;

/**
 * Planning: walks the snapshot's trees, refuses what cannot be restored safely (unsafe or
 * repeated names, missing blobs), applies the include and exclude patterns, and collects
 * the directories, files and links to restore.
 */
export class RestoreWalk {
  /** Directories to create, in walk order (parents first). */
  readonly dirs: { dest: string; node: TreeNode }[] = [];
  readonly links: { dest: string; node: TreeNode }[] = [];
  /** The batch of files planned and not yet restored. */
  files: FileJob[] = [];
  /** Names kept in each wholly restored directory (only --delete needs them). */
  readonly keepNames = new Map<string, Set<string>>();
  private readonly loader: TreeLoader;
  private readonly includes: PathPatterns;
  private readonly excludes: PathPatterns;

  /** `onBatch` restores the files planned so far (and empties `files`); the walk calls it each time a batch is full. */
  constructor(
    private readonly ctx: RestoreContext,
    private readonly onBatch: () => Promise<void>,
  ) {
    this.loader = new TreeLoader(ctx.repo, TREES_CACHED);
    this.includes = new PathPatterns(ctx.options.include);
    this.excludes = new PathPatterns(ctx.options.exclude);
  }

  /**
   * The first walk: counts what to restore (files, bytes, links, warnings) into the
   * result, and refuses a snapshot that cannot be restored before anything is written.
   */
  async count(treeId: string): Promise<void> {
    await this.walk(treeId, "", this.ctx.root, this.includes.empty, false);
    this.checkIncludes();
  }

  /** The second walk: collects what to restore, handing over a batch of files at a time. */
  async collect(treeId: string): Promise<void> {
    await this.walk(treeId, "", this.ctx.root, this.includes.empty, true);
  }

  /**
   * Walks a tree: with `restoring` false it counts, with `restoring` true it collects.
   * `whole` is true when the directory is wholly selected (not just on the way to an include).
   */
  private async walk(treeId: string, snapPath: string, destDir: string, whole: boolean, restoring: boolean): Promise<boolean> {
    const { ctx } = this;
    const tree = await this.loader.load(treeId);
    const seen = new Set<string>();
    let any = false;
    for (const node of tree.nodes) {
      if (!isSafeName(node.name)) {
        throw new CairnError(`the snapshot holds an unsafe name ${JSON.stringify(node.name)} in ${snapPath || "/"}; refusing to restore (it would write outside the target)`);
      }
      if (seen.has(node.name)) throw new CairnError(`the snapshot holds ${snapPath}/${node.name} twice; refusing to restore it`);
      seen.add(node.name);
      const p = `${snapPath}/${node.name}`;
      const dest = path.join(destDir, node.name);
      if (!dest.startsWith(ctx.root + path.sep)) throw new CairnError(`refusing to restore ${p}: it resolves outside the target`);
      if (this.excludes.matches(p)) continue;
      const selected = whole || this.includes.matches(p);
      if (node.type === "dir") {
        if (!node.subtree) continue;
        // A directory the walk is in when a batch is restored has a file planned in it, so it is kept: only
        // directories after the last batch's can be dropped here, and the restorer's count of those made stays right.
        const idx = this.dirs.length;
        if (restoring) this.dirs.push({ dest, node });
        const has = await this.walk(node.subtree, p, dest, selected, restoring);
        if (!has && !selected) {
          if (restoring) this.dirs.splice(idx, 1);
        } else {
          any = true;
          if (selected && restoring) this.keep(destDir, node.name);
        }
        continue;
      }
      if (!selected) continue;
      any = true;
      if (restoring) this.keep(destDir, node.name);
      if (node.type === "file") {
        const writes = filePieces(node, (id) => {
          const loc = ctx.repo.lookup(Buffer.from(id, "hex"));
          if (!loc) throw new CairnError(`blob ${id.slice(0, 16)} of ${p} is missing from the repository; run "cairn check"`);
          return loc.rawLength;
        });
        if (!restoring) {
          ctx.result.files++;
          ctx.result.totalBytes += node.size ?? writes.reduce((n, w) => n + w.length, 0);
          continue;
        }
        const { name, mode, uid, gid, mtime, size, content, pages } = node;
        this.files.push({ dest, node: { name, mode, uid, gid, mtime, size, content, ...(pages ? { pages } : {}) }, writes, remaining: writes.length });
        if (this.files.length >= (ctx.options.fileBatch ?? FILE_BATCH)) await this.onBatch();
      } else if (node.type === "symlink") {
        if (restoring) this.links.push({ dest, node });
        else ctx.result.symlinks++;
      } else if (!restoring) {
        ctx.result.warnings.push(`${p}: ${node.type} entries are not restored`);
      }
    }
    if (whole && restoring && ctx.options.delete) this.keepNames.set(destDir, this.keepNames.get(destDir) ?? new Set());
    return any;
  }

  /**
   * A restore whose include patterns select nothing fails instead of "restoring"
   * zero files; one pattern among several that selects nothing is a warning.
   */
  private checkIncludes(): void {
    if (this.includes.empty) return;
    const unmatched = this.includes.unmatched();
    const all = this.ctx.options.include!.filter((p) => p !== "");
    if (unmatched.length === all.length) {
      throw new CairnError(
        `no path in the snapshot matches the include pattern${all.length === 1 ? "" : "s"} ${all.map((p) => JSON.stringify(p)).join(", ")}: ` +
          `a pattern with a "/" matches the whole path from the snapshot's root (like /srv/www/invoices/*.txt), one without matches any name (like *.txt); ` +
          `list the snapshot's paths with "cairn ls SNAPSHOT"`,
      );
    }
    for (const p of unmatched) this.ctx.result.warnings.push(`the include pattern ${JSON.stringify(p)} matched nothing in the snapshot`);
  }

  /** Names kept in `dir` (only --delete needs them). */
  private keep(dir: string, name: string): void {
    if (!this.ctx.options.delete) return;
    let s = this.keepNames.get(dir);
    if (!s) this.keepNames.set(dir, (s = new Set()));
    s.add(name);
  }
}

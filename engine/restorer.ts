import { constants, promises as fs, type Stats } from "node:fs";
import * as path from "node:path";
import { blobId, IntegrityError } from "./crypto.js";
import { openPatiently } from "./descriptors.js";
import { filePieces, pageHash, PAGE_HASH_BYTES, type Piece } from "./pagemap.js";
import { CairnError, stopIfAborted } from "./errors.js";
import { packKey } from "./pack.js";
import type { FileMeta, RestoreRangeRequest } from "./restore-writer.js";
import { PathPatterns } from "./pathmatch.js";
import { mapLimit } from "./concurrency.js";
import type { Repository } from "./repository.js";
import { isSafeName, TreeLoader, type TreeNode } from "./tree.js";

export type OverwritePolicy = "always" | "if-changed" | "never";

export interface RestoreOptions {
  target: string;
  include?: string[];
  exclude?: string[];
  dryRun?: boolean;
  verify?: boolean;
  overwrite?: OverwritePolicy;
  /** Remove files in the target that the snapshot does not have (only inside restored directories). */
  delete?: boolean;
  /** Give files their recorded owner and group when running as root (default true). */
  owners?: boolean;
  /** Keep setuid and setgid bits (default true); without them a crafted snapshot cannot plant a setuid program. */
  setidBits?: boolean;
  onProgress?: (p: RestoreProgress) => void;
  /** Stops the restore between files and between pack ranges; what was written stays. */
  signal?: AbortSignal;
  /** Files planned and restored together (default FILE_BATCH; tests use small batches). */
  fileBatch?: number;
}

export interface RestoreProgress {
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface RestoreResult {
  files: number;
  dirs: number;
  symlinks: number;
  /** Files left as they were because they already matched (if-changed) or existed (never). */
  filesSkipped: number;
  /** Bytes of file content the snapshot holds for the selected files. */
  totalBytes: number;
  /** Bytes actually written (a delta restore writes only changed blobs). */
  bytesWritten: number;
  deleted: string[];
  /** Files whose content did not match the snapshot after restore (only with verify). */
  verifyErrors: string[];
  /** Entries that could not be restored (special files, permission problems). */
  warnings: string[];
}

/** What a restore needs of a file's tree node (the rest of the node, inode, device and ctime strings, is left to the garbage collector). */
type FileNode = Pick<TreeNode, "name" | "mode" | "uid" | "gid" | "mtime" | "size" | "content" | "pages">;

interface FileJob {
  dest: string;
  node: FileNode;
  /** Stretches of blobs to write, at `offset` in the file; all of the file's unless the restore is a delta. */
  writes: Piece[];
  remaining: number;
}

/**
 * Files prepared at once (existing targets, empty files). Each codec thread keeps at
 * most a few files open per range (restore-writer.ts), so a restore holds a few dozen
 * descriptors whatever the size of the tree (a shell's limit is often 1024, sometimes
 * 256); an open that still meets EMFILE waits and retries.
 */
const FILES_AT_ONCE = 16;
/**
 * Files planned and restored together: the restore walks the snapshot a second time and
 * writes each batch as soon as it is planned, so it holds one batch of file jobs and
 * blob plans (about 1 KiB a file), not the whole tree's. Batches of 8192 files cost
 * half again the CPU time of one batch on 50,000 small files (measured, cause not
 * found yet), so a batch is large: only trees beyond it pay for the bound.
 */
const FILE_BATCH = 65536;
/** Read ranges: gaps up to MAX_GAP between needed blobs are read through; a range stops growing at MAX_RANGE (bounds the bytes in flight). */
const MAX_GAP = 1 << 20;
const MAX_RANGE = 4 << 20;

/** A blob to restore: where it lies and which files (at which offsets) get it. */
interface PlannedBlob {
  loc: { id: string; offset: number; length: number; rawLength: number; compression: number };
  targets: { job: FileJob; piece: Piece }[];
}

/**
 * Restores a snapshot tree into a target directory. Reads pack by pack (each pack
 * once), decrypts on the worker threads, verifies every blob against its keyed id,
 * and writes with positional writes. Never writes outside the target: names are
 * checked, links in the target are replaced rather than followed, every file
 * opened is checked to really lie inside the target, and metadata is set through
 * handles opened without following links. Symlinks are restored as they were
 * recorded (their target is data, never followed), after every file is written.
 */
export class Restorer {
  private readonly loader: TreeLoader;
  private readonly root: string;
  private readonly includes: PathPatterns;
  private readonly excludes: PathPatterns;
  private readonly result: RestoreResult = { files: 0, dirs: 0, symlinks: 0, filesSkipped: 0, totalBytes: 0, bytesWritten: 0, deleted: [], verifyErrors: [], warnings: [] };
  private readonly dirs: { dest: string; node: TreeNode }[] = [];
  /** How many of `dirs` exist in the target already. */
  private dirsMade = 0;
  private readonly links: { dest: string; node: TreeNode }[] = [];
  /** The batch of files planned and not yet restored. */
  private files: FileJob[] = [];
  private readonly keepNames = new Map<string, Set<string>>();
  private readonly progress: RestoreProgress = { filesDone: 0, filesTotal: 0, bytesDone: 0, bytesTotal: 0 };
  private readonly isRoot = process.getuid?.() === 0;
  private readonly createdDirs = new Set<string>();
  /** The target with its links resolved, known once it exists. */
  private realRoot = "";

  constructor(private readonly repo: Repository, private readonly options: RestoreOptions) {
    // Each tree is read once while planning: a big cache would only hold memory.
    this.loader = new TreeLoader(repo, 64);
    this.root = path.resolve(options.target);
    this.includes = new PathPatterns(options.include);
    this.excludes = new PathPatterns(options.exclude);
  }

  async restore(treeId: string): Promise<RestoreResult> {
    // A first walk counts what to restore and refuses a snapshot that cannot be
    // restored (unsafe names, missing blobs) before anything is written.
    await this.plan(treeId, "", this.root, this.includes.empty, false);
    this.checkIncludes();
    this.progress.filesTotal = this.result.files;
    this.progress.bytesTotal = this.result.totalBytes;
    if (this.options.dryRun) return this.result;
    await fs.mkdir(this.root, { recursive: true });
    this.realRoot = await fs.realpath(this.root);
    await this.plan(treeId, "", this.root, this.includes.empty, true);
    await this.restoreBatch();
    for (const l of this.links) await this.restoreLink(l.dest, l.node);
    if (this.options.delete) await this.deleteExtra();
    for (const d of [...this.dirs].reverse()) await this.applyMeta(d.dest, d.node);
    return this.result;
  }

  /** Creates the directories planned so far, then restores (and verifies) the files planned so far. */
  private async restoreBatch(): Promise<void> {
    for (; this.dirsMade < this.dirs.length; this.dirsMade++) await this.ensureDir(this.dirs[this.dirsMade].dest);
    await this.restoreFiles();
    if (this.options.verify) await this.verify();
    this.files = [];
  }

  /**
   * Walks a tree: with `restoring` false it counts what to restore (files, bytes, links,
   * warnings); with `restoring` true it collects it, restoring a batch of files at a time.
   * `whole` is true when the directory is wholly selected (not just on the way to an include).
   */
  private async plan(treeId: string, snapPath: string, destDir: string, whole: boolean, restoring: boolean): Promise<boolean> {
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
      if (!dest.startsWith(this.root + path.sep)) throw new CairnError(`refusing to restore ${p}: it resolves outside the target`);
      if (this.excludes.matches(p)) continue;
      const selected = whole || this.includes.matches(p);
      if (node.type === "dir") {
        if (!node.subtree) continue;
        // A directory the walk is in when a batch is restored has a file planned in it, so it is kept: only
        // directories after the last batch's can be dropped here, and `dirsMade` stays right.
        const idx = this.dirs.length;
        if (restoring) this.dirs.push({ dest, node });
        const has = await this.plan(node.subtree, p, dest, selected, restoring);
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
          const loc = this.repo.lookup(Buffer.from(id, "hex"));
          if (!loc) throw new CairnError(`blob ${id.slice(0, 16)} of ${p} is missing from the repository; run "cairn check"`);
          return loc.rawLength;
        });
        if (!restoring) {
          this.result.files++;
          this.result.totalBytes += node.size ?? writes.reduce((n, w) => n + w.length, 0);
          continue;
        }
        const { name, mode, uid, gid, mtime, size, content, pages } = node;
        this.files.push({ dest, node: { name, mode, uid, gid, mtime, size, content, ...(pages ? { pages } : {}) }, writes, remaining: writes.length });
        if (this.files.length >= (this.options.fileBatch ?? FILE_BATCH)) await this.restoreBatch();
      } else if (node.type === "symlink") {
        if (restoring) this.links.push({ dest, node });
        else this.result.symlinks++;
      } else if (!restoring) {
        this.result.warnings.push(`${p}: ${node.type} entries are not restored`);
      }
    }
    if (whole && restoring && this.options.delete) this.keepNames.set(destDir, this.keepNames.get(destDir) ?? new Set());
    return any;
  }

  /**
   * A restore whose include patterns select nothing fails instead of "restoring"
   * zero files; one pattern among several that selects nothing is a warning.
   */
  private checkIncludes(): void {
    if (this.includes.empty) return;
    const unmatched = this.includes.unmatched();
    const all = this.options.include!.filter((p) => p !== "");
    if (unmatched.length === all.length) {
      throw new CairnError(
        `no path in the snapshot matches the include pattern${all.length === 1 ? "" : "s"} ${all.map((p) => JSON.stringify(p)).join(", ")}: ` +
          `a pattern with a "/" matches the whole path from the snapshot's root (like /srv/www/invoices/*.txt), one without matches any name (like *.txt); ` +
          `list the snapshot's paths with "cairn ls SNAPSHOT"`,
      );
    }
    for (const p of unmatched) this.result.warnings.push(`the include pattern ${JSON.stringify(p)} matched nothing in the snapshot`);
  }

  /** Names kept in `dir` (only --delete needs them). */
  private keep(dir: string, name: string): void {
    if (!this.options.delete) return;
    let s = this.keepNames.get(dir);
    if (!s) this.keepNames.set(dir, (s = new Set()));
    s.add(name);
  }

  private async ensureDir(dest: string): Promise<void> {
    const st = await lstatOrUndefined(dest);
    if (st?.isDirectory()) return;
    if (st) {
      if (this.options.overwrite === "never") throw new CairnError(`${dest} exists and is not a directory; move it away or use --overwrite always`);
      await fs.rm(dest, { force: true });
    }
    await fs.mkdir(dest);
    const real = await fs.realpath(dest);
    if (!this.insideRoot(real)) throw new CairnError(`refusing to restore ${dest}: it leads to ${real}, outside the target (was a directory on the way replaced by a link?)`);
    this.createdDirs.add(dest);
    this.result.dirs++;
  }

  private async restoreFiles(): Promise<void> {
    // Creating thousands of files is round trips to the file system: do many at once.
    // A file with content in a directory this restore created needs no preparing: its
    // first write creates it.
    const ready = new Array<boolean>(this.files.length);
    const toPrepare: number[] = [];
    for (const [i, job] of this.files.entries()) {
      if (job.writes.length > 0 && this.createdDirs.has(path.dirname(job.dest))) ready[i] = true;
      else toPrepare.push(i);
    }
    await mapLimit(toPrepare, FILES_AT_ONCE, async (i) => {
      this.stopIfCancelled();
      const job = this.files[i];
      ready[i] = await this.prepareFile(job).catch((err: unknown) => {
        throw cannotRestore(job.dest, err);
      });
      if (ready[i] && job.writes.length === 0) await this.finishFile(job);
    });
    const ranges = this.readRanges(ready);
    await mapLimit(ranges, Math.max(2, this.repo.pool.threads + 1), async (range) => {
      this.stopIfCancelled();
      await this.restoreRange(range);
      this.options.onProgress?.({ ...this.progress });
    });
  }

  /** Every blob to write, grouped by pack and sorted by offset into read ranges (each pack read once, in order). */
  private readRanges(ready: boolean[]): (Range<PlannedBlob> & { packId: string })[] {
    const byPack = new Map<string, Map<string, PlannedBlob>>();
    for (const [i, job] of this.files.entries()) {
      if (!ready[i]) continue;
      for (const w of job.writes) {
        const loc = this.repo.lookup(Buffer.from(w.id, "hex"))!;
        let blobs = byPack.get(loc.packId);
        if (!blobs) byPack.set(loc.packId, (blobs = new Map()));
        let b = blobs.get(w.id);
        if (!b) blobs.set(w.id, (b = { loc: { id: w.id, offset: loc.offset, length: loc.length, rawLength: loc.rawLength, compression: loc.compression }, targets: [] }));
        b.targets.push({ job, piece: w });
      }
    }
    const out: (Range<PlannedBlob> & { packId: string })[] = [];
    for (const [packId, blobs] of byPack) {
      const sorted = [...blobs.values()].sort((a, b) => a.loc.offset - b.loc.offset);
      for (const r of coalesce(sorted, MAX_GAP, MAX_RANGE)) out.push({ ...r, packId });
    }
    return out;
  }

  /**
   * Reads one range and hands it to a codec thread, which opens its blobs and writes
   * them into their files (restore-writer.ts); a file whose last blobs were in this
   * range is finished there too, or here when its blobs were spread over ranges in flight at once.
   */
  private async restoreRange(range: Range<PlannedBlob> & { packId: string }): Promise<void> {
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
    for (const [fi, f] of files.entries()) if (f.writes === jobs[fi].remaining) f.meta = this.metaOf(jobs[fi].node);
    const bytes = await this.repo.backend.get(packKey(range.packId), { offset: range.start, length: range.end - range.start });
    const res = await this.repo.pool.restoreRange({ buffer: bytes, blobs, files, root: this.realRoot }, true);
    this.result.bytesWritten += res.bytesWritten;
    this.progress.bytesDone += res.bytesWritten;
    this.result.warnings.push(...res.warnings);
    const failure = res.failure;
    if (failure?.kind === "blob") {
      const dest = jobs[blobs[failure.blob].targets[0]].dest;
      throw new IntegrityError(`pack ${range.packId} is damaged (${failure.message}); ${dest} cannot be restored from it`);
    }
    if (failure?.kind === "outside") {
      throw new CairnError(`refusing to write ${jobs[failure.file].dest}: it leads to ${failure.real}, outside the target (was a directory on the way replaced by a link?)`);
    }
    if (failure?.kind === "file") {
      const dest = failure.file >= 0 ? jobs[failure.file].dest : this.root;
      throw cannotRestore(dest, Object.assign(new Error(failure.message), { code: failure.code }));
    }
    for (const [fi, f] of files.entries()) {
      const job = jobs[fi];
      job.remaining -= f.writes;
      if (f.meta) this.progress.filesDone++;
      else if (job.remaining === 0) await this.finishFile(job);
    }
  }

  /** What a codec thread sets on a file it finishes. */
  private metaOf(node: FileNode): FileMeta {
    const chown = this.isRoot && this.options.owners !== false;
    return {
      mode: this.options.setidBits === false ? node.mode & ~0o6000 : node.mode,
      mtime: nsToSeconds(node.mtime),
      ...(chown ? { uid: node.uid, gid: node.gid } : {}),
    };
  }

  private stopIfCancelled(): void {
    stopIfAborted(this.options.signal, `restore cancelled after ${this.progress.filesDone} of ${this.progress.filesTotal} files; the files written so far stay in ${this.root}`);
  }

  /** Decides how to write one file; returns false when it is skipped. Creates (or truncates) it. */
  private async prepareFile(job: FileJob): Promise<boolean> {
    const policy = this.options.overwrite ?? "always";
    // In a directory this restore created, nothing can be in the way. A file with
    // content there is created by its first write and never comes here
    // (restoreFiles; every directory is created before), so this one is empty.
    if (this.createdDirs.has(path.dirname(job.dest))) {
      const h = await openPatiently(job.dest, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      await this.confine(h, job.dest).finally(() => h.close());
      return true;
    }
    const st = await lstatOrUndefined(job.dest);
    const size = job.node.size ?? 0;
    if (st) {
      if (policy === "never") {
        this.result.filesSkipped++;
        return false;
      }
      if (!st.isFile()) {
        if (st.isDirectory()) throw new CairnError(`${job.dest} is a directory in the target but a file in the snapshot; move it away first`);
        await fs.rm(job.dest, { force: true });
      } else if (policy === "if-changed") {
        job.writes = await this.changedBlobs(job, st);
        job.remaining = job.writes.length;
        if (job.writes.length === 0 && st.size === size) {
          this.result.filesSkipped++;
          await this.applyMeta(job.dest, job.node);
          this.progress.filesDone++;
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

  private insideRoot(real: string): boolean {
    return real === this.realRoot || real.startsWith(this.realRoot + path.sep);
  }

  /** Throws unless the file open in `h` really lies inside the target (a directory on the way swapped for a link would lead elsewhere). */
  private async confine(h: fs.FileHandle, dest: string): Promise<void> {
    // Where /proc is missing (not Linux), the O_NOFOLLOW opens and the checks on created directories stand alone.
    const real = await fs.readlink(`/proc/self/fd/${h.fd}`).catch(() => undefined);
    if (real !== undefined && !this.insideRoot(real)) throw new CairnError(`refusing to write ${dest}: it leads to ${real}, outside the target (was a directory on the way replaced by a link?)`);
  }

  /**
   * Pieces whose bytes differ between the target file and the snapshot (delta
   * restore): a whole blob is compared by its keyed id, a page-mapped file page by
   * page with the hashes its page map keeps.
   */
  private async changedBlobs(job: FileJob, st: Stats): Promise<FileJob["writes"]> {
    const changed: FileJob["writes"] = [];
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
            if (!pageHash(this.repo.idKey, buf.subarray(at, Math.min(w.length, at + pages.size))).equals(want)) {
              changed.push(w);
              break;
            }
          }
        } else if (!blobId(this.repo.idKey, buf).equals(this.repo.lookup(Buffer.from(w.id, "hex"))!.id)) changed.push(w);
      }
    } finally {
      await h.close();
    }
    return changed;
  }

  /** A file whose every blob is written (or that has none): its metadata is set. */
  private async finishFile(job: FileJob): Promise<void> {
    await this.applyMeta(job.dest, job.node);
    this.progress.filesDone++;
  }

  private async restoreLink(dest: string, node: TreeNode): Promise<void> {
    const st = await lstatOrUndefined(dest);
    if (st) {
      if (this.options.overwrite === "never") {
        this.result.filesSkipped++;
        return;
      }
      if (st.isDirectory()) throw new CairnError(`${dest} is a directory in the target but a symlink in the snapshot; move it away first`);
      await fs.rm(dest, { force: true });
    }
    await fs.symlink(node.linktarget ?? "", dest);
    await this.applyMeta(dest, node, true);
  }

  /**
   * Owner, mode and times, never through a link: a symlink gets lchown and lutimes,
   * anything else is opened with O_NOFOLLOW and changed through its handle (a link
   * put in its place makes the open fail instead of changing the link's target).
   */
  private async applyMeta(dest: string, node: Pick<TreeNode, "mode" | "uid" | "gid" | "mtime">, isLink = false): Promise<void> {
    try {
      if (isLink) {
        const mtime = nsToSeconds(node.mtime);
        if (this.isRoot && this.options.owners !== false) await fs.lchown(dest, node.uid, node.gid);
        await fs.lutimes(dest, mtime, mtime);
        return;
      }
      const h = await openPatiently(dest, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        await this.setMeta(h, dest, node);
      } finally {
        await h.close();
      }
    } catch (err) {
      this.result.warnings.push(`${dest}: could not set metadata (${(err as Error).message})`);
    }
  }

  /** Owner, then mode (a chown clears setuid bits), then times, through an open handle (never a link). */
  private async setMeta(h: fs.FileHandle, dest: string, node: Pick<TreeNode, "mode" | "uid" | "gid" | "mtime">): Promise<void> {
    const mtime = nsToSeconds(node.mtime);
    try {
      if (this.isRoot && this.options.owners !== false) await h.chown(node.uid, node.gid);
      await h.chmod(this.options.setidBits === false ? node.mode & ~0o6000 : node.mode);
      await h.utimes(mtime, mtime);
    } catch (err) {
      this.result.warnings.push(`${dest}: could not set metadata (${(err as Error).message})`);
    }
  }

  private async deleteExtra(): Promise<void> {
    for (const [dir, keep] of this.keepNames) {
      const names = await fs.readdir(dir).catch(() => [] as string[]);
      for (const n of names) {
        if (keep.has(n)) continue;
        const victim = path.join(dir, n);
        if (!victim.startsWith(this.root + path.sep)) continue;
        await fs.rm(victim, { recursive: true, force: true });
        this.result.deleted.push(victim);
      }
    }
  }

  private async verify(): Promise<void> {
    for (const job of this.files) {
      const st = await lstatOrUndefined(job.dest);
      if (!st?.isFile()) {
        if (this.options.overwrite !== "never") this.result.verifyErrors.push(`${job.dest}: missing after restore`);
        continue;
      }
      if (st.size !== (job.node.size ?? 0)) {
        this.result.verifyErrors.push(`${job.dest}: size ${st.size}, expected ${job.node.size}`);
        continue;
      }
      const all = { ...job, writes: filePieces(job.node, (id) => this.repo.lookup(Buffer.from(id, "hex"))!.rawLength) };
      const bad = await this.changedBlobs(all, st);
      if (bad.length) this.result.verifyErrors.push(`${job.dest}: ${bad.length} chunk(s) differ from the snapshot`);
    }
  }
}

interface Range<B> {
  start: number;
  end: number;
  blobs: B[];
}

/** Groups blobs sorted by offset into read ranges, bridging small gaps so one read serves many blobs. */
function coalesce<B extends { loc: { offset: number; length: number } }>(blobs: B[], maxGap: number, maxRange: number): Range<B>[] {
  const out: Range<B>[] = [];
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

/** A file system error met writing `dest`, as an error that names the file and says what to do. */
function cannotRestore(dest: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (err instanceof CairnError || !code) return err;
  const hint = code === "ENOSPC" || code === "EDQUOT" ? "; the target's disk is full: free some space or restore elsewhere" : "";
  return new CairnError(`cannot restore ${dest}: ${(err as Error).message}${hint}`);
}

async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
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

import { constants, promises as fs, type Stats } from "node:fs";
import * as path from "node:path";
import { blobId, IntegrityError } from "./crypto.js";
import { openPatiently } from "./descriptors.js";
import { CairnError, stopIfAborted } from "./errors.js";
import { packKey } from "./pack.js";
import { PathPatterns } from "./pathmatch.js";
import { mapLimit, type Repository } from "./repository.js";
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

interface FileJob {
  dest: string;
  node: TreeNode;
  /** Blob ids and offsets to write; all of the file's blobs unless the restore is a delta. */
  writes: { id: string; offset: number }[];
  remaining: number;
}

/**
 * Files kept open between the blobs written into them. With at most
 * PACKS_AT_ONCE * WRITES_AT_ONCE in use and FILES_AT_ONCE being prepared, a restore
 * holds fewer than 128 descriptors whatever the size of the tree (a shell's limit is
 * often 1024, sometimes 256); an open that still meets EMFILE waits and retries.
 */
const MAX_OPEN = 64;
/** Packs read at once: enough to keep every codec thread busy while files are written. */
const PACKS_AT_ONCE = 4;
/** Blobs of one pack range written at once. */
const WRITES_AT_ONCE = 8;
const FILES_AT_ONCE = 16;

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
  private readonly links: { dest: string; node: TreeNode }[] = [];
  private readonly files: FileJob[] = [];
  private readonly keepNames = new Map<string, Set<string>>();
  private readonly progress: RestoreProgress = { filesDone: 0, filesTotal: 0, bytesDone: 0, bytesTotal: 0 };
  private readonly isRoot = process.getuid?.() === 0;
  private readonly createdDirs = new Set<string>();
  /** The target with its links resolved, known once it exists. */
  private realRoot = "";

  constructor(private readonly repo: Repository, private readonly options: RestoreOptions) {
    this.loader = new TreeLoader(repo);
    this.root = path.resolve(options.target);
    this.includes = new PathPatterns(options.include);
    this.excludes = new PathPatterns(options.exclude);
  }

  async restore(treeId: string): Promise<RestoreResult> {
    await this.plan(treeId, "", this.root, this.includes.empty);
    this.checkIncludes();
    this.progress.filesTotal = this.files.length;
    this.progress.bytesTotal = this.result.totalBytes;
    if (this.options.dryRun) return this.result;
    await fs.mkdir(this.root, { recursive: true });
    this.realRoot = await fs.realpath(this.root);
    for (const d of this.dirs) await this.ensureDir(d.dest);
    await this.restoreFiles();
    for (const l of this.links) await this.restoreLink(l.dest, l.node);
    if (this.options.delete) await this.deleteExtra();
    for (const d of [...this.dirs].reverse()) await this.applyMeta(d.dest, d.node);
    if (this.options.verify) await this.verify();
    return this.result;
  }

  /** Collects what to restore. `whole` is true when the directory is wholly selected (not just on the way to an include). */
  private async plan(treeId: string, snapPath: string, destDir: string, whole: boolean): Promise<boolean> {
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
        const idx = this.dirs.length;
        this.dirs.push({ dest, node });
        const has = await this.plan(node.subtree, p, dest, selected);
        if (!has && !selected) this.dirs.splice(idx, 1);
        else {
          any = true;
          if (selected) this.keep(destDir, node.name);
        }
        continue;
      }
      if (!selected) continue;
      any = true;
      this.keep(destDir, node.name);
      if (node.type === "file") {
        const writes: FileJob["writes"] = [];
        let offset = 0;
        for (const id of node.content ?? []) {
          const loc = this.repo.lookup(Buffer.from(id, "hex"));
          if (!loc) throw new CairnError(`blob ${id.slice(0, 16)} of ${p} is missing from the repository; run "cairn check"`);
          writes.push({ id, offset });
          offset += loc.rawLength;
        }
        this.files.push({ dest, node, writes, remaining: writes.length });
        this.result.files++;
        this.result.totalBytes += node.size ?? offset;
      } else if (node.type === "symlink") {
        this.links.push({ dest, node });
        this.result.symlinks++;
      } else {
        this.result.warnings.push(`${p}: ${node.type} entries are not restored`);
      }
    }
    if (whole) this.keepNames.set(destDir, this.keepNames.get(destDir) ?? new Set());
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

  private keep(dir: string, name: string): void {
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
    const byPack = new Map<string, { loc: NonNullable<ReturnType<Repository["lookup"]>>; targets: { job: FileJob; offset: number }[] }[]>();
    const blobsInPack = new Map<string, Map<string, { loc: NonNullable<ReturnType<Repository["lookup"]>>; targets: { job: FileJob; offset: number }[] }>>();
    const handles = new HandleCache(MAX_OPEN, (h, file) => this.confine(h, file));
    // Creating thousands of files is round trips to the file system: do many at once.
    const ready = new Array<boolean>(this.files.length);
    await mapLimit(this.files, FILES_AT_ONCE, async (job, i) => {
      this.stopIfCancelled();
      ready[i] = await this.prepareFile(job).catch((err: unknown) => {
        throw cannotRestore(job.dest, err);
      });
      if (ready[i] && job.writes.length === 0) await this.finishFile(job, handles);
    });
    for (const [i, job] of this.files.entries()) {
      if (!ready[i] || job.writes.length === 0) continue;
      for (const w of job.writes) {
        const loc = this.repo.lookup(Buffer.from(w.id, "hex"))!;
        let m = blobsInPack.get(loc.packId);
        if (!m) {
          blobsInPack.set(loc.packId, (m = new Map()));
          byPack.set(loc.packId, []);
        }
        let b = m.get(w.id);
        if (!b) {
          m.set(w.id, (b = { loc, targets: [] }));
          byPack.get(loc.packId)!.push(b);
        }
        b.targets.push({ job, offset: w.offset });
      }
    }
    const packs = [...byPack.entries()];
    let next = 0;
    const worker = async () => {
      // After a failure no worker starts on another pack: the restore is ending.
      while (next < packs.length) {
        const [packId, blobs] = packs[next++];
        blobs.sort((a, b) => a.loc.offset - b.loc.offset);
        for (const range of coalesce(blobs)) {
          this.stopIfCancelled();
          const bytes = await this.repo.backend.get(packKey(packId), { offset: range.start, length: range.end - range.start });
          // One job decrypts and verifies the whole range on a worker thread.
          const { items } = await this.repo.pool.openBatch(
            { buffer: bytes, items: range.blobs.map((b) => ({ offset: b.loc.offset - range.start, length: b.loc.length, compression: b.loc.compression, expectId: b.loc.id })) },
            true,
          );
          for (const [i, { error, data }] of items.entries()) {
            if (error !== undefined || !data) {
              throw new IntegrityError(`pack ${packId} is damaged (${error}); ${range.blobs[i].targets[0].job.dest} cannot be restored from it`);
            }
          }
          // A range may hold thousands of small files: a bounded number are written at once.
          await mapLimit(range.blobs, WRITES_AT_ONCE, async (b, i) => {
            const data = items[i].data!;
            for (const t of b.targets) {
              await handles.with(t.job.dest, (h) => writeAll(h, data, t.offset)).catch((err: unknown) => {
                throw cannotRestore(t.job.dest, err);
              });
              this.result.bytesWritten += data.length;
              this.progress.bytesDone += data.length;
              if (--t.job.remaining === 0) await this.finishFile(t.job, handles);
            }
          });
          this.options.onProgress?.({ ...this.progress });
        }
      }
    };
    try {
      await Promise.all(
        Array.from({ length: PACKS_AT_ONCE }, () =>
          worker().catch((err: unknown) => {
            next = packs.length;
            throw err;
          }),
        ),
      );
    } finally {
      await handles.closeAll();
    }
  }

  private stopIfCancelled(): void {
    stopIfAborted(this.options.signal, `restore cancelled after ${this.progress.filesDone} of ${this.progress.filesTotal} files; the files written so far stay in ${this.root}`);
  }

  /** Decides how to write one file; returns false when it is skipped. Creates (or truncates) it. */
  private async prepareFile(job: FileJob): Promise<boolean> {
    const policy = this.options.overwrite ?? "always";
    // In a directory this restore created, nothing can be in the way: the file is
    // created by its first write (or here, when it is empty).
    if (this.createdDirs.has(path.dirname(job.dest))) {
      if (job.writes.length === 0) {
        const h = await openPatiently(job.dest, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        await this.confine(h, job.dest).finally(() => h.close());
      }
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

  /** Blobs whose bytes differ between the target file and the snapshot (delta restore). */
  private async changedBlobs(job: FileJob, st: Stats): Promise<FileJob["writes"]> {
    const changed: FileJob["writes"] = [];
    const h = await openPatiently(job.dest, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      for (const w of job.writes) {
        const loc = this.repo.lookup(Buffer.from(w.id, "hex"))!;
        if (w.offset + loc.rawLength > st.size) {
          changed.push(w);
          continue;
        }
        const buf = Buffer.allocUnsafe(loc.rawLength);
        const { bytesRead } = await h.read(buf, 0, loc.rawLength, w.offset);
        if (bytesRead !== loc.rawLength || !blobId(this.repo.idKey, buf).equals(loc.id)) changed.push(w);
      }
    } finally {
      await h.close();
    }
    return changed;
  }

  /** A file whose every blob is written: its metadata is set through the handle that wrote it, which is then closed. */
  private async finishFile(job: FileJob, handles: HandleCache): Promise<void> {
    const h = await handles.take(job.dest);
    if (h) {
      try {
        await this.setMeta(h, job.dest, job.node);
      } finally {
        await h.close();
      }
    } else await this.applyMeta(job.dest, job.node);
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
  private async applyMeta(dest: string, node: TreeNode, isLink = false): Promise<void> {
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
  private async setMeta(h: fs.FileHandle, dest: string, node: TreeNode): Promise<void> {
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
      const all = { ...job, writes: [] as FileJob["writes"] };
      let offset = 0;
      for (const id of job.node.content ?? []) {
        all.writes.push({ id, offset });
        offset += this.repo.lookup(Buffer.from(id, "hex"))!.rawLength;
      }
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
function coalesce<B extends { loc: { offset: number; length: number } }>(blobs: B[], maxGap = 1 << 20, maxRange = 24 << 20): Range<B>[] {
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

async function writeAll(h: fs.FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await h.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
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

/** Keeps a bounded number of files open for writing; a handle in use is never closed under its writer. */
class HandleCache {
  private readonly open = new Map<string, { handle: Promise<fs.FileHandle>; users: number }>();

  /** `check` runs on every handle opened; when it throws, the handle is closed and the write fails. */
  constructor(
    private readonly max: number,
    private readonly check: (h: fs.FileHandle, file: string) => Promise<void>,
  ) {}

  /** Runs `fn` with an open handle for `file`. */
  async with<T>(file: string, fn: (h: fs.FileHandle) => Promise<T>): Promise<T> {
    let entry = this.open.get(file);
    if (entry) {
      this.open.delete(file);
      this.open.set(file, entry); // most recently used last
    } else {
      // Registered before any await, so concurrent writers to the same file share one handle.
      entry = { handle: this.openChecked(file), users: 0 };
      this.open.set(file, entry);
    }
    entry.users++;
    try {
      await this.evict();
      return await fn(await entry.handle);
    } finally {
      entry.users--;
    }
  }

  private async openChecked(file: string): Promise<fs.FileHandle> {
    const h = await openPatiently(file, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      await this.check(h, file);
    } catch (err) {
      await h.close();
      throw err;
    }
    return h;
  }

  private async evict(): Promise<void> {
    for (const [file, entry] of this.open) {
      if (this.open.size <= this.max) return;
      if (entry.users > 0) continue;
      this.open.delete(file);
      await (await entry.handle).close();
    }
  }

  /** The handle open for `file`, no longer kept (the caller closes it), or undefined when none is. */
  async take(file: string): Promise<fs.FileHandle | undefined> {
    const entry = this.open.get(file);
    if (!entry) return undefined;
    this.open.delete(file);
    return entry.handle;
  }

  async closeAll(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map(async (e) => (await e.handle).close()));
  }
}

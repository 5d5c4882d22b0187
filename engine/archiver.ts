import { closeSync, constants, fstatSync, lstatSync, openSync, promises as fs, readlinkSync, realpathSync, type BigIntStats } from "node:fs";
import { hostname } from "node:os";
import * as path from "node:path";
import { BlobType } from "./blob-index.js";
import { openPatiently, outOfDescriptors } from "./descriptors.js";
import { CairnError } from "./errors.js";
import { pageHash, pageLocations, PageMapBuilder, PAGE_HASH_BYTES, type PageMap } from "./pagemap.js";
import { PathPatterns } from "./pathmatch.js";
import { closeAll, GREW, UNREADABLE, type ReadSealResult } from "./read-seal.js";
import { release } from "./release.js";
import type { Repository } from "./repository.js";
import { safeUser } from "./keyring.js";
import { sameSet, loadSnapshots, type Snapshot, type SnapshotEntry, type SnapshotSource, type SnapshotSummary } from "./snapshot.js";
import { decodeTree, isSafeName, saveTree, type NodeType, type Tree, type TreeNode } from "./tree.js";

export const PROGRAM = "cairn 0.1.0";

/**
 * Files up to this size are opened (and judged, see BackupOptions.refuse) with
 * synchronous calls on the main thread, then read whole, closed, hashed and sealed on
 * a codec thread, READ_BATCH files a job (CodecPool.readSeal). For a tree of small
 * files the time went to the round trips of asynchronous calls (a thread-pool hop, a
 * promise and a FileHandle for each of lstat, open, read and close), not to the
 * bytes; and once those calls were synchronous, the main thread did nearly all the
 * work alone (reads, hashes, copies) while the codec threads idled. The bound is the
 * chunker's minimum size (512 KiB by default), below which a file is one chunk anyway:
 * with 64 KiB, each file between the two cost the main thread four thread-pool round
 * trips (open, readlink, read, close) awaited one after the other, and its hash and
 * copy, and a tree of source files (a few to a few hundred KiB each) left the main
 * thread waiting half the time. Bigger files are read asynchronously, chunk by chunk.
 */
const SMALL_FILE_MAX = 512 * 1024;
/** Bytes a large file is read in (see chunkStream). */
const READ_STEP = 1024 * 1024;
/** The part of the chunk buffer reads go into while no chunk outgrows it (see chunkStream). */
const READ_WINDOW = 4 * 1024 * 1024;
/**
 * Small files per readSeal job, and jobs under way at once: the walk keeps at most
 * READ_BATCH * (READS_IN_FLIGHT + 1) descriptors open for them (160), whatever the tree.
 */
const READ_BATCH = 32;
const READS_IN_FLIGHT = 4;
/** A readSeal job is sent once its files (by their lstat sizes) reach this many bytes: the bytes a job holds stay bounded, whatever the files' sizes. */
const READ_BATCH_BYTES = 2 * 1024 * 1024;
/**
 * The synchronous walk gives the event loop a turn every this many entries, so pack
 * uploads progress, progress reports and heartbeats go out and a cancellation is seen
 * while a large directory is walked (a few milliseconds of small files).
 */
const YIELD_EVERY = 64;

/**
 * Bytes of a page-mapped file's super-block: the pages stored as one blob when they
 * are new, and the most changed pages gathered into one blob by a later backup.
 * 256 KiB is large enough that the per-blob costs (hash, envelope, index entry,
 * lookup, write) vanish next to the bytes, and small enough to go to a codec thread
 * without holding much in flight.
 */
const SUPER_BLOCK = 256 * 1024;
/**
 * A super-block whose pages would come from more blobs than this (earlier backups'
 * super-blocks and the changed pages gathered since) is stored whole again, so a
 * long chain of backups does not leave a restore reading a little of many blobs.
 */
const MAX_SOURCES = 4;

/** A small file opened by the walk, waiting to be read by a codec thread. */
interface QueuedRead {
  fd: number;
  full: string;
  node: TreeNode;
  prev?: TreeNode;
}

/** Files for one readSeal job; `done` resolves once their nodes are complete (or dropped). */
interface ReadBatch {
  items: QueuedRead[];
  /** Their sizes when they were stat'ed. */
  bytes: number;
  done: Promise<void>;
  resolve(): void;
}

/** Progress of a running backup, reported a few times a second. */
export interface BackupProgress {
  phase: "scanning" | "saving" | "finishing";
  filesDone: number;
  bytesDone: number;
  /** Known once the concurrent scan has finished; until then 0. */
  filesTotal: number;
  bytesTotal: number;
  currentPath?: string;
}

export interface SourceError {
  path: string;
  message: string;
}

export interface BackupOptions {
  paths: string[];
  excludes?: string[];
  tags?: string[];
  host?: string;
  /** Snapshot id to compare against; when absent, the latest with the same host and paths. */
  parent?: string;
  /** Re-read every file even when its metadata is unchanged. */
  force?: boolean;
  /** Run a concurrent scan to know totals for an ETA. */
  estimate?: boolean;
  onProgress?: (p: BackupProgress) => void;
  signal?: AbortSignal;
  time?: Date;
  /** Recorded in the snapshot as `source` (what a database source knows about its backup). */
  source?: SnapshotSource;
  /**
   * Says why an entry must not be read (undefined when it may be), given the real
   * path of each directory before it is listed and of each file once it is open
   * (links resolved, so a directory swapped for a link is judged where it leads)
   * and its device and inode. A refused entry is left out and reported like an
   * unreadable one.
   */
  refuse?: (realPath: string, id: { dev: bigint; ino: bigint }) => string | undefined;
}

/**
 * One entry a source (sources/) yields: a path below the snapshot root and, for a
 * file, its bytes. Entries may come in any order; missing parent directories are
 * created (mode 0700).
 */
export interface SourceEntry {
  /** Slash-separated path below the snapshot root, such as `pgdata/base/5/1259`. */
  path: string;
  type: "file" | "dir" | "symlink";
  mode: number;
  uid?: number;
  gid?: number;
  /** Modification time, milliseconds since the epoch. */
  mtime?: number;
  linktarget?: string;
  /** A file's bytes, read to the end before the next entry is asked for. */
  content?: AsyncIterable<Uint8Array>;
  /**
   * Cut the content at fixed offsets of this many bytes instead of content-defined
   * boundaries: database pages change in place, so a changed page costs one block
   * rather than the megabyte chunk around it.
   */
  blockSize?: number;
  /**
   * With blockSize, in a repository of format version 2 or later: store the file
   * page-mapped (engine/pagemap.ts), in super-blocks of pages, comparing it page by
   * page with `previous` (the same file in the source's previous backup) so that
   * only changed pages are stored again.
   */
  pageMapped?: { previous?: TreeNode };
}

interface BuiltDir {
  node?: TreeNode;
  children: Map<string, BuiltDir | TreeNode>;
}

export interface BackupResult {
  id: string;
  snapshot: Snapshot;
  errors: SourceError[];
}

/** Reads bytes into buf[offset, offset+length); returns how many were read, 0 at the end. */
type Fill = (buf: Buffer, offset: number, length: number) => Promise<number>;

/**
 * Stores files, directories and streams into a repository. Unchanged files (same
 * size, mtime, ctime and inode as in the parent snapshot) are not read again.
 */
export class Archiver {
  private readonly buf: Buffer;
  /** For files that grew past SMALL_FILE_MAX between their lstat and their read (made when one does). */
  private spareBuf?: Buffer;
  /** Grown files are read one after the other, in spareBuf. */
  private grown: Promise<unknown> = Promise.resolve();
  private readBatch?: ReadBatch;
  private readonly reading = new Set<Promise<void>>();
  /** The first failure of work running beside the walk (reads, tree saves); the walk stops with it. */
  private failure?: unknown;
  /** Files a directory listed that could not be read after all: left out of its tree. */
  private readonly dropped = new WeakSet<TreeNode>();
  private sinceYield = 0;
  private pageBuf?: Buffer;
  private readonly isExcluded: (p: string) => boolean;
  private readonly summary: SnapshotSummary = {
    filesNew: 0, filesChanged: 0, filesUnmodified: 0, dirs: 0, totalBytes: 0, bytesRead: 0,
    dataBlobsAdded: 0, treeBlobsAdded: 0, dataAdded: 0, dataAddedPacked: 0, errors: 0, durationSeconds: 0,
  };
  readonly errors: SourceError[] = [];
  private readonly progress: BackupProgress = { phase: "saving", filesDone: 0, bytesDone: 0, filesTotal: 0, bytesTotal: 0 };
  private lastReport = 0;
  private readonly packedAtStart: number;

  constructor(private readonly repo: Repository, private readonly options: Omit<BackupOptions, "paths"> = {}) {
    this.packedAtStart = repo.packBytesWritten;
    this.buf = Buffer.allocUnsafe(repo.chunker.maxSize * 2);
    const excludes = new PathPatterns(options.excludes);
    this.isExcluded = (p) => excludes.matches(p);
  }

  /** Backs up filesystem paths into a new snapshot. */
  async backup(paths: string[]): Promise<BackupResult> {
    if (!paths.length) throw new CairnError("nothing to back up: give at least one path");
    const started = Date.now();
    const abs = [...new Set(paths.map((p) => path.resolve(p)))].sort();
    for (const p of abs) {
      try {
        await fs.lstat(p);
      } catch (err) {
        throw new CairnError(`cannot back up ${p}: ${(err as Error).message}; check that the path exists and is readable`);
      }
    }
    const host = this.options.host ?? hostname();
    const parent = await this.findParent(host, abs);
    if (this.options.estimate) void this.scan(abs);
    let tree: string;
    try {
      tree = await this.saveVirtual(buildTrie(abs), "/", parent?.tree);
    } finally {
      // Files opened for a job that was never sent (the walk stopped): release them.
      if (this.readBatch) closeAll(this.readBatch.items.map((i) => i.fd));
      this.readBatch = undefined;
    }
    return this.finish(tree, { paths: abs, host, parent: parent?.id, started });
  }

  /** Backs up one stream (stdin or a command's output) as a single file in a new snapshot. */
  async backupStream(source: AsyncIterable<Uint8Array>, filename: string, mode = 0o600): Promise<BackupResult> {
    if (!filename || filename.includes("/") || filename === "." || filename === "..") {
      throw new CairnError(`--stdin-filename must be a plain file name, got ${JSON.stringify(filename)}`);
    }
    const started = Date.now();
    const host = this.options.host ?? hostname();
    const { content, size } = await this.chunkStream(streamFill(source));
    const now = BigInt(Date.now()) * 1_000_000n;
    const node: TreeNode = {
      name: filename, type: "file", mode, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0,
      mtime: now.toString(), ctime: now.toString(), inode: "0", device: "0", links: 1, size, content,
    };
    this.summary.filesNew++;
    this.summary.totalBytes += size;
    const tree = await this.saveTreeCounted({ nodes: [node] });
    return this.finish(tree, { paths: [`/${filename}`], host, started });
  }

  /**
   * Backs up the entries a source yields (a database's files, a dump's tables) into
   * a new snapshot whose `paths` are `paths`; `options.source` describes it.
   */
  async backupEntries(entries: AsyncIterable<SourceEntry>, paths: string[]): Promise<BackupResult> {
    const started = Date.now();
    const host = this.options.host ?? hostname();
    const root: BuiltDir = { children: new Map() };
    for await (const e of entries) {
      this.checkAbort();
      const parts = e.path.split("/").filter(Boolean);
      if (!parts.length || !parts.every(isSafeName)) throw new CairnError(`the source gave an unsafe path ${JSON.stringify(e.path)}; nothing was stored`);
      let dir = root;
      for (const part of parts.slice(0, -1)) {
        let next = dir.children.get(part);
        if (!next || !("children" in next)) dir.children.set(part, (next = { node: entryNode(part, { path: part, type: "dir", mode: 0o700 }), children: new Map() }));
        dir = next;
      }
      const name = parts[parts.length - 1];
      const node = entryNode(name, e);
      if (e.type === "dir") {
        const existing = dir.children.get(name);
        if (existing && "children" in existing) existing.node = node;
        else dir.children.set(name, { node, children: new Map() });
        continue;
      }
      if (e.type === "file") {
        this.progress.currentPath = e.path;
        const fill = streamFill(e.content ?? emptySource());
        if (e.blockSize && e.pageMapped && this.repo.config.version >= 2) {
          const { content, size, pages } = await this.pageMappedStream(fill, e.blockSize, e.pageMapped.previous);
          Object.assign(node, { content, size, pages });
        } else {
          const { content, size } = await this.chunkStream(fill, e.blockSize);
          node.content = content;
          node.size = size;
        }
        this.summary.filesNew++;
        this.summary.totalBytes += node.size!;
        this.progress.filesDone++;
        this.report("saving");
      } else node.linktarget = e.linktarget ?? "";
      dir.children.set(name, node);
    }
    const tree = await this.saveBuilt(root);
    return this.finish(tree, { paths, host, started });
  }

  private async saveBuilt(dir: BuiltDir): Promise<string> {
    const nodes: TreeNode[] = [];
    for (const child of dir.children.values()) {
      if ("children" in child) {
        const node = child.node!;
        node.subtree = await this.saveBuilt(child);
        this.summary.dirs++;
        nodes.push(node);
      } else nodes.push(child);
    }
    return this.saveTreeCounted({ nodes });
  }

  private async finish(tree: string, meta: { paths: string[]; host: string; parent?: string; started: number }): Promise<BackupResult> {
    this.report("finishing", true);
    await this.repo.flush();
    // Every pack this backup wrote, not only those the flush wrote: the summary says what the run stored.
    this.summary.dataAddedPacked = this.repo.packBytesWritten - this.packedAtStart;
    this.summary.errors = this.errors.length;
    this.summary.durationSeconds = (Date.now() - meta.started) / 1000;
    const snapshot: Snapshot = {
      time: (this.options.time ?? new Date()).toISOString(),
      host: meta.host,
      username: safeUser(),
      paths: meta.paths,
      tags: this.options.tags ?? [],
      tree,
      ...(meta.parent ? { parent: meta.parent } : {}),
      ...(this.options.excludes?.length ? { excludes: this.options.excludes } : {}),
      program: PROGRAM,
      summary: this.summary,
      ...(this.options.source ? { source: this.options.source } : {}),
    };
    const id = await this.repo.saveJSON("snapshots", snapshot);
    return { id, snapshot, errors: this.errors };
  }

  private async findParent(host: string, paths: string[]): Promise<SnapshotEntry | undefined> {
    if (this.options.force) return undefined;
    const all = await loadSnapshots(this.repo);
    if (this.options.parent) {
      const p = all.find((s) => s.id.startsWith(this.options.parent!));
      if (!p) throw new CairnError(`parent snapshot ${this.options.parent} not found; list them with "cairn snapshots"`);
      return p;
    }
    const same = all.filter((s) => s.host === host && sameSet(s.paths, paths));
    return same[same.length - 1];
  }

  private checkAbort(): void {
    if (this.options.signal?.aborted) throw new CairnError("backup cancelled; no snapshot was written");
    if (this.failure) throw this.failure;
  }

  /** Keeps the first failure of work running beside the walk; the returned promise never rejects. */
  private settle(job: Promise<unknown>): Promise<void> {
    return job.then(
      () => undefined,
      (err: unknown) => {
        this.failure ??= err;
      },
    );
  }

  private report(phase: BackupProgress["phase"], force = false): void {
    if (!this.options.onProgress) return;
    const now = Date.now();
    if (!force && now - this.lastReport < 200) return;
    this.lastReport = now;
    this.progress.phase = phase;
    this.options.onProgress({ ...this.progress });
  }

  private async scan(roots: string[]): Promise<void> {
    let files = 0;
    let bytes = 0;
    const walk = async (p: string): Promise<void> => {
      const st = await fs.lstat(p).catch(() => undefined);
      if (!st) return;
      if (st.isDirectory()) {
        const names = await fs.readdir(p).catch(() => [] as string[]);
        for (const n of names) {
          const c = path.join(p, n);
          if (!this.isExcluded(c)) await walk(c);
        }
      } else if (st.isFile()) {
        files++;
        bytes += st.size;
      }
    };
    for (const r of roots) await walk(r);
    this.progress.filesTotal = files;
    this.progress.bytesTotal = bytes;
  }

  /** Saves the directories leading down to the backed-up paths (e.g. /home and /home/me for /home/me/docs). */
  private async saveVirtual(trie: Trie, dir: string, parentTree?: string): Promise<string> {
    const parent = parentTree ? await this.loadParentTree(parentTree) : undefined;
    const nodes: TreeNode[] = [];
    for (const [name, child] of trie.children) {
      const full = path.join(dir, name);
      const prev = parent?.get(name);
      if (child.leaf) {
        const node = await this.saveEntry(full, name, prev);
        if (node) nodes.push(node);
      } else {
        const st = await fs.lstat(full, { bigint: true });
        const node = nodeFromStat(name, "dir", st);
        node.subtree = await this.saveVirtual(child, full, prev?.type === "dir" ? prev.subtree : undefined);
        nodes.push(node);
      }
    }
    return this.saveTreeCounted({ nodes });
  }

  /**
   * The parent snapshot's entries of one directory. Each parent tree is read once per
   * backup, so none is kept: a cache of parsed trees held every node of the parent
   * snapshot in memory until the end of the run.
   */
  private async loadParentTree(id: string): Promise<Map<string, TreeNode> | undefined> {
    try {
      const tree = decodeTree(await this.repo.loadBlob(Buffer.from(id, "hex")), id);
      return new Map(tree.nodes.map((n) => [n.name, n]));
    } catch {
      return undefined; // a damaged parent only costs re-reading
    }
  }

  private async saveTreeCounted(tree: Tree): Promise<string> {
    const { id, added } = await saveTree(this.repo, tree);
    if (added) this.summary.treeBlobsAdded++;
    return id;
  }

  /**
   * Saves one filesystem entry; returns undefined when it is excluded or unreadable.
   * With `waits`, a file's content or a directory's subtree may be completed later
   * (small files are read on codec threads): the promise of that is added to `waits`,
   * and the node is dropped from its directory (see `dropped`) if the file turns out
   * unreadable. Without it, the node is complete when this returns.
   */
  private async saveEntry(full: string, name: string, prev?: TreeNode, stat?: BigIntStats | Error, waits?: Promise<void>[]): Promise<TreeNode | undefined> {
    this.checkAbort();
    let st: BigIntStats;
    try {
      if (stat instanceof Error) throw stat;
      st = stat ?? (await fs.lstat(full, { bigint: true }));
    } catch (err) {
      this.fail(full, err);
      return undefined;
    }
    const type = nodeType(st);
    const node = nodeFromStat(name, type, st);
    switch (type) {
      case "dir": {
        let names: string[];
        try {
          const why = this.options.refuse?.(await fs.realpath(full), st);
          if (why) throw new Error(why);
          names = await fs.readdir(full);
        } catch (err) {
          this.fail(full, err);
          return undefined;
        }
        names.sort();
        const parent = prev?.type === "dir" && prev.subtree ? await this.loadParentTree(prev.subtree) : undefined;
        const nodes: TreeNode[] = [];
        const inner: Promise<void>[] = [];
        const children = names.map((n) => ({ name: n, full: path.join(full, n) })).filter((c) => !this.isExcluded(c.full));
        for (const c of children) {
          await this.yieldSometimes();
          let st: BigIntStats | Error;
          try {
            st = lstatSync(c.full, { bigint: true });
          } catch (err) {
            st = err as Error;
          }
          const saved = await this.saveEntry(c.full, c.name, parent?.get(c.name), st, inner);
          if (saved) nodes.push(saved);
        }
        this.summary.dirs++;
        // The tree is saved once every file in it has been read; the walk goes on meanwhile.
        const saved = this.settle(
          Promise.all(inner).then(async () => {
            if (this.failure) return;
            node.subtree = await this.saveTreeCounted({ nodes: nodes.filter((n) => !this.dropped.has(n)) });
          }),
        );
        if (waits) waits.push(saved);
        else await this.drain(saved);
        return node;
      }
      case "file":
        return this.saveFile(full, node, st, prev, waits);
      case "symlink":
        try {
          node.linktarget = await fs.readlink(full);
        } catch (err) {
          this.fail(full, err);
          return undefined;
        }
        return node;
      default:
        node.rdev = Number(st.rdev);
        return node;
    }
  }

  /** Same size, mtime, ctime and inode as in the parent snapshot, whose blobs the repository still has: not read again. */
  private unchanged(prev: TreeNode | undefined, node: TreeNode, st: BigIntStats): prev is TreeNode & { content: string[] } {
    return Boolean(
      prev && !this.options.force && prev.type === "file" && prev.content &&
        prev.size === Number(st.size) && prev.mtime === node.mtime && prev.ctime === node.ctime && prev.inode === node.inode &&
        prev.content.every((id) => this.repo.hasBlob(Buffer.from(id, "hex"))),
    );
  }

  /** Lets the event loop run once the synchronous walk has gone through YIELD_EVERY entries. */
  private async yieldSometimes(): Promise<void> {
    if (++this.sinceYield < YIELD_EVERY) return;
    this.sinceYield = 0;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /**
   * Opens a small file for a codec thread to read, checked like any other file:
   * opened without following a link, judged by options.refuse on what was opened.
   * O_NONBLOCK (no effect on a regular file) keeps a file swapped for a FIFO since its
   * lstat from blocking the whole process in open. Undefined when no file descriptor
   * is free right now: the ordinary (patient, asynchronous) path reads it then.
   */
  private openSmall(full: string): number | Error | undefined {
    let fd: number;
    try {
      fd = openSync(full, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      return outOfDescriptors(err) ? undefined : (err as Error);
    }
    if (this.options.refuse) {
      let why: string | undefined;
      try {
        why = this.options.refuse(realPathOfFd(fd, full), fstatSync(fd, { bigint: true }));
      } catch (err) {
        why = (err as Error).message;
      }
      if (why) {
        closeSync(fd);
        return new Error(why);
      }
    }
    return fd;
  }

  private async saveFile(full: string, node: TreeNode, st: BigIntStats, prev?: TreeNode, waits?: Promise<void>[]): Promise<TreeNode | undefined> {
    this.progress.currentPath = full;
    if (this.unchanged(prev, node, st)) {
      node.content = prev.content;
      node.size = prev.size;
      this.summary.filesUnmodified++;
      this.progress.bytesDone += node.size!;
      this.counted(node);
      return node;
    }
    if (st.size <= this.smallLimit) {
      const fd = this.openSmall(full);
      if (fd instanceof Error) {
        this.fail(full, fd);
        return undefined;
      }
      if (fd !== undefined) {
        const done = this.queueRead({ fd, full, node, prev }, Number(st.size));
        if (this.readBatch!.items.length >= READ_BATCH || this.readBatch!.bytes >= READ_BATCH_BYTES) await this.sendReads();
        if (waits) {
          if (waits[waits.length - 1] !== done) waits.push(done);
          return node;
        }
        await this.drain(done);
        return this.dropped.has(node) ? undefined : node;
      }
      // Out of descriptors: let the files already opened be read and closed first.
      await this.sendReads();
    }
    if (!(await this.readOrdinary(full, node, this.buf))) return undefined;
    if (prev) this.summary.filesChanged++;
    else this.summary.filesNew++;
    this.counted(node);
    return node;
  }

  /** The largest file read by a codec thread (readSeal): one blob, within the chunker's minimum size. */
  private get smallLimit(): number {
    return Math.min(SMALL_FILE_MAX, this.repo.chunker.minSize);
  }

  /** Counts a file whose node is complete. */
  private counted(node: TreeNode): void {
    this.summary.totalBytes += node.size!;
    this.progress.filesDone++;
    this.report("saving");
  }

  /**
   * Reads a file the ordinary way (asynchronous, chunk by chunk, in `buf`) into
   * node.content and node.size; false when it could not be read (the error is
   * recorded). Repository failures and cancellation are thrown.
   */
  private async readOrdinary(full: string, node: TreeNode, buf: Buffer): Promise<boolean> {
    let handle;
    try {
      handle = await openPatiently(full, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      this.fail(full, err);
      return false;
    }
    const why = this.options.refuse && (await this.refusalOf(handle, full).catch((err: Error) => err.message));
    if (why) {
      await handle.close();
      this.fail(full, new Error(why));
      return false;
    }
    try {
      const h = handle;
      const { content, size } = await this.chunkStream((b, off, len) => h.read(b, off, len, null).then((r) => r.bytesRead), undefined, buf);
      node.content = content;
      node.size = size;
      return true;
    } catch (err) {
      if (err instanceof CairnError) throw err;
      if ((err as NodeJS.ErrnoException).code && !isRepositoryError(err)) {
        this.fail(full, err);
        return false;
      }
      throw err;
    } finally {
      await handle.close();
    }
  }

  /** Adds an opened small file to the next readSeal job; returns the promise of that job's end. */
  private queueRead(item: QueuedRead, bytes: number): Promise<void> {
    let batch = this.readBatch;
    if (!batch) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => (resolve = r));
      batch = this.readBatch = { items: [], bytes: 0, done, resolve };
    }
    batch.items.push(item);
    batch.bytes += bytes;
    return batch.done;
  }

  /** Sends the files queued so far to a codec thread, once fewer than READS_IN_FLIGHT jobs are under way. */
  private async sendReads(): Promise<void> {
    const batch = this.readBatch;
    if (!batch) return;
    this.readBatch = undefined;
    while (this.reading.size >= READS_IN_FLIGHT) await Promise.race(this.reading);
    const job: Promise<void> = this.settle(
      this.repo.pool
        .readSeal({ fds: batch.items.map((i) => i.fd), limit: this.smallLimit, compression: this.repo.compression })
        .then((result) => this.finishReads(batch.items, result)),
    ).finally(() => {
      this.reading.delete(job);
      batch.resolve();
    });
    this.reading.add(job);
  }

  /** Sends what is queued, waits for `done` and throws the first failure of the work beside the walk. */
  private async drain(done: Promise<void>): Promise<void> {
    await this.sendReads();
    await done;
    if (this.failure) throw this.failure;
  }

  /** Completes the nodes of a readSeal job: stores the new blobs, counts, records the files that could not be read. */
  private async finishReads(items: QueuedRead[], r: ReadSealResult): Promise<void> {
    try {
      await this.completeReads(items, r);
    } finally {
      // Each envelope was copied into its pack (saveSealed): the job's buffers are dead.
      release(r.envelope);
      release(r.ids);
    }
  }

  private async completeReads(items: QueuedRead[], r: ReadSealResult): Promise<void> {
    let at = 0;
    for (const [i, { full, node, prev }] of items.entries()) {
      const size = r.sizes[i];
      const envelope = r.envelope.subarray(at, (at += r.lengths[i]));
      if (size === UNREADABLE) {
        this.fail(full, new Error(r.errors[i] ?? "unreadable"));
        this.dropped.add(node);
        continue;
      }
      if (size === GREW) {
        // Grown since its lstat: read it the ordinary way, in a buffer of its own.
        const read = (this.grown = this.grown.then(() => this.readOrdinary(full, node, (this.spareBuf ??= Buffer.allocUnsafe(this.buf.length)))));
        if (!(await read)) {
          this.dropped.add(node);
          continue;
        }
      } else if (size === 0) {
        node.content = [];
        node.size = 0;
      } else {
        const id = Buffer.from(r.ids.subarray(i * 32, i * 32 + 32));
        if (await this.repo.saveSealed(id, envelope, r.compressions[i], size)) {
          this.summary.dataBlobsAdded++;
          this.summary.dataAdded += size;
        }
        node.content = [id.toString("hex")];
        node.size = size;
        this.summary.bytesRead += size;
        this.progress.bytesDone += size;
      }
      if (prev) this.summary.filesChanged++;
      else this.summary.filesNew++;
      this.counted(node);
    }
  }

  /** Why the file open in `handle` must not be read (options.refuse), judged on what was really opened. */
  private async refusalOf(handle: fs.FileHandle, full: string): Promise<string | undefined> {
    const real = await fs.readlink(`/proc/self/fd/${handle.fd}`).catch(() => fs.realpath(full));
    return this.options.refuse!(real, await handle.stat({ bigint: true }));
  }

  /**
   * Stores one data blob: hashes `view` where it lies and, only when the repository
   * lacks the blob, copies it into memory of its own (allocUnsafeSlow, never a slice
   * of the shared pool slab: saveBlob may hand the bytes to a codec thread) and saves
   * it, counting what was added. `view` may be reused as soon as this returns.
   */
  private async storeData(view: Buffer): Promise<Buffer> {
    const id = this.repo.blobId(view);
    if (!this.repo.hasBlob(id)) {
      const length = view.length;
      const copy = Buffer.allocUnsafeSlow(length);
      view.copy(copy);
      if (await this.repo.saveBlob(BlobType.data, copy, id)) {
        this.summary.dataBlobsAdded++;
        this.summary.dataAdded += length;
      }
    }
    return id;
  }

  /**
   * Cuts a byte source into content-defined chunks (or fixed blocks of `blockSize`) and
   * stores the new ones. Bytes are read READ_STEP at a time, and the next read is under
   * way while the bytes already there are cut, hashed and stored (the read runs on a
   * thread-pool thread; awaited one by one, the main thread idled through each). Reads go
   * on in the first READ_WINDOW bytes of `buf`; once that is full, what is left uncut moves
   * to the front: a file's reading touches about that much of `buf`, not all of it (maxSize
   * twice over, room for a chunk of maxSize still being searched plus a read).
   */
  private async chunkStream(fill: Fill, blockSize?: number, buf = this.buf): Promise<{ content: string[]; size: number }> {
    const chunker = this.repo.chunker;
    const content: string[] = [];
    let start = 0;
    let end = 0;
    let eof = false;
    let size = 0;
    let scan = { at: 0, h: 0 };
    const block = blockSize && Math.min(blockSize, buf.length);
    const window = Math.min(buf.length, READ_WINDOW);
    let ahead: Promise<number> | undefined;
    // Starts the next read after the bytes there, when it fits in the window (or, for a
    // chunk still being searched that has outgrown the window, in the buffer).
    const readAhead = () => {
      if (ahead || eof) return;
      const limit = end - start + READ_STEP > window ? buf.length : window;
      const length = Math.min(READ_STEP, limit - end);
      if (length <= 0) return;
      ahead = fill(buf, end, length);
      // Its failure is thrown where it is awaited; until then it must not count as unhandled
      // (Node ends the process on an unhandled rejection).
      ahead.catch(() => undefined);
    };
    try {
      for (;;) {
        if (start === end && eof) break;
        readAhead();
        const cut = block ? (end - start >= block ? start + block : eof ? end : -1) : chunker.cut(buf, start, end, eof, scan);
        if (cut === -1) {
          if (!ahead) {
            // No room after the bytes still to cut: move them to the front (only these move).
            buf.copyWithin(0, start, end);
            end -= start;
            start = 0;
            continue;
          }
          const n = await ahead;
          ahead = undefined;
          if (n === 0) eof = true;
          end += n;
          this.summary.bytesRead += n;
          this.progress.bytesDone += n;
          continue;
        }
        const length = cut - start;
        const id = await this.storeData(buf.subarray(start, cut));
        content.push(id.toString("hex"));
        size += length;
        start = cut;
        scan = { at: 0, h: 0 };
        this.checkAbort();
        this.report("saving");
      }
    } finally {
      // A read still under way writes into `buf` and uses the caller's file handle.
      if (ahead) await ahead.catch(() => 0);
    }
    return { content, size };
  }

  /**
   * Stores a file of fixed-size pages page-mapped: each super-block is hashed page by
   * page; pages equal to the previous backup's (same keyed hash, blob still stored)
   * are pointed at where that backup stored them, changed pages are gathered into
   * new super-blocks. A super-block with no previous backup, with more than half its
   * pages changed, or drawn from too many blobs is stored whole.
   */
  private async pageMappedStream(fill: Fill, pageSize: number, previous?: TreeNode): Promise<{ content: string[]; size: number; pages: PageMap }> {
    const prev = previous ? pageLocations(previous) : undefined;
    const perBlock = Math.max(1, Math.floor(SUPER_BLOCK / pageSize));
    const window = perBlock * pageSize;
    const buf = this.pageBuf && this.pageBuf.length >= window ? this.pageBuf : (this.pageBuf = Buffer.allocUnsafe(window));
    const idKey = this.repo.idKey;
    const stored = new Map<string, boolean>();
    const isStored = (id: string) => {
      let v = stored.get(id);
      if (v === undefined) stored.set(id, (v = this.repo.hasBlob(Buffer.from(id, "hex"))));
      return v;
    };
    // Where each page went: a blob id, or the number of a gathering blob not yet stored.
    const blobOf: (string | number)[] = [];
    const pageIn: number[] = [];
    const hashes: Buffer[] = [];
    const gatheredIds: string[] = [];
    let gathered: Buffer[] = [];
    const store = async (data: Buffer): Promise<string> => (await this.storeData(data)).toString("hex");
    const storeGathered = async () => {
      if (!gathered.length) return;
      gatheredIds.push(await store(Buffer.concat(gathered)));
      gathered = [];
    };
    let size = 0;
    let eof = false;
    while (!eof) {
      let n = 0;
      while (n < window) {
        const got = await fill(buf, n, window - n);
        if (got === 0) {
          eof = true;
          break;
        }
        n += got;
        this.summary.bytesRead += got;
        this.progress.bytesDone += got;
      }
      if (n === 0) break;
      const first = blobOf.length;
      const count = Math.ceil(n / pageSize);
      const changed: boolean[] = [];
      const sources = new Set<string>();
      let changes = 0;
      for (let k = 0; k < count; k++) {
        const h = pageHash(idKey, buf.subarray(k * pageSize, Math.min(n, (k + 1) * pageSize)));
        hashes.push(h);
        const i = first + k;
        const same = prev !== undefined && i < prev.blob.length && h.equals(prev.hashes.subarray(i * PAGE_HASH_BYTES, (i + 1) * PAGE_HASH_BYTES)) && isStored(prev.blob[i]);
        changed.push(!same);
        if (same) sources.add(prev.blob[i]);
        else changes++;
      }
      if (!prev || changes * 2 > count || sources.size + (changes ? 1 : 0) > MAX_SOURCES) {
        const id = await store(buf.subarray(0, n));
        for (let k = 0; k < count; k++) {
          blobOf.push(id);
          pageIn.push(k);
        }
      } else {
        for (let k = 0; k < count; k++) {
          if (!changed[k]) {
            blobOf.push(prev.blob[first + k]);
            pageIn.push(prev.page[first + k]);
            continue;
          }
          blobOf.push(gatheredIds.length);
          pageIn.push(gathered.length);
          gathered.push(Buffer.from(buf.subarray(k * pageSize, Math.min(n, (k + 1) * pageSize))));
          if (gathered.length === perBlock) await storeGathered();
        }
      }
      size += n;
      this.checkAbort();
      this.report("saving");
    }
    await storeGathered();
    const map = new PageMapBuilder(pageSize);
    for (let i = 0; i < blobOf.length; i++) {
      const b = blobOf[i];
      map.add(map.blobIndex(typeof b === "number" ? gatheredIds[b] : b), pageIn[i], hashes[i]);
    }
    return { content: map.content, size, pages: map.finish() };
  }

  private fail(p: string, err: unknown): void {
    this.errors.push({ path: p, message: (err as Error).message });
  }
}

async function* emptySource(): AsyncIterable<Uint8Array> {}

/** What the descriptor `fd` really opened (links resolved), or `full` resolved when /proc is not there. */
function realPathOfFd(fd: number, full: string): string {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return realpathSync(full);
  }
}

function entryNode(name: string, e: SourceEntry): TreeNode {
  const ns = (BigInt(Math.round(e.mtime ?? Date.now())) * 1_000_000n).toString();
  return {
    name, type: e.type, mode: e.mode & 0o7777, uid: e.uid ?? process.getuid?.() ?? 0, gid: e.gid ?? process.getgid?.() ?? 0,
    mtime: ns, ctime: ns, inode: "0", device: "0", links: 1,
  };
}

function isRepositoryError(err: unknown): boolean {
  return (err as Error)?.name === "BackendError";
}

function streamFill(source: AsyncIterable<Uint8Array>): Fill {
  const it = source[Symbol.asyncIterator]();
  let pending: Uint8Array | undefined;
  let done = false;
  return async (buf, offset, length) => {
    let n = 0;
    while (n < length && !done) {
      if (!pending || pending.byteLength === 0) {
        const r = await it.next();
        if (r.done) {
          done = true;
          break;
        }
        pending = r.value;
        continue;
      }
      const take = Math.min(length - n, pending.byteLength);
      Buffer.from(pending.buffer, pending.byteOffset, take).copy(buf, offset + n);
      pending = pending.subarray(take);
      n += take;
      if (n > 0 && (!pending || pending.byteLength === 0)) break;
    }
    return n;
  };
}

interface Trie {
  leaf: boolean;
  children: Map<string, Trie>;
}

/** Turns absolute paths into a tree of their components; a path inside another one is covered by it. */
function buildTrie(paths: string[]): Trie {
  const root: Trie = { leaf: false, children: new Map() };
  for (const p of paths) {
    const parts = p.split("/").filter(Boolean);
    let node = root;
    let covered = false;
    for (const part of parts) {
      if (node.leaf) {
        covered = true;
        break;
      }
      let next = node.children.get(part);
      if (!next) node.children.set(part, (next = { leaf: false, children: new Map() }));
      node = next;
    }
    if (!covered) {
      node.leaf = true;
      node.children.clear();
    }
  }
  if (root.leaf) throw new CairnError("backing up / itself is not supported yet; name the directories under it");
  return root;
}

function nodeType(st: BigIntStats): NodeType {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  if (st.isCharacterDevice()) return "chardev";
  return "blockdev";
}

function nodeFromStat(name: string, type: NodeType, st: BigIntStats): TreeNode {
  return {
    name,
    type,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: st.mtimeNs.toString(),
    ctime: st.ctimeNs.toString(),
    inode: st.ino.toString(),
    device: st.dev.toString(),
    links: Number(st.nlink),
  };
}

import { promises as fs, type Stats } from "node:fs";
import * as path from "node:path";
import { CairnError, stopIfAborted } from "./errors.js";
import type { Piece } from "./pagemap.js";
import type { Repository } from "./repository.js";
import type { TreeNode } from "./tree.js";

/** What every part of a restore shares: its options, its target, what it has done so far. */

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
  /** Files planned and restored together (default FILE_BATCH in restore-walk.ts; tests use small batches). */
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
export type FileNode = Pick<TreeNode, "name" | "mode" | "uid" | "gid" | "mtime" | "size" | "content" | "pages">;

/** One file to restore. */
export interface FileJob {
  dest: string;
  node: FileNode;
  /** Stretches of blobs to write, at `offset` in the file; all of the file's unless the restore is a delta. */
  writes: Piece[];
  /** Writes not yet done: the file is finished (metadata set) when this reaches 0. */
  remaining: number;
}

/** The state one restore's parts share. */
export class RestoreContext {
  readonly root: string;
  /** The target with its links resolved, known once it exists (see resolveRoot). */
  realRoot = "";
  readonly result: RestoreResult = { files: 0, dirs: 0, symlinks: 0, filesSkipped: 0, totalBytes: 0, bytesWritten: 0, deleted: [], verifyErrors: [], warnings: [] };
  readonly progress: RestoreProgress = { filesDone: 0, filesTotal: 0, bytesDone: 0, bytesTotal: 0 };
  /** Directories this restore created: nothing can be in the way inside them. */
  readonly createdDirs = new Set<string>();
  /** Owners are given only by root, and only unless the options say not to. */
  readonly chown: boolean;

  constructor(
    readonly repo: Repository,
    readonly options: RestoreOptions,
  ) {
    this.root = path.resolve(options.target);
    this.chown = process.getuid?.() === 0 && options.owners !== false;
  }

  /** Creates the target and learns where it really is. */
  async resolveRoot(): Promise<void> {
    await fs.mkdir(this.root, { recursive: true });
    this.realRoot = await fs.realpath(this.root);
  }

  insideRoot(real: string): boolean {
    return real === this.realRoot || real.startsWith(this.realRoot + path.sep);
  }

  /** The raw length of a blob the walk found in the index. */
  rawLength(id: string): number {
    return this.repo.lookup(Buffer.from(id, "hex"))!.rawLength;
  }

  stopIfCancelled(): void {
    stopIfAborted(this.options.signal, `restore cancelled after ${this.progress.filesDone} of ${this.progress.filesTotal} files; the files written so far stay in ${this.root}`);
  }
}

/** A file system error met writing `dest`, as an error that names the file and says what to do. */
export function cannotRestore(dest: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (err instanceof CairnError || !code) return err;
  const hint = code === "ENOSPC" || code === "EDQUOT" ? "; the target's disk is full: free some space or restore elsewhere" : "";
  return new CairnError(`cannot restore ${dest}: ${(err as Error).message}${hint}`);
}

export async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

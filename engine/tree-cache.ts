import type { Backend } from "../backends/backend.js";
import { IntegrityError } from "./crypto.js";
import { packKey } from "./pack.js";

/** Bytes read at once from a tree pack: the blob asked for and what lies around it. */
export const TREE_WINDOW = 512 * 1024;

interface Window {
  packId: string;
  start: number;
  end: number;
  data: Promise<Buffer>;
}

/**
 * Tree blobs read in windows of their pack, kept up to `maxBytes`, oldest dropped first.
 * A window holds the blob asked for and about half a window on either side of it, inside
 * the pack: trees are written after their subtrees, and a walk reads a tree, then its
 * subtrees (written before it), then its siblings' (written after it), so one read serves
 * the trees read next. A pack no larger than a window is read whole.
 *
 * Whole tree packs were kept before. A first backup of 200,000 files in 200 directories
 * writes its trees into one 11 MiB pack; with 512 KiB windows and four of them kept, an
 * unchanged re-backup peaked at 98-100 MiB instead of 107, a restore at 179 instead of
 * 190, at the same time. The walk reads about twice the pack's bytes on that flat tree
 * (siblings overlap two windows), 1.3x (re-backup) to 2.5x (restore) on 16,000
 * directories nested four deep.
 */
export class TreePackCache {
  /** Windows in the order they were read, the oldest first. */
  private readonly windows: Window[] = [];
  private readonly sizes = new Map<string, Promise<number>>();
  private bytes = 0;

  constructor(
    private readonly backend: Backend,
    private readonly maxBytes: number,
    private readonly window = TREE_WINDOW,
  ) {}

  /** `length` bytes at `offset` of the pack; a failed read is not kept, so the next call reads again. */
  async get(packId: string, offset: number, length: number): Promise<Buffer> {
    let w = this.find(packId, offset, length);
    if (!w) {
      const size = await this.size(packId);
      if (offset + length > size) throw new IntegrityError(`pack ${packId} is damaged: it has ${size} bytes, and the index puts a tree at ${offset}+${length}, past its end; run "cairn check"`);
      // Half a window before the blob and half after it, inside the pack: a walk reads a tree's
      // subtrees, written before it, and its siblings' subtrees, written after it.
      const span = Math.max(length, this.window);
      const start = Math.max(0, Math.min(offset - ((span - length) >> 1), size - span));
      // Another call may have read a window holding it while the size was asked for.
      w = this.find(packId, offset, length) ?? this.read(packId, start, Math.min(size, start + span));
    }
    const data = await w.data;
    return data.subarray(offset - w.start, offset - w.start + length);
  }

  private find(packId: string, offset: number, length: number): Window | undefined {
    return this.windows.find((w) => w.packId === packId && w.start <= offset && offset + length <= w.end);
  }

  private read(packId: string, start: number, end: number): Window {
    const window: Window = { packId, start, end, data: this.backend.get(packKey(packId), { offset: start, length: end - start }) };
    this.windows.push(window);
    this.bytes += end - start;
    window.data.catch(() => this.drop(window));
    while (this.bytes > this.maxBytes && this.windows.length > 1) this.drop(this.windows[0]);
    return window;
  }

  private drop(window: Window): void {
    const at = this.windows.indexOf(window);
    if (at < 0) return;
    this.windows.splice(at, 1);
    this.bytes -= window.end - window.start;
    if (!this.windows.some((w) => w.packId === window.packId)) this.sizes.delete(window.packId);
  }

  /** The pack's size, asked of the backend once while any window of it is kept. */
  private size(packId: string): Promise<number> {
    let s = this.sizes.get(packId);
    if (!s) {
      s = this.backend.stat(packKey(packId)).then((info) => info.size);
      this.sizes.set(packId, s);
      s.catch(() => this.sizes.delete(packId));
    }
    return s;
  }
}

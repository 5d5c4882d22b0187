import { createHmac } from "node:crypto";
import { IntegrityError } from "./crypto.js";
import type { TreeNode } from "./tree.js";

/**
 * Page-mapped files (format version 2, docs/format.md §11): a database file whose
 * fixed-size pages change in place is stored as super-blocks of many pages, and a
 * later backup stores only the pages that changed, gathered into new blobs, while
 * its page map points every unchanged page at the blob an earlier backup stored it
 * in. One blob per page made each page pay a hash, an envelope, an index entry and
 * a write of its own; one blob per super-block of a whole file made a handful of
 * scattered updates cost the whole file again.
 */
export interface PageMap {
  /** Bytes per page. */
  size: number;
  /**
   * Runs of pages, flattened triplets `count, blob, first`: the next `count` pages of
   * the file are pages `first`, `first + 1`, ... of blob `content[blob]`. Runs cover
   * the file in order; the last page of the file may be short.
   */
  runs: number[];
  /** Base64 of PAGE_HASH_BYTES per page: the keyed hash of each page, to tell changed pages from unchanged ones. */
  hashes: string;
}

/** Bytes of each page's keyed hash kept in a page map. */
export const PAGE_HASH_BYTES = 16;

/** Keyed hash of one page (the first PAGE_HASH_BYTES of the HMAC-SHA256 under the id key). */
export function pageHash(idKey: Buffer, page: Uint8Array): Buffer {
  return createHmac("sha256", idKey).update(page).digest().subarray(0, PAGE_HASH_BYTES);
}

/** One stretch of a file: `length` bytes at `offset` in the file are bytes `from`... of blob `id`. */
export interface Piece {
  id: string;
  offset: number;
  from: number;
  length: number;
}

/** A run of a page map reads past the end of its blob (`blob`, the full id). */
export class PageMapOverrun extends IntegrityError {
  constructor(
    file: string,
    readonly blob: string,
  ) {
    super(`the page map of ${file} reads past the end of blob ${blob.slice(0, 16)}`);
  }
}

/**
 * The pieces a file is made of, in file order: one per blob for an ordinary file
 * (its blobs concatenated, `rawLength(id)` bytes each), one per run for a
 * page-mapped file. `rawLength` is asked about every blob (it may throw for one
 * that is missing). Throws an IntegrityError when a page map does not fit the node,
 * a PageMapOverrun when a run reads past the end of its blob.
 */
export function filePieces(node: Pick<TreeNode, "name" | "size" | "content" | "pages">, rawLength: (id: string) => number): Piece[] {
  const content = node.content ?? [];
  const out: Piece[] = [];
  if (!node.pages) {
    let offset = 0;
    for (const id of content) {
      const length = rawLength(id);
      out.push({ id, offset, from: 0, length });
      offset += length;
    }
    return out;
  }
  const { size: pageSize, runs } = node.pages;
  const fileSize = node.size ?? 0;
  if (!Number.isInteger(pageSize) || pageSize <= 0 || !Array.isArray(runs) || runs.length % 3 !== 0) throw new IntegrityError(`the page map of ${node.name} is malformed`);
  let offset = 0;
  for (let r = 0; r < runs.length; r += 3) {
    const [count, blob, first] = [runs[r], runs[r + 1], runs[r + 2]];
    const id = content[blob];
    if (id === undefined || !(count > 0) || !(first >= 0)) throw new IntegrityError(`the page map of ${node.name} points outside its blobs`);
    const length = Math.min(count * pageSize, fileSize - offset);
    if (length <= 0) throw new IntegrityError(`the page map of ${node.name} runs past the end of the file`);
    out.push({ id, offset, from: first * pageSize, length });
    offset += length;
  }
  if (offset !== fileSize) throw new IntegrityError(`the page map of ${node.name} covers ${offset} bytes, the file has ${fileSize}`);
  // After the map's own shape is checked, so a map wrong in both ways is reported for its shape.
  for (const p of out) if (p.from + p.length > rawLength(p.id)) throw new PageMapOverrun(node.name, p.id);
  return out;
}

/** Where each page of a page-mapped file lives: blob id and page number in it, plus its hash. */
export interface PageLocations {
  blob: string[];
  page: number[];
  hashes: Buffer;
}

/** Expands a node's page map page by page (for comparing a new backup with it). */
export function pageLocations(node: TreeNode): PageLocations | undefined {
  if (!node.pages || node.type !== "file") return undefined;
  const content = node.content ?? [];
  const blob: string[] = [];
  const page: number[] = [];
  const runs = node.pages.runs;
  for (let r = 0; r + 2 < runs.length; r += 3) {
    for (let i = 0; i < runs[r]; i++) {
      blob.push(content[runs[r + 1]]);
      page.push(runs[r + 2] + i);
    }
  }
  const hashes = Buffer.from(node.pages.hashes, "base64");
  if (hashes.length !== blob.length * PAGE_HASH_BYTES || blob.some((b) => b === undefined)) return undefined;
  return { blob, page, hashes };
}

/** Builds a page map page by page: `add` each page's blob and page number in order, then `finish`. */
export class PageMapBuilder {
  readonly content: string[] = [];
  private readonly index = new Map<string, number>();
  private readonly runs: number[] = [];
  private readonly hashParts: Buffer[] = [];

  constructor(private readonly size: number) {}

  /** Index of `id` in content, adding it when new. */
  blobIndex(id: string): number {
    let i = this.index.get(id);
    if (i === undefined) {
      i = this.content.length;
      this.content.push(id);
      this.index.set(id, i);
    }
    return i;
  }

  add(blob: number, page: number, hash: Buffer): void {
    const r = this.runs.length - 3;
    if (r >= 0 && this.runs[r + 1] === blob && this.runs[r + 2] + this.runs[r] === page) this.runs[r]++;
    else this.runs.push(1, blob, page);
    this.hashParts.push(hash);
  }

  finish(): PageMap {
    return { size: this.size, runs: this.runs, hashes: Buffer.concat(this.hashParts).toString("base64") };
  }
}

/** What the repository knows about one stored blob. */
export interface BlobLocation {
  id: Buffer;
  type: BlobType;
  /** Position of the pack in the index's pack table. */
  pack: number;
  offset: number;
  /** Stored (encrypted) length in the pack. */
  length: number;
  /** Plaintext length after decompression. */
  rawLength: number;
  compression: number;
}

export const BlobType = { data: 0, tree: 1 } as const;
export type BlobType = (typeof BlobType)[keyof typeof BlobType];

const ENTRY = 50; // id 32, pack 4, offset 4, length 4, rawLength 4, type 1, compression 1
const PAGE_ENTRIES = 1 << 15;

/**
 * The in-memory blob index: blob id -> pack, offset, length. Built for millions of
 * blobs: entries live packed in fixed pages (50 bytes each) and an open-addressing
 * table of 32-bit slots points into them, so the cost stays near 60-75 bytes a blob
 * and there is no per-entry JavaScript object.
 */
export class BlobIndex {
  private pages: Buffer[] = [];
  private count = 0;
  private table = new Uint32Array(1 << 10);
  private mask = this.table.length - 1;

  /** Pack ids (hex), referenced by position from entries. */
  readonly packs: string[] = [];
  private readonly packPos = new Map<string, number>();

  get size(): number {
    return this.count;
  }

  /** Position of a pack id in the pack table, adding it when new. */
  packNumber(packId: string): number {
    let n = this.packPos.get(packId);
    if (n === undefined) {
      n = this.packs.length;
      this.packs.push(packId);
      this.packPos.set(packId, n);
    }
    return n;
  }

  /** Adds a blob; returns false (and keeps the first location) when the id is already known. */
  add(loc: Omit<BlobLocation, "pack"> & { pack: number | string }): boolean {
    if (this.find(loc.id) >= 0) return false;
    if ((this.count + 1) * 4 > this.table.length * 3) this.grow();
    const n = this.count++;
    const pageNo = Math.floor(n / PAGE_ENTRIES);
    if (pageNo === this.pages.length) this.pages.push(Buffer.allocUnsafe(PAGE_ENTRIES * ENTRY));
    const page = this.pages[pageNo];
    const at = (n % PAGE_ENTRIES) * ENTRY;
    loc.id.copy(page, at, 0, 32);
    const pack = typeof loc.pack === "string" ? this.packNumber(loc.pack) : loc.pack;
    page.writeUInt32LE(pack, at + 32);
    page.writeUInt32LE(loc.offset, at + 36);
    page.writeUInt32LE(loc.length, at + 40);
    page.writeUInt32LE(loc.rawLength, at + 44);
    page[at + 48] = loc.type;
    page[at + 49] = loc.compression;
    this.insertSlot(n);
    return true;
  }

  has(id: Buffer): boolean {
    return this.find(id) >= 0;
  }

  /** The type of a blob, or undefined when unknown; allocates nothing (check asks it for every blob of every file). */
  typeOf(id: Buffer): BlobType | undefined {
    const n = this.find(id);
    return n < 0 ? undefined : (this.pages[Math.floor(n / PAGE_ENTRIES)][(n % PAGE_ENTRIES) * ENTRY + 48] as BlobType);
  }

  get(id: Buffer): BlobLocation | undefined {
    const n = this.find(id);
    return n < 0 ? undefined : this.entry(n);
  }

  /** Every entry, in insertion order. */
  *entries(): IterableIterator<BlobLocation> {
    for (let n = 0; n < this.count; n++) yield this.entry(n);
  }

  /** Bytes held by this index (pages and hash table), for the memory benchmark. */
  get byteSize(): number {
    return this.pages.length * PAGE_ENTRIES * ENTRY + this.table.byteLength;
  }

  private entry(n: number): BlobLocation {
    const page = this.pages[Math.floor(n / PAGE_ENTRIES)];
    const at = (n % PAGE_ENTRIES) * ENTRY;
    return {
      id: Buffer.from(page.subarray(at, at + 32)),
      pack: page.readUInt32LE(at + 32),
      offset: page.readUInt32LE(at + 36),
      length: page.readUInt32LE(at + 40),
      rawLength: page.readUInt32LE(at + 44),
      type: page[at + 48] as BlobType,
      compression: page[at + 49],
    };
  }

  private find(id: Buffer): number {
    let slot = id.readUInt32LE(0) & this.mask;
    for (;;) {
      const v = this.table[slot];
      if (v === 0) return -1;
      const n = v - 1;
      const page = this.pages[Math.floor(n / PAGE_ENTRIES)];
      const at = (n % PAGE_ENTRIES) * ENTRY;
      if (page.compare(id, 0, 32, at, at + 32) === 0) return n;
      slot = (slot + 1) & this.mask;
    }
  }

  private insertSlot(n: number): void {
    const page = this.pages[Math.floor(n / PAGE_ENTRIES)];
    let slot = page.readUInt32LE((n % PAGE_ENTRIES) * ENTRY) & this.mask;
    while (this.table[slot] !== 0) slot = (slot + 1) & this.mask;
    this.table[slot] = n + 1;
  }

  private grow(): void {
    this.table = new Uint32Array(this.table.length * 2);
    this.mask = this.table.length - 1;
    for (let n = 0; n < this.count; n++) this.insertSlot(n);
  }
}

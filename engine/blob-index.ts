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

const ENTRY = 49; // id 32, pack 4, offset 4, length 4, rawLength 4, type (high 4 bits) and compression (low 4 bits) 1
const PAGE_ENTRIES = 1 << 15;
/** Pack ids are SHA-256 names, kept as their 32 bytes (a hex string cost about 130 bytes with its map entry). */
const PACK_ID = 32;
const PACK_HEX = /^[0-9a-f]{64}$/;

/**
 * The in-memory blob index: blob id -> pack, offset, length. Built for millions of
 * blobs: entries live packed in fixed pages (50 bytes each) and an open-addressing
 * table of 32-bit slots points into them, so the cost stays under 60 bytes a blob
 * and there is no per-entry JavaScript object. Pack ids are kept the same way: 32 bytes
 * each in one growing buffer, found through a table of their own.
 */
export class BlobIndex {
  private pages: Buffer[] = [];
  private count = 0;
  private table = new Uint32Array(1 << 10);
  private mask = this.table.length - 1;

  /** Pack ids, 32 bytes each, referenced by position from entries. */
  private packIds = Buffer.alloc(0);
  private packCount = 0;
  private packTable = new Uint32Array(1 << 8);
  private readonly packKey = Buffer.alloc(PACK_ID);

  get size(): number {
    return this.count;
  }

  /** Packs known to the index. */
  get packs(): number {
    return this.packCount;
  }

  /** The id (hex) of the pack at position `n`. */
  packId(n: number): string {
    if (!(n >= 0 && n < this.packCount)) throw new RangeError(`no pack at position ${n} in the index`);
    return this.packIds.toString("hex", n * PACK_ID, (n + 1) * PACK_ID);
  }

  /** Position of a pack id (64 hex digits) in the pack table, adding it when new. */
  packNumber(packId: string): number {
    if (!PACK_HEX.test(packId)) throw new Error(`pack id ${JSON.stringify(packId.slice(0, 80))} is not 64 lowercase hex digits`);
    const key = this.packKey;
    key.write(packId, "hex");
    const mask = this.packTable.length - 1;
    let slot = key.readUInt32LE(0) & mask;
    for (;;) {
      const v = this.packTable[slot];
      if (v === 0) break;
      if (this.packIds.compare(key, 0, PACK_ID, (v - 1) * PACK_ID, v * PACK_ID) === 0) return v - 1;
      slot = (slot + 1) & mask;
    }
    const n = this.packCount++;
    if (this.packIds.length < this.packCount * PACK_ID) {
      // Grown by a quarter (in steps of 4096 ids): doubling left up to half of it unused.
      const grown = Buffer.allocUnsafe(Math.ceil((this.packCount * 1.25) / 4096) * 4096 * PACK_ID);
      this.packIds.copy(grown);
      this.packIds = grown;
    }
    key.copy(this.packIds, n * PACK_ID);
    if (this.packCount * 4 > this.packTable.length * 3) this.growPacks();
    else this.packTable[slot] = n + 1;
    return n;
  }

  /** Adds a blob; returns false (and keeps the first location) when the id is already known. */
  add(loc: Omit<BlobLocation, "pack"> & { pack: number | string }): boolean {
    return this.addFrom(loc.id, 0, loc);
  }

  /** Like add, with the id read from `src` at `idAt` (no Buffer of its own needed); `loc.id` is ignored. */
  addFrom(src: Buffer, idAt: number, loc: Omit<BlobLocation, "pack" | "id"> & { pack: number | string }): boolean {
    if (this.find(src, idAt) >= 0) return false;
    if ((this.count + 1) * 4 > this.table.length * 3) this.grow();
    const n = this.count++;
    const pageNo = Math.floor(n / PAGE_ENTRIES);
    if (pageNo === this.pages.length) this.pages.push(Buffer.allocUnsafe(PAGE_ENTRIES * ENTRY));
    const page = this.pages[pageNo];
    const at = (n % PAGE_ENTRIES) * ENTRY;
    src.copy(page, at, idAt, idAt + 32);
    const pack = typeof loc.pack === "string" ? this.packNumber(loc.pack) : loc.pack;
    page.writeUInt32LE(pack, at + 32);
    page.writeUInt32LE(loc.offset, at + 36);
    page.writeUInt32LE(loc.length, at + 40);
    page.writeUInt32LE(loc.rawLength, at + 44);
    if (loc.compression > 15) throw new RangeError(`compression id ${loc.compression} does not fit the index`);
    page[at + 48] = (loc.type << 4) | loc.compression;
    this.insertSlot(n);
    return true;
  }

  has(id: Buffer): boolean {
    return this.find(id) >= 0;
  }

  /** The type of a blob, or undefined when unknown; allocates nothing (check asks it for every blob of every file). */
  typeOf(id: Buffer): BlobType | undefined {
    const n = this.find(id);
    return n < 0 ? undefined : ((this.pages[Math.floor(n / PAGE_ENTRIES)][(n % PAGE_ENTRIES) * ENTRY + 48] >> 4) as BlobType);
  }

  get(id: Buffer): BlobLocation | undefined {
    const n = this.find(id);
    return n < 0 ? undefined : this.entry(n);
  }

  /** Every entry, in insertion order. */
  *entries(): IterableIterator<BlobLocation> {
    for (let n = 0; n < this.count; n++) yield this.entry(n);
  }

  /** Bytes held by this index (pages, pack ids and hash tables), for the memory benchmark. */
  get byteSize(): number {
    return this.pages.length * PAGE_ENTRIES * ENTRY + this.table.byteLength + this.packIds.length + this.packTable.byteLength;
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
      type: (page[at + 48] >> 4) as BlobType,
      compression: page[at + 48] & 15,
    };
  }

  private find(id: Buffer, idAt = 0): number {
    let slot = id.readUInt32LE(idAt) & this.mask;
    for (;;) {
      const v = this.table[slot];
      if (v === 0) return -1;
      const n = v - 1;
      const page = this.pages[Math.floor(n / PAGE_ENTRIES)];
      const at = (n % PAGE_ENTRIES) * ENTRY;
      if (page.compare(id, idAt, idAt + 32, at, at + 32) === 0) return n;
      slot = (slot + 1) & this.mask;
    }
  }

  private insertSlot(n: number): void {
    const page = this.pages[Math.floor(n / PAGE_ENTRIES)];
    let slot = page.readUInt32LE((n % PAGE_ENTRIES) * ENTRY) & this.mask;
    while (this.table[slot] !== 0) slot = (slot + 1) & this.mask;
    this.table[slot] = n + 1;
  }

  private growPacks(): void {
    this.packTable = new Uint32Array(this.packTable.length * 2);
    const mask = this.packTable.length - 1;
    for (let n = 0; n < this.packCount; n++) {
      let slot = this.packIds.readUInt32LE(n * PACK_ID) & mask;
      while (this.packTable[slot] !== 0) slot = (slot + 1) & mask;
      this.packTable[slot] = n + 1;
    }
  }

  private grow(): void {
    this.table = new Uint32Array(this.table.length * 2);
    this.mask = this.table.length - 1;
    for (let n = 0; n < this.count; n++) this.insertSlot(n);
  }
}

import { BlobIndex, type BlobLocation } from "./blob-index.js";
import { mapLimit } from "./concurrency.js";
import { IntegrityError } from "./crypto.js";
import { decodeIndex, ENTRY_ID, forEachIndexPack, INDEX_ENTRY, indexEntryAt, indexSupersedes, type IndexFile } from "./index-file.js";
import type { PackEntry } from "./pack.js";

/** Index files read at once while loading. */
const INDEX_READS = 4;

/**
 * What the repository knows is stored: the blob index (blob -> pack, offset,
 * length) and the index files it was built from, without their blob lists.
 */
export class IndexStore {
  readonly blobs = new BlobIndex();
  /**
   * Index files in force (not superseded), by id. A file the load read is kept without
   * its entries (46 bytes a blob: 460 MB at ten million blobs, which a backup or a restore
   * never needs); check and prune get them back through withEntries().
   */
  readonly files = new Map<string, IndexFile>();
  /** Files in `files` whose entries are not in memory. */
  private readonly entriesDropped = new WeakSet<IndexFile>();
  /**
   * Packs that prune is about to delete. A blob indexed only in one of them counts
   * as absent, so it is stored again in a new pack: that is how prune repacks.
   */
  readonly packsBeingRemoved = new Set<string>();

  /**
   * (Re)reads the index files `ids` with `read` (which returns a file's decrypted
   * content). Superseded index files are skipped. A damaged file fails the load,
   * or with `onIndexError` is reported to it and skipped.
   */
  async load(ids: string[], read: (id: string) => Promise<Buffer>, onIndexError?: (id: string, err: IntegrityError) => void): Promise<void> {
    // Kept encoded until every file is read: decoded objects of all of them at once cost far more.
    const files = new Map<string, { encoded: Buffer; supersedes: string[] }>();
    await mapLimit(ids, INDEX_READS, async (id) => {
      try {
        const encoded = await read(id);
        files.set(id, { encoded, supersedes: indexSupersedes(encoded) });
      } catch (err) {
        if (!onIndexError || !(err instanceof IntegrityError)) throw err;
        onIndexError(id, err);
      }
    });
    const superseded = new Set<string>();
    for (const f of files.values()) for (const s of f.supersedes) superseded.add(s);
    this.files.clear();
    for (const [id, f] of files) {
      if (superseded.has(id)) continue;
      this.dropEntries(id, f.supersedes);
      // Straight from the encoded entries: an object and a Buffer for each of 200,000 blobs
      // were garbage that the small nursery promoted, and the old generation they grew stayed resident.
      forEachIndexPack(f.encoded, (packId, entries) => {
        const pack = this.blobs.packNumber(packId);
        for (let at = 0; at < entries.length; at += INDEX_ENTRY) this.blobs.addFrom(entries, at + ENTRY_ID, { ...indexEntryAt(entries, at), pack });
      });
    }
  }

  /** `files` with every file's entries in memory: those the load dropped are read again with `read`. */
  async withEntries(read: (id: string) => Promise<Buffer>): Promise<Map<string, IndexFile>> {
    const dropped = [...this.files].filter(([, f]) => this.entriesDropped.has(f));
    await mapLimit(dropped, INDEX_READS, async ([id, f]) => {
      const full = decodeIndex(await read(id));
      if (this.files.get(id) === f) this.files.set(id, full);
    });
    return this.files;
  }

  /** Where a blob is stored, or undefined. */
  lookup(id: Buffer): (BlobLocation & { packId: string }) | undefined {
    const loc = this.blobs.get(id);
    return loc && { ...loc, packId: this.blobs.packId(loc.pack) };
  }

  /** True when the blob is stored in a pack that is not being removed. */
  isStored(id: Buffer): boolean {
    if (this.packsBeingRemoved.size === 0) return this.blobs.has(id);
    const loc = this.blobs.get(id);
    return loc !== undefined && !this.packsBeingRemoved.has(this.blobs.packId(loc.pack));
  }

  /** Indexes the blobs of a stored pack. */
  addPack(packId: string, entries: readonly PackEntry[]): void {
    const n = this.blobs.packNumber(packId);
    for (const b of entries) this.blobs.add({ ...b, pack: n });
  }

  /**
   * Records an index file just written, without its entries (a first backup of 200,000
   * files otherwise held its new index files' 9 MiB to the end); withEntries reads them back.
   */
  addFile(id: string, supersedes: string[]): void {
    this.dropEntries(id, supersedes);
  }

  private dropEntries(id: string, supersedes: string[]): void {
    const file = entriesNotKept(id, supersedes);
    this.entriesDropped.add(file);
    this.files.set(id, file);
  }
}

/** An index file whose entries were dropped after loading: asking for them is a mistake in the caller (see withEntries). */
function entriesNotKept(id: string, supersedes: string[]): IndexFile {
  return {
    supersedes,
    get packs(): IndexFile["packs"] {
      throw new Error(`the entries of index file ${id} are not in memory; get them with Repository.indexFilesWithEntries()`);
    },
  };
}

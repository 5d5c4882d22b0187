import { IntegrityError } from "./crypto.js";
import type { PackEntry } from "./pack.js";

/** The contents of one index file: which blobs live in which packs. */
export interface IndexFile {
  /** Index files this one replaces (prune writes a new index, then deletes these). */
  supersedes: string[];
  packs: { id: string; blobs: PackEntry[] }[];
}

const MAGIC = Buffer.from("CIX1");
const ENTRY = 46; // type 1, compression 1, offset 4, length 4, rawLength 4, id 32

/** Binary encoding (see docs/format.md): compact enough for millions of blobs. */
export function encodeIndex(index: IndexFile): Buffer {
  const blobs = index.packs.reduce((n, p) => n + p.blobs.length, 0);
  const out = Buffer.allocUnsafe(4 + 4 + index.supersedes.length * 32 + 4 + index.packs.length * 36 + blobs * ENTRY);
  let at = MAGIC.copy(out, 0);
  at = out.writeUInt32LE(index.supersedes.length, at);
  for (const id of index.supersedes) at += Buffer.from(id, "hex").copy(out, at);
  at = out.writeUInt32LE(index.packs.length, at);
  for (const pack of index.packs) {
    at += Buffer.from(pack.id, "hex").copy(out, at);
    at = out.writeUInt32LE(pack.blobs.length, at);
    for (const b of pack.blobs) {
      out[at] = b.type;
      out[at + 1] = b.compression;
      out.writeUInt32LE(b.offset, at + 2);
      out.writeUInt32LE(b.length, at + 6);
      out.writeUInt32LE(b.rawLength, at + 10);
      b.id.copy(out, at + 14);
      at += ENTRY;
    }
  }
  return out;
}

export function decodeIndex(buf: Buffer): IndexFile {
  const packs: IndexFile["packs"] = [];
  const supersedes = readIndex(buf, (id, entries) => {
    const blobs: PackEntry[] = [];
    for (let at = 0; at < entries.length; at += ENTRY) blobs.push({ ...indexEntryAt(entries, at), id: Buffer.from(entries.subarray(at + ENTRY_ID, at + ENTRY)) });
    packs.push({ id, blobs });
  });
  return { supersedes, packs };
}

/** Where an entry's 32-byte blob id starts within it. */
export const ENTRY_ID = 14;
export const INDEX_ENTRY = ENTRY;

/** An entry's fields other than its id (which lies at at + ENTRY_ID). */
export function indexEntryAt(entries: Buffer, at: number): Omit<PackEntry, "id"> {
  return {
    type: entries[at] as PackEntry["type"],
    compression: entries[at + 1],
    offset: entries.readUInt32LE(at + 2),
    length: entries.readUInt32LE(at + 6),
    rawLength: entries.readUInt32LE(at + 10),
  };
}

/**
 * Reads an index file pack by pack without an object per entry: `onPack` gets each
 * pack's id and the bytes of its entries, INDEX_ENTRY bytes each (read them with
 * indexEntryAt). Returns the files it supersedes. Throws for exactly the files
 * decodeIndex refuses, before calling `onPack` at all.
 */
export function forEachIndexPack(buf: Buffer, onPack: (packId: string, entries: Buffer) => void): string[] {
  const supersedes = readIndex(buf);
  readIndex(buf, onPack);
  return supersedes;
}

/**
 * The index files `buf` supersedes, after the same checks as decodeIndex (so it throws
 * for exactly the same files) but without building an object per entry.
 */
export function indexSupersedes(buf: Buffer): string[] {
  return readIndex(buf);
}

/** Checks the file's layout and returns what it supersedes; `onPack`, when given, gets each pack as it is read. */
function readIndex(buf: Buffer, onPack?: (packId: string, entries: Buffer) => void): string[] {
  const fail = (why: string): never => {
    throw new IntegrityError(`index file is malformed: ${why}`);
  };
  if (buf.length < 12 || !buf.subarray(0, 4).equals(MAGIC)) fail("bad magic");
  let at = 4;
  const need = (n: number) => {
    if (at + n > buf.length) fail("truncated");
  };
  need(4);
  const nSup = buf.readUInt32LE(at);
  at += 4;
  need(nSup * 32);
  const supersedes: string[] = [];
  for (let i = 0; i < nSup; i++, at += 32) supersedes.push(buf.toString("hex", at, at + 32));
  need(4);
  const nPacks = buf.readUInt32LE(at);
  at += 4;
  for (let p = 0; p < nPacks; p++) {
    need(36);
    const n = buf.readUInt32LE(at + 32);
    need(36 + n * ENTRY);
    onPack?.(buf.toString("hex", at, at + 32), buf.subarray(at + 36, at + 36 + n * ENTRY));
    at += 36 + n * ENTRY;
  }
  if (at !== buf.length) fail("trailing bytes");
  return supersedes;
}

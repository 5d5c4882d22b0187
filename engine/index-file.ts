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
  return readIndex(buf, true);
}

/**
 * The index files `buf` supersedes, after the same checks as decodeIndex (so it throws
 * for exactly the same files) but without building an object per entry.
 */
export function indexSupersedes(buf: Buffer): string[] {
  return readIndex(buf, false).supersedes;
}

function readIndex(buf: Buffer, withPacks: boolean): IndexFile {
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
  const packs: IndexFile["packs"] = [];
  for (let p = 0; p < nPacks; p++) {
    need(36);
    const id = buf.toString("hex", at, at + 32);
    const n = buf.readUInt32LE(at + 32);
    at += 36;
    need(n * ENTRY);
    if (!withPacks) {
      at += n * ENTRY;
      continue;
    }
    const blobs: PackEntry[] = [];
    for (let i = 0; i < n; i++, at += ENTRY) {
      blobs.push({
        type: buf[at] as PackEntry["type"],
        compression: buf[at + 1],
        offset: buf.readUInt32LE(at + 2),
        length: buf.readUInt32LE(at + 6),
        rawLength: buf.readUInt32LE(at + 10),
        id: Buffer.from(buf.subarray(at + 14, at + 46)),
      });
    }
    packs.push({ id, blobs });
  }
  if (at !== buf.length) fail("trailing bytes");
  return { supersedes, packs };
}

/**
 * An index file as an open repository keeps it: its encoded bytes (46 a blob),
 * decoded into objects the first time its packs are asked for (check, prune, tests)
 * and kept so from then on. A backup only needs the blob index, and holding every
 * entry of every index file as an object cost about four times those bytes.
 */
export function compactIndexFile(encoded: Buffer, supersedes: string[]): IndexFile {
  let packs: IndexFile["packs"] | undefined;
  return {
    supersedes,
    get packs() {
      return (packs ??= decodeIndex(encoded).packs);
    },
    set packs(value) {
      packs = value;
    },
  };
}

import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { decodeIndex, encodeIndex, ENTRY_ID, forEachIndexPack, INDEX_ENTRY, indexEntryAt, indexSupersedes, type IndexFile } from "./index-file.js";

const entry = (offset: number) => ({ type: 1 as const, compression: 2, offset, length: 40, rawLength: 90, id: randomBytes(32) });
const file: IndexFile = {
  supersedes: [randomBytes(32).toString("hex"), randomBytes(32).toString("hex")],
  packs: [
    { id: randomBytes(32).toString("hex"), blobs: [entry(0), entry(40)] },
    { id: randomBytes(32).toString("hex"), blobs: [entry(0)] },
  ],
};

/** What a reader made of `buf`: its supersedes, or the error it threw. */
const outcome = (read: (buf: Buffer) => string[], buf: Buffer): string[] | string => {
  try {
    return read(buf);
  } catch (err) {
    return String(err);
  }
};

/** The damaged variants of an encoded file every reader must refuse. */
function damagedCopies(encoded: Buffer): Buffer[] {
  const damaged: Buffer[] = [Buffer.concat([encoded, Buffer.from([0])]), Buffer.from("XXXX" + encoded.toString("latin1").slice(4), "latin1")];
  for (let n = 0; n < encoded.length; n++) damaged.push(encoded.subarray(0, n));
  // A pack claiming more entries than the file holds.
  const lying = Buffer.from(encoded);
  lying.writeUInt32LE(3, 4 + 4 + 2 * 32 + 4 + 32);
  damaged.push(lying);
  return damaged;
}

describe("forEachIndexPack", () => {
  it("gives every pack's entries as decodeIndex reads them", () => {
    const seen: IndexFile["packs"] = [];
    const supersedes = forEachIndexPack(encodeIndex(file), (id, entries) => {
      const blobs = [];
      for (let at = 0; at < entries.length; at += INDEX_ENTRY) blobs.push({ ...indexEntryAt(entries, at), id: Buffer.from(entries.subarray(at + ENTRY_ID, at + INDEX_ENTRY)) });
      seen.push({ id, blobs });
    });
    expect(supersedes).toEqual(file.supersedes);
    expect(seen).toEqual(file.packs);
  });

  it("refuses every file decodeIndex refuses before handing over any pack", () => {
    for (const buf of damagedCopies(encodeIndex(file))) {
      let packs = 0;
      const expected = outcome((b) => decodeIndex(b).supersedes, buf);
      expect(outcome((b) => forEachIndexPack(b, () => packs++), buf)).toEqual(expected);
      expect(packs).toBe(0);
    }
  });
});

describe("indexSupersedes", () => {
  it("reads what decodeIndex reads and refuses every file decodeIndex refuses", () => {
    const encoded = encodeIndex(file);
    expect(indexSupersedes(encoded)).toEqual(file.supersedes);
    for (const buf of damagedCopies(encoded)) {
      const expected = outcome((b) => decodeIndex(b).supersedes, buf);
      expect(typeof expected).toBe("string");
      expect(outcome(indexSupersedes, buf)).toEqual(expected);
    }
  });
});

import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BlobIndex, BlobType } from "./blob-index.js";

describe("BlobIndex", () => {
  it("finds every blob it was given, with its location, and nothing else", () => {
    const index = new BlobIndex();
    const ids = Array.from({ length: 100_000 }, () => randomBytes(32));
    ids.forEach((id, i) => index.add({ id, type: i % 7 ? BlobType.data : BlobType.tree, pack: `pack${i % 50}`, offset: i * 3, length: i + 1, rawLength: i + 2, compression: i % 4 }));
    expect(index.size).toBe(ids.length);
    for (let i = 0; i < ids.length; i += 997) {
      const loc = index.get(ids[i])!;
      expect(loc.id.equals(ids[i])).toBe(true);
      expect(index.packs[loc.pack]).toBe(`pack${i % 50}`);
      expect([loc.offset, loc.length, loc.rawLength, loc.compression, loc.type]).toEqual([i * 3, i + 1, i + 2, i % 4, i % 7 ? BlobType.data : BlobType.tree]);
      expect(index.typeOf(ids[i])).toBe(i % 7 ? BlobType.data : BlobType.tree);
    }
    for (let i = 0; i < 1000; i++) expect(index.has(randomBytes(32))).toBe(false);
    for (let i = 0; i < 1000; i++) expect(index.typeOf(randomBytes(32))).toBeUndefined();
  });

  it("keeps the first location of a blob added twice", () => {
    const index = new BlobIndex();
    const id = randomBytes(32);
    expect(index.add({ id, type: BlobType.data, pack: "a", offset: 1, length: 2, rawLength: 3, compression: 0 })).toBe(true);
    expect(index.add({ id, type: BlobType.data, pack: "b", offset: 9, length: 9, rawLength: 9, compression: 0 })).toBe(false);
    expect(index.packs[index.get(id)!.pack]).toBe("a");
    expect(index.size).toBe(1);
  });

  it("stays under 100 bytes a blob", () => {
    const index = new BlobIndex();
    for (let i = 0; i < 300_000; i++) index.add({ id: randomBytes(32), type: BlobType.data, pack: i >> 4, offset: 0, length: 1, rawLength: 1, compression: 1 });
    expect(index.byteSize / index.size).toBeLessThan(100);
  });
});

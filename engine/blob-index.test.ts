import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BlobIndex, BlobType } from "./blob-index.js";

/** A pack id as the repository names packs: 64 hex digits. */
const packName = (n: number) => n.toString(16).padStart(64, "0");

describe("BlobIndex", () => {
  it("finds every blob it was given, with its location, and nothing else", () => {
    const index = new BlobIndex();
    const ids = Array.from({ length: 100_000 }, () => randomBytes(32));
    ids.forEach((id, i) => index.add({ id, type: i % 7 ? BlobType.data : BlobType.tree, pack: packName(i % 50), offset: i * 3, length: i + 1, rawLength: i + 2, compression: i % 4 }));
    expect(index.size).toBe(ids.length);
    for (let i = 0; i < ids.length; i += 997) {
      const loc = index.get(ids[i])!;
      expect(loc.id.equals(ids[i])).toBe(true);
      expect(index.packId(loc.pack)).toBe(packName(i % 50));
      expect([loc.offset, loc.length, loc.rawLength, loc.compression, loc.type]).toEqual([i * 3, i + 1, i + 2, i % 4, i % 7 ? BlobType.data : BlobType.tree]);
      expect(index.typeOf(ids[i])).toBe(i % 7 ? BlobType.data : BlobType.tree);
    }
    for (let i = 0; i < 1000; i++) expect(index.has(randomBytes(32))).toBe(false);
    for (let i = 0; i < 1000; i++) expect(index.typeOf(randomBytes(32))).toBeUndefined();
  });

  it("keeps the first location of a blob added twice", () => {
    const index = new BlobIndex();
    const id = randomBytes(32);
    expect(index.add({ id, type: BlobType.data, pack: packName(0xa), offset: 1, length: 2, rawLength: 3, compression: 0 })).toBe(true);
    expect(index.add({ id, type: BlobType.data, pack: packName(0xb), offset: 9, length: 9, rawLength: 9, compression: 0 })).toBe(false);
    expect(index.packId(index.get(id)!.pack)).toBe(packName(0xa));
    expect(index.size).toBe(1);
  });

  it("numbers each pack id once, through its table's growth, and refuses an id that is not a pack name", () => {
    const index = new BlobIndex();
    const names = Array.from({ length: 20_000 }, () => randomBytes(32).toString("hex"));
    names.forEach((name, i) => expect(index.packNumber(name)).toBe(i));
    names.forEach((name, i) => expect(index.packNumber(name)).toBe(i));
    expect(index.packs).toBe(names.length);
    for (let i = 0; i < names.length; i += 101) expect(index.packId(i)).toBe(names[i]);
    expect(() => index.packNumber("pack1")).toThrow(/64 lowercase hex digits/);
    expect(() => index.packId(names.length)).toThrow(RangeError);
  });

  it("keeps type and compression apart in their shared byte", () => {
    const index = new BlobIndex();
    const id = randomBytes(32);
    index.add({ id, type: BlobType.tree, pack: packName(1), offset: 0, length: 1, rawLength: 1, compression: 15 });
    expect([index.get(id)!.type, index.get(id)!.compression, index.typeOf(id)]).toEqual([BlobType.tree, 15, BlobType.tree]);
    expect(() => index.add({ id: randomBytes(32), type: BlobType.data, pack: 0, offset: 0, length: 1, rawLength: 1, compression: 16 })).toThrow(RangeError);
  });

  it("stays under 100 bytes a blob", () => {
    const index = new BlobIndex();
    for (let i = 0; i < 300_000; i++) index.add({ id: randomBytes(32), type: BlobType.data, pack: i >> 4, offset: 0, length: 1, rawLength: 1, compression: 1 });
    expect(index.byteSize / index.size).toBeLessThan(100);
  });
});

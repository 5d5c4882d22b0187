import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { ByteRange } from "../backends/backend.js";
import { MemBackend } from "../backends/mem.js";
import { IntegrityError } from "./crypto.js";
import { packKey } from "./pack.js";
import { TreePackCache } from "./tree-cache.js";

/** A MemBackend that records the ranges read and can fail the next read. */
class CountingBackend extends MemBackend {
  reads: { key: string; offset: number; length: number }[] = [];
  failNext = false;
  override async get(key: string, range?: ByteRange): Promise<Buffer> {
    this.reads.push({ key, offset: range?.offset ?? 0, length: range?.length ?? this.objects.get(key)?.length ?? 0 });
    if (this.failNext) {
      this.failNext = false;
      throw new Error("connection reset");
    }
    return super.get(key, range);
  }
}

const PACK = "a".repeat(64);
const OTHER = "b".repeat(64);

describe("TreePackCache", () => {
  it("serves the bytes asked for from windows around them, one read for neighbours", async () => {
    const backend = new CountingBackend();
    const pack = randomBytes(10_000);
    await backend.put(packKey(PACK), pack);
    const cache = new TreePackCache(backend, 4000, 1000);
    expect(await cache.get(PACK, 5000, 100)).toEqual(pack.subarray(5000, 5100));
    // Half a window before the blob, half after it.
    expect(backend.reads).toEqual([{ key: packKey(PACK), offset: 4550, length: 1000 }]);
    expect(await cache.get(PACK, 4600, 50)).toEqual(pack.subarray(4600, 4650));
    expect(await cache.get(PACK, 5400, 100)).toEqual(pack.subarray(5400, 5500));
    expect(backend.reads.length).toBe(1);
    // Near the pack's ends the window stays inside it; a blob larger than a window is read whole.
    expect(await cache.get(PACK, 9950, 50)).toEqual(pack.subarray(9950));
    expect(backend.reads[1]).toEqual({ key: packKey(PACK), offset: 9000, length: 1000 });
    expect(await cache.get(PACK, 0, 3000)).toEqual(pack.subarray(0, 3000));
    expect(backend.reads[2]).toEqual({ key: packKey(PACK), offset: 0, length: 3000 });
  });

  it("reads a pack no larger than a window whole, once", async () => {
    const backend = new CountingBackend();
    const pack = randomBytes(800);
    await backend.put(packKey(PACK), pack);
    const cache = new TreePackCache(backend, 4000, 1000);
    const got = await Promise.all([cache.get(PACK, 700, 100), cache.get(PACK, 0, 10), cache.get(PACK, 300, 300)]);
    expect(got).toEqual([pack.subarray(700, 800), pack.subarray(0, 10), pack.subarray(300, 600)]);
    expect(backend.reads).toEqual([{ key: packKey(PACK), offset: 0, length: 800 }]);
  });

  it("keeps no more than its bound, dropping the oldest windows first", async () => {
    const backend = new CountingBackend();
    await backend.put(packKey(PACK), randomBytes(10_000));
    await backend.put(packKey(OTHER), randomBytes(10_000));
    const cache = new TreePackCache(backend, 2000, 1000);
    await cache.get(PACK, 500, 10);
    await cache.get(OTHER, 500, 10);
    await cache.get(PACK, 5000, 10);
    expect(backend.reads.length).toBe(3);
    // The first window was dropped for the third; the second is still kept.
    await cache.get(OTHER, 600, 10);
    expect(backend.reads.length).toBe(3);
    await cache.get(PACK, 600, 10);
    expect(backend.reads.length).toBe(4);
  });

  it("does not keep a failed read, and says when a blob lies past the pack's end", async () => {
    const backend = new CountingBackend();
    const pack = randomBytes(5000);
    await backend.put(packKey(PACK), pack);
    const cache = new TreePackCache(backend, 4000, 1000);
    backend.failNext = true;
    await expect(cache.get(PACK, 2000, 10)).rejects.toThrow("connection reset");
    expect(await cache.get(PACK, 2000, 10)).toEqual(pack.subarray(2000, 2010));
    expect(backend.reads.length).toBe(2);
    await expect(cache.get(PACK, 4995, 10)).rejects.toThrow(IntegrityError);
    await expect(cache.get(PACK, 4995, 10)).rejects.toThrow(/is damaged.*past its end/);
    await expect(cache.get(OTHER, 0, 10)).rejects.toThrow(/not found/);
  });
});

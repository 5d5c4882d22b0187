import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MemBackend } from "../backends/mem.js";
import type { ByteRange } from "../backends/backend.js";
import { tempDir } from "../test/helpers.js";
import { Archiver } from "./archiver.js";
import { BlobType } from "./blob-index.js";
import { checkRepository, selectSubset } from "./checker.js";
import { encodeIndex } from "./index-file.js";
import { packKey } from "./pack.js";
import { Repository } from "./repository.js";

const FAST_KDF = { name: "scrypt" as const, N: 1024, r: 8, p: 1 };
const PASSWORD = "pw";

/** A MemBackend that records which packs were read to their last byte: only a data check reads a pack's header (tree reads fetch only their blobs). */
class CountingBackend extends MemBackend {
  readonly packReads: string[] = [];
  /** The most bytes one read of a pack returned. */
  largestRead = 0;

  override async get(key: string, range?: ByteRange): Promise<Buffer> {
    const size = this.objects.get(key)?.length;
    if (key.startsWith("data/")) this.largestRead = Math.max(this.largestRead, range?.length ?? size ?? 0);
    if (key.startsWith("data/") && (!range || range.offset + range.length === size)) this.packReads.push(key.slice(key.lastIndexOf("/") + 1));
    return super.get(key, range);
  }
}

const flip = (backend: MemBackend, key: string, at: (length: number) => number) => {
  const bytes = backend.objects.get(key)!;
  bytes[at(bytes.length)] ^= 0x01;
};

const open = (backend: MemBackend, onIndexError?: (id: string) => void) => Repository.open(backend, PASSWORD, { threads: 0, onIndexError });

describe("checkRepository", () => {
  let source: ReturnType<typeof tempDir>;
  let backend: CountingBackend;

  beforeEach(async () => {
    source = tempDir();
    mkdirSync(path.join(source.dir, "sub"));
    writeFileSync(path.join(source.dir, "big.bin"), randomBytes(1_500_000));
    writeFileSync(path.join(source.dir, "text.txt"), "one line of text\n".repeat(20_000));
    writeFileSync(path.join(source.dir, "sub", "small.txt"), "small");
    backend = new CountingBackend();
    // Small chunks and packs so the data spreads over several packs.
    const chunker = { minSize: 16 * 1024, avgSize: 64 * 1024, maxSize: 256 * 1024, seed: randomBytes(32).toString("hex") };
    const repo = await Repository.init(backend, PASSWORD, { kdf: FAST_KDF, threads: 0, packSize: 256 * 1024, chunker });
    await new Archiver(repo).backup([source.dir]);
    await repo.close();
  });
  afterEach(() => source.cleanup());

  const packIds = () => [...backend.objects.keys()].filter((k) => k.startsWith("data/")).map((k) => k.slice(k.lastIndexOf("/") + 1));

  it("finds nothing wrong in a clean repository, and with read-data verifies every pack and blob", async () => {
    const repo = await open(backend);
    const structure = await checkRepository(repo);
    expect(structure.errors).toEqual([]);
    expect(structure.warnings).toEqual([]);
    expect(structure.snapshots).toBe(1);
    expect(structure.packsRead).toBe(0);
    expect(structure.packs).toBe(packIds().length);
    expect(structure.packs).toBeGreaterThan(2);

    const full = await checkRepository(repo, { readData: true });
    expect(full.errors).toEqual([]);
    expect(full.packsRead).toBe(full.packs);
    expect(full.blobsRead).toBe(repo.index.size);
    expect(new Set(backend.packReads)).toEqual(new Set(packIds()));
    await repo.close();
  });

  it("reports a missing pack by its id", async () => {
    const victim = packIds()[0];
    backend.objects.delete(packKey(victim));
    const repo = await open(backend);
    const report = await checkRepository(repo, { readData: true });
    expect(report.errors.filter((e) => e.kind === "pack").map((e) => e.object)).toEqual([victim]);
    expect(report.packsRead).toBe(report.packs - 1);
    await repo.close();
  });

  it("reports a data blob that a file needs but the index lost", async () => {
    const repo = await open(backend);
    const [indexId, file] = [...(await repo.indexFilesWithEntries())][0];
    const dataPack = file.packs.find((p) => p.blobs[0].type === BlobType.data)!;
    const lost = dataPack.blobs.shift()!;
    await repo.saveUnpacked("index", encodeIndex(file));
    await backend.delete(`index/${indexId}`);
    await repo.close();

    const again = await open(backend);
    const report = await checkRepository(again, { readData: true });
    expect(report.errors).toEqual([expect.objectContaining({ kind: "blob", object: lost.id.toString("hex") })]);
    expect(report.errors[0].message).toMatch(/not in the index/);
    // The pack still holds the blob: that is harmless, prune's business.
    expect(report.warnings.join("\n")).toContain(dataPack.id);
    await again.close();
  });

  it("needs read-data to see a damaged pack, and then names it", async () => {
    const victim = packIds().find((id) => backend.objects.get(packKey(id))!.length > 100_000)!;
    flip(backend, packKey(victim), (n) => Math.floor(n / 2));
    const repo = await open(backend);
    expect((await checkRepository(repo)).errors).toEqual([]);
    const report = await checkRepository(repo, { readData: true });
    expect(report.errors.map((e) => e.object)).toContain(victim);
    expect(report.errors.every((e) => e.message.includes(victim))).toBe(true);
    await repo.close();
  });

  it("reports a damaged pack header even when every blob is intact", async () => {
    const victim = packIds()[0];
    flip(backend, packKey(victim), (n) => n - 10);
    const repo = await open(backend);
    const report = await checkRepository(repo, { readData: true });
    expect(report.errors.filter((e) => e.object === victim).map((e) => e.message).join("\n")).toMatch(/no longer matches its name[\s\S]*damaged header/);
    expect(report.errors.every((e) => e.object === victim)).toBe(true);
    await repo.close();
  });

  it("reads a large pack in bounded pieces: a blob damaged in its middle and one at its start are named, the rest verify", async () => {
    const big = new CountingBackend();
    const src = tempDir();
    try {
      // 12 MiB of chunks of 32-128 KiB in one 16 MiB pack: six 2 MiB pieces, the last with the header.
      writeFileSync(path.join(src.dir, "big.bin"), randomBytes(12 << 20));
      const chunker = { minSize: 32 * 1024, avgSize: 64 * 1024, maxSize: 128 * 1024, seed: randomBytes(32).toString("hex") };
      const init = await Repository.init(big, PASSWORD, { kdf: FAST_KDF, threads: 0, packSize: 16 << 20, chunker });
      await new Archiver(init).backup([src.dir]);
      await init.close();
      const [victim] = [...big.objects.entries()].filter(([k]) => k.startsWith("data/")).sort((a, b) => b[1].length - a[1].length)[0];
      const clean = await open(big);
      const ok = await checkRepository(clean, { readData: true });
      expect(ok.errors).toEqual([]);
      expect(ok.blobsRead).toBe(clean.index.size);
      expect(big.objects.get(victim)!.length).toBeGreaterThan(12 << 20);
      expect(big.largestRead).toBeLessThanOrEqual((2 << 20) + 64 * 1024);
      await clean.close();
      const length = big.objects.get(victim)!.length;
      flip(big, victim, () => Math.floor(length / 2));
      flip(big, victim, () => 100);
      const repo = await open(big);
      const report = await checkRepository(repo, { readData: true });
      const id = victim.slice(victim.lastIndexOf("/") + 1);
      expect(report.errors.filter((e) => e.kind === "blob")).toHaveLength(2);
      expect(report.errors.filter((e) => e.kind === "pack").map((e) => e.message)).toEqual([`pack ${victim} is damaged: its content no longer matches its name`]);
      expect(report.blobsRead).toBe(repo.index.size - 2);
      expect(report.errors.every((e) => e.message.includes(id))).toBe(true);
      await repo.close();
    } finally {
      src.cleanup();
    }
  });

  it("reports a damaged index file and snapshot instead of failing", async () => {
    const indexKey = [...backend.objects.keys()].find((k) => k.startsWith("index/"))!;
    const snapshotKey = [...backend.objects.keys()].find((k) => k.startsWith("snapshots/"))!;
    flip(backend, indexKey, (n) => n - 1);
    flip(backend, snapshotKey, () => 30);
    await expect(open(backend)).rejects.toThrow(/index\/.* is damaged/);
    const skipped: string[] = [];
    const repo = await open(backend, (id) => skipped.push(id));
    expect(skipped).toEqual([indexKey.slice("index/".length)]);
    const report = await checkRepository(repo);
    expect(report.errors.map((e) => `${e.kind} ${e.object}`).sort()).toEqual([`index ${indexKey}`, `snapshot ${snapshotKey}`]);
    // With the index gone every pack is unreferenced: prune would drop them, so say so.
    expect(report.warnings.length).toBe(packIds().length);
    await repo.close();
  });

  it("downloads only the sampled data packs, and n/m groups cover every pack once", async () => {
    const repo = await open(backend);
    const all = packIds();
    // Walking the snapshot's trees reads tree packs whatever the subset; the sample is about the data packs.
    const treePacks = new Set([...(await repo.indexFilesWithEntries()).values()].flatMap((f) => f.packs).filter((p) => p.blobs[0].type === BlobType.tree).map((p) => p.id));
    const dataPacks = all.filter((id) => !treePacks.has(id));
    expect(dataPacks.length).toBeGreaterThan(3);
    const downloadedData = () => new Set(backend.packReads.filter((id) => !treePacks.has(id)));
    let read = 0;
    const seen: string[] = [];
    for (const n of [1, 2, 3]) {
      backend.packReads.length = 0;
      const report = await checkRepository(repo, { subset: `${n}/3` });
      expect(report.errors).toEqual([]);
      const group = selectSubset([...all].sort(), `${n}/3`);
      expect(downloadedData()).toEqual(new Set(group.filter((id) => !treePacks.has(id))));
      read += report.packsRead;
      seen.push(...group);
    }
    expect(read).toBe(all.length);
    expect(seen.sort()).toEqual([...all].sort());

    backend.packReads.length = 0;
    const sample = await checkRepository(repo, { subset: "10%" });
    expect(sample.packsRead).toBe(Math.max(1, Math.round(all.length / 10)));
    expect(downloadedData().size).toBeLessThanOrEqual(sample.packsRead);
    await repo.close();
  });

  it("rejects a subset it cannot understand with a hint", () => {
    expect(() => selectSubset(["a"], "4/3")).toThrow(/1 <= n <= m/);
    expect(() => selectSubset(["a"], "half")).toThrow(/10%/);
    expect(selectSubset(["a", "b", "c", "d"], "0.5")).toHaveLength(2);
  });
});

import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LocalBackend } from "../backends/local.js";
import { tempDir } from "../test/helpers.js";
import { Archiver } from "./archiver.js";
import { BlobType } from "./blob-index.js";
import { checkRepository } from "./checker.js";
import { CairnError } from "./errors.js";
import { packKey } from "./pack.js";
import { prune, unusedLimit } from "./prune.js";
import { Repository } from "./repository.js";
import { Restorer } from "./restorer.js";
import { TreeLoader, walkTree } from "./tree.js";

const FAST_KDF = { name: "scrypt" as const, N: 1024, r: 8, p: 1 };
const PASSWORD = "pw";
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** A LocalBackend whose deletes fail after `allowed` of them, as if the process died part way. */
class DyingBackend extends LocalBackend {
  allowed = Infinity;

  override async delete(key: string): Promise<void> {
    if (this.allowed-- <= 0) throw new Error("simulated crash");
    return super.delete(key);
  }
}

describe("prune", () => {
  let tmp: ReturnType<typeof tempDir>;
  let src: string;
  let backend: DyingBackend;

  beforeEach(async () => {
    tmp = tempDir();
    src = path.join(tmp.dir, "src");
    mkdirSync(src);
    backend = new DyingBackend(path.join(tmp.dir, "repo"), { fsync: false });
    // 4 MiB packs: the small files of one backup share a pack.
    await (await Repository.init(backend, PASSWORD, { kdf: FAST_KDF, threads: 0, packSize: 4 * 1024 * 1024 })).close();
  });
  afterEach(() => tmp.cleanup());

  const open = () => Repository.open(backend, PASSWORD, { threads: 0 });
  const withRepo = async <T>(fn: (repo: Repository) => Promise<T>): Promise<T> => {
    const repo = await open();
    try {
      return await fn(repo);
    } finally {
      await repo.close();
    }
  };
  const backup = () => withRepo(async (repo) => (await new Archiver(repo).backup([src])).id);
  /** Writes a file of random bytes; returns its SHA-256. */
  const write = (name: string, size: number) => {
    const bytes = randomBytes(size);
    writeFileSync(path.join(src, name), bytes);
    return sha256(bytes);
  };
  const keys = async (prefix: string) => {
    const out: Record<string, number> = {};
    for await (const o of backend.list(prefix)) out[o.key] = o.size;
    return out;
  };
  /** Every stored file but the config, with its size. */
  const everything = async () => {
    const out: Record<string, number> = {};
    for (const dir of ["data/", "index/", "snapshots/", "keys/", "locks/"]) Object.assign(out, await keys(dir));
    return out;
  };
  const packBytes = async () => Object.values(await keys("data/")).reduce((n, s) => n + s, 0);
  const forget = (id: string) => backend.delete(`snapshots/${id}`);

  /** Restores a snapshot and returns its files' SHA-256 by name (deep-comparing big buffers is slow). */
  const restore = (id: string) =>
    withRepo(async (repo) => {
      const snapshot = await repo.loadJSON<{ tree: string }>("snapshots", id);
      const target = path.join(tmp.dir, `restore-${id.slice(0, 8)}-${randomBytes(4).toString("hex")}`);
      await new Restorer(repo, { target }).restore(snapshot.tree);
      const dir = path.join(target, src);
      const files: Record<string, string> = {};
      for (const name of ["a.bin", "b.bin", "c.bin"]) {
        try {
          files[name] = sha256(readFileSync(path.join(dir, name)));
        } catch {
          // not in this snapshot
        }
      }
      return files;
    });

  /** Full check: every index, pack, tree and blob reads back, and no pack is left outside the index. */
  const expectHealthy = () =>
    withRepo(async (repo) => {
      const report = await checkRepository(repo, { readData: true });
      expect(report.errors).toEqual([]);
      expect(report.warnings).toEqual([]);
      return report;
    });

  it("deletes packs only forgotten snapshots used; kept snapshots still restore byte-identical", async () => {
    const a = write("a.bin", 300_000);
    const old = await backup();
    rmSync(path.join(src, "a.bin"));
    const b = write("b.bin", 300_000);
    const kept = await backup();
    await forget(old);
    const before = await packBytes();

    const result = await withRepo((repo) => prune(repo));

    expect(result.snapshots).toBe(1);
    expect(result.packs.unused).toBe(2); // the old backup's data pack and tree pack
    expect(result.packs.repacked).toBe(0);
    expect(result.bytes.freed).toBeGreaterThan(300_000);
    expect(await packBytes()).toBe(before - result.bytes.freed);
    expect(Object.keys(await keys("index/"))).toHaveLength(1);
    expect(await restore(kept)).toEqual({ "b.bin": b });
    await expectHealthy();
  });

  it("repacks a partly used pack when its unused share exceeds max-unused, and only then", async () => {
    const a = write("a.bin", 300_000);
    write("b.bin", 300_000);
    const old = await backup();
    rmSync(path.join(src, "b.bin"));
    const kept = await backup(); // a.bin deduplicated: it stays in the pack it shares with b.bin
    await forget(old);

    const tolerated = await withRepo((repo) => prune(repo, { maxUnused: "unlimited" }));
    expect(tolerated.packs.repacked).toBe(0);
    expect(tolerated.bytes.unusedAfter).toBeGreaterThan(300_000);

    const before = await packBytes();
    const dry = await withRepo((repo) => prune(repo, { maxUnused: "5%", dryRun: true }));
    expect(dry.packs.repacked).toBe(1);
    expect(await packBytes()).toBe(before);

    const result = await withRepo((repo) => prune(repo, { maxUnused: "5%" }));
    expect(result.packs.repacked).toBe(1);
    expect(result.packs.written).toBe(1);
    expect(result.bytes.repacked).toBeGreaterThan(300_000);
    expect(result.bytes.unusedAfter).toBe(0);
    expect(await packBytes()).toBeLessThan(before - 290_000);
    expect(await packBytes()).toBe(before - result.bytes.freed);
    expect(await restore(kept)).toEqual({ "a.bin": a });
    await expectHealthy();
  });

  it("keeps one copy of blobs that two concurrent backups both stored", async () => {
    const a = write("a.bin", 400_000);
    // Two sessions opened before either wrote: neither sees the other's pack.
    const [one, two] = [await open(), await open()];
    const ids = await Promise.all([new Archiver(one).backup([src]), new Archiver(two).backup([src])]);
    await Promise.all([one.close(), two.close()]);
    const before = await packBytes();

    const result = await withRepo((repo) => prune(repo));
    expect(result.duplicates).toBeGreaterThanOrEqual(1);
    expect(result.packs.unused + result.packs.repacked).toBeGreaterThanOrEqual(1);
    expect(await packBytes()).toBeLessThan(before - 390_000);
    for (const { id } of ids) expect(await restore(id)).toEqual({ "a.bin": a });
    await withRepo(async (repo) => {
      const stored = [...repo.index.entries()].filter((e) => e.type === BlobType.data).length;
      expect(stored).toBe(1);
    });
    await expectHealthy();
  });

  it("deletes packs no index lists, left by an interrupted backup", async () => {
    write("a.bin", 200_000);
    const kept = await backup();
    const indexBefore = Object.keys(await keys("index/"));
    // A backup that uploaded its pack and died before its snapshot: its index file never landed.
    await withRepo(async (repo) => {
      await repo.saveBlob(BlobType.data, randomBytes(500_000));
      await repo.flush();
    });
    for (const key of Object.keys(await keys("index/"))) if (!indexBefore.includes(key)) await backend.delete(key);
    const stray = await packBytes();

    const result = await withRepo((repo) => prune(repo));
    expect(result.packs.unreferenced).toBe(1);
    expect(result.bytes.freed).toBeGreaterThan(500_000);
    expect(await packBytes()).toBe(stray - result.bytes.freed);
    expect(Object.keys(await restore(kept))).toEqual(["a.bin"]);
    await expectHealthy();
  });

  it("refuses to delete anything when a blob a snapshot needs is missing", async () => {
    write("a.bin", 200_000);
    const old = await backup();
    rmSync(path.join(src, "a.bin"));
    write("b.bin", 200_000);
    const kept = await backup();
    await forget(old);
    // Lose the pack holding b.bin, which the kept snapshot needs.
    const lost = await withRepo(async (repo) => {
      const snapshot = await repo.loadJSON<{ tree: string }>("snapshots", kept);
      for await (const { node } of walkTree(new TreeLoader(repo), snapshot.tree)) {
        if (node.name === "b.bin") return repo.lookup(Buffer.from(node.content![0], "hex"))!.packId;
      }
      throw new Error("b.bin is not in the snapshot");
    });
    await backend.delete(packKey(lost));
    const before = await everything();

    const err = await withRepo((repo) => prune(repo)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CairnError);
    expect((err as Error).message).toMatch(/missing from the repository; prune stopped without deleting anything/);
    expect(await everything()).toEqual(before);
  });

  it("leaves a complete repository when it dies after writing the new index, and the next prune finishes the job", async () => {
    const a = write("a.bin", 300_000);
    write("b.bin", 300_000);
    const old = await backup();
    rmSync(path.join(src, "b.bin"));
    const kept = await backup();
    await forget(old);

    backend.allowed = 1; // one pack deleted, then the crash
    await expect(withRepo((repo) => prune(repo, { maxUnused: "0%" }))).rejects.toThrow(/simulated crash/);
    backend.allowed = Infinity;

    expect(await restore(kept)).toEqual({ "a.bin": a });
    const report = await withRepo((repo) => checkRepository(repo, { readData: true }));
    expect(report.errors).toEqual([]);

    const again = await withRepo((repo) => prune(repo, { maxUnused: "0%" }));
    expect(again.packs.unreferenced + again.packs.unused).toBeGreaterThan(0);
    expect(again.packs.repacked).toBe(0);
    expect(Object.keys(await keys("index/"))).toHaveLength(1);
    expect(await restore(kept)).toEqual({ "a.bin": a });
    await expectHealthy();
  });

  it("changes nothing when there is nothing to remove", async () => {
    write("a.bin", 200_000);
    await backup();
    await withRepo((repo) => prune(repo));
    const before = await everything();
    const result = await withRepo((repo) => prune(repo));
    expect(result.bytes.freed).toBe(0);
    expect(await everything()).toEqual(before);
  });
});

describe("unusedLimit", () => {
  it("reads shares of the repository, sizes and unlimited", () => {
    // 5% of the repository after prune: unused / (used + unused) <= 5%.
    expect(unusedLimit("5%", 950)).toBeCloseTo(50);
    expect(unusedLimit("0%", 1000)).toBe(0);
    expect(unusedLimit("100%", 1000)).toBe(Infinity);
    expect(unusedLimit("unlimited", 1000)).toBe(Infinity);
    expect(unusedLimit("200M", 0)).toBe(200 * 1024 * 1024);
    expect(unusedLimit("1GiB", 0)).toBe(1024 ** 3);
    expect(unusedLimit(4096, 0)).toBe(4096);
    expect(() => unusedLimit("lots", 0)).toThrow(/cannot read --max-unused "lots"/);
    expect(() => unusedLimit("150%", 0)).toThrow(CairnError);
  });
});

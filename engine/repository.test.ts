import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { MemBackend } from "../backends/mem.js";
import { BlobType } from "./blob-index.js";
import { Compression } from "./compression.js";
import { RepositoryNotFoundError, WrongPasswordError } from "./errors.js";
import { Repository } from "./repository.js";

const FAST_KDF = { name: "scrypt" as const, N: 1024, r: 8, p: 1 };

describe("Repository", () => {
  it("stores blobs once, reads them back after reopening, and writes only new files", async () => {
    const backend = new MemBackend();
    const repo = await Repository.init(backend, "pw", { kdf: FAST_KDF, threads: 0 });
    const text = Buffer.from("hello ".repeat(50_000));
    const noise = randomBytes(200_000);
    expect(await repo.saveBlob(BlobType.data, Buffer.from(text))).toBe(true);
    expect(await repo.saveBlob(BlobType.data, Buffer.from(text))).toBe(false);
    await repo.saveBlob(BlobType.data, Buffer.from(noise));
    await repo.flush();
    await repo.close();

    const again = await Repository.open(backend, "pw", { threads: 0 });
    const textLoc = again.lookup(again.blobId(text))!;
    const noiseLoc = again.lookup(again.blobId(noise))!;
    expect(textLoc.compression).toBe(Compression.zstd);
    expect(textLoc.length).toBeLessThan(text.length / 10);
    expect(noiseLoc.compression).toBe(Compression.none); // incompressible: stored raw
    expect((await again.loadBlob(again.blobId(text))).equals(text)).toBe(true);
    expect((await again.loadBlob(again.blobId(noise))).equals(noise)).toBe(true);
    await again.close();
  });

  it("keeps the blob index, not the index files' entries, after opening; check and prune read the entries again", async () => {
    const backend = new MemBackend();
    const repo = await Repository.init(backend, "pw", { kdf: FAST_KDF, threads: 0 });
    const blobs = [randomBytes(3000), randomBytes(5000)];
    for (const b of blobs) await repo.saveBlob(BlobType.data, b);
    await repo.flush();
    await repo.close();

    const again = await Repository.open(backend, "pw", { threads: 0 });
    const [file] = [...again.indexFiles.values()];
    expect(() => file.packs).toThrow(/not in memory; get them with Repository.indexFilesWithEntries/);
    const full = await again.indexFilesWithEntries();
    expect(full.size).toBe(1);
    const ids = [...full.values()].flatMap((f) => f.packs.flatMap((p) => p.blobs.map((b) => b.id.toString("hex"))));
    expect(ids.sort()).toEqual(blobs.map((b) => again.blobId(b).toString("hex")).sort());
    await again.close();
  });

  for (const compression of ["gzip:9", "brotli:5", "none", "zstd:19"]) {
    it(`round-trips data compressed with ${compression}`, async () => {
      const repo = await Repository.init(new MemBackend(), "pw", { kdf: FAST_KDF, threads: 0, compression });
      const data = Buffer.from("abcabcabd".repeat(10_000));
      await repo.saveBlob(BlobType.data, Buffer.from(data));
      await repo.flush();
      expect((await repo.loadBlob(repo.blobId(data))).equals(data)).toBe(true);
      expect(repo.lookup(repo.blobId(data))!.compression).toBe(Compression[compression.split(":")[0] as keyof typeof Compression]);
    });
  }

  it("tells a wrong password from a missing repository", async () => {
    const backend = new MemBackend();
    await (await Repository.init(backend, "right", { kdf: FAST_KDF, threads: 0 })).close();
    await expect(Repository.open(backend, "wrong", { threads: 0 })).rejects.toBeInstanceOf(WrongPasswordError);
    await expect(Repository.open(new MemBackend(), "right", { threads: 0 })).rejects.toBeInstanceOf(RepositoryNotFoundError);
  });

  it("uses worker threads for sealing and opening", async () => {
    const repo = await Repository.init(new MemBackend(), "pw", { kdf: FAST_KDF, threads: 2 });
    const blobs = Array.from({ length: 20 }, () => Buffer.from(randomBytes(64 * 1024).toString("hex")));
    for (const b of blobs) await repo.saveBlob(BlobType.data, Buffer.from(b));
    await repo.flush();
    for (const b of blobs) expect((await repo.loadBlob(repo.blobId(b))).equals(b)).toBe(true);
    await repo.close();
  });
});

import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MemBackend } from "../backends/mem.js";
import { tempDir } from "../test/helpers.js";
import { Archiver } from "./archiver.js";
import { Repository } from "./repository.js";
import { Restorer } from "./restorer.js";

const PASSWORD = "correct horse battery staple";
const FAST_KDF = { name: "scrypt" as const, N: 1024, r: 8, p: 1 };

/** Small files are opened with synchronous calls and read on codec threads: each must still be judged on what was opened, and stored whole. */
describe("archiver with many small files", () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir("cairn-archiver-");
  });
  afterEach(() => tmp.cleanup());

  // threads 0: everything on this thread; 2: small files read, hashed and sealed on codec threads (readSeal).
  it.each([0, 2])("stores every small file byte-identical and leaves out the ones the policy refuses (%i codec threads)", async (threads) => {
    const src = path.join(tmp.dir, "src");
    mkdirSync(path.join(src, "d"), { recursive: true });
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 300; i++) {
      const name = `d/f${String(i).padStart(3, "0")}${i % 50 === 7 ? ".secret" : ""}`;
      // Up to 11 KiB, and one file each side of the bound of the small-file path (the chunker's 512 KiB minimum).
      const data = randomBytes(i === 298 ? 512 * 1024 : i === 299 ? 512 * 1024 + 1 : i * 37);
      writeFileSync(path.join(src, name), data);
      files.set(name, data);
    }
    const repo = await Repository.init(new MemBackend(), PASSWORD, { kdf: FAST_KDF, threads });
    try {
      const refused: string[] = [];
      const archiver = new Archiver(repo, {
        refuse: (real) => {
          if (!real.endsWith(".secret")) return undefined;
          refused.push(real);
          return "outside the policy";
        },
      });
      const { snapshot, errors } = await archiver.backup([src]);
      const secrets = [...files.keys()].filter((n) => n.endsWith(".secret"));
      expect(errors.map((e) => path.relative(src, e.path)).sort()).toEqual(secrets);
      expect(errors.every((e) => e.message === "outside the policy")).toBe(true);
      expect(refused.sort()).toEqual(secrets.map((n) => path.join(realpathSync(src), n)));

      const target = path.join(tmp.dir, "restore");
      const result = await new Restorer(repo, { target }).restore(snapshot.tree);
      expect(result.files).toBe(files.size - secrets.length);
      for (const [name, data] of files) {
        if (name.endsWith(".secret")) continue;
        expect(readFileSync(path.join(target, src, name)).equals(data), name).toBe(true);
      }
    } finally {
      await repo.close();
    }
  });

  it.each([0, 2])("reads a file that grew past the small-file bound after its lstat the ordinary way (%i codec threads)", async (threads) => {
    const src = path.join(tmp.dir, "src");
    mkdirSync(src);
    const grown = randomBytes(10_000);
    writeFileSync(path.join(src, "a"), "before");
    writeFileSync(path.join(src, "b"), "same");
    // A small chunker (bound: its 256-byte minimum); the policy hook runs after the open and before the read, so it grows the file then.
    const chunker = { minSize: 256, avgSize: 1024, maxSize: 4096, seed: "00".repeat(32) };
    const repo = await Repository.init(new MemBackend(), PASSWORD, { kdf: FAST_KDF, threads, chunker });
    try {
      let grew = false;
      const archiver = new Archiver(repo, {
        refuse: (real) => {
          if (real.endsWith("/a") && !grew) {
            grew = true;
            writeFileSync(path.join(src, "a"), grown);
          }
          return undefined;
        },
      });
      const { snapshot, errors } = await archiver.backup([src]);
      expect(errors).toEqual([]);
      const target = path.join(tmp.dir, "restore");
      await new Restorer(repo, { target }).restore(snapshot.tree);
      expect(readFileSync(path.join(target, src, "a")).equals(grown)).toBe(true);
      expect(readFileSync(path.join(target, src, "b"), "utf8")).toBe("same");
    } finally {
      await repo.close();
    }
  });

  it.each([0, 2])("lets the event loop run while it walks a large directory, so a cancellation stops it and no file stays open (%i codec threads)", async (threads) => {
    const src = path.join(tmp.dir, "src");
    mkdirSync(src);
    for (let i = 0; i < 2000; i++) writeFileSync(path.join(src, `f${i}`), String(i));
    const repo = await Repository.init(new MemBackend(), PASSWORD, { kdf: FAST_KDF, threads });
    const openBefore = readdirSync("/proc/self/fd").length;
    try {
      const ac = new AbortController();
      let reports = 0;
      const archiver = new Archiver(repo, {
        signal: ac.signal,
        // The first report comes with the first file; the abort comes from a later turn
        // of the event loop, as a workflow cancellation does.
        onProgress: () => {
          if (reports++ === 0) setImmediate(() => ac.abort());
        },
      });
      await expect(archiver.backup([src])).rejects.toThrow(/cancelled/);
      expect(reports).toBeGreaterThan(0);
    } finally {
      await repo.close();
    }
    // Files opened for codec threads are closed by them, or by the walk when it stops before sending them.
    expect(readdirSync("/proc/self/fd").length).toBe(openBefore);
  });
});

/**
 * A large file is read ahead while the bytes before are cut and stored: a read that fails
 * then must fail the backup with its own error, as a read awaited in turn did, and never
 * surface as an unhandled rejection (which ends the process).
 */
describe("archiver read-ahead", () => {
  it.each([0, 2])("fails the backup with the source's read error, whenever the read fails (%i codec threads)", async (threads) => {
    const repo = await Repository.init(new MemBackend(), PASSWORD, { kdf: FAST_KDF, threads });
    try {
      for (const failAfter of [1, 2, 3, 5]) {
        // 1 MiB pieces, then a read error that comes a moment later (as from a disk), while the archiver is busy with what it has.
        const content = (async function* () {
          for (let i = 0; i < failAfter; i++) yield randomBytes(1 << 20);
          await new Promise((resolve) => setTimeout(resolve, 5));
          throw new Error(`EIO: i/o error, read (after ${failAfter} MiB)`);
        })();
        const entries = (async function* () {
          yield { path: "data/big", type: "file" as const, mode: 0o600, content };
        })();
        await expect(new Archiver(repo).backupEntries(entries, ["/data"])).rejects.toThrow(`EIO: i/o error, read (after ${failAfter} MiB)`);
      }
    } finally {
      await repo.close();
    }
  });
});

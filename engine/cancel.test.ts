import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalBackend } from "../backends/local.js";
import { tempDir } from "../test/helpers.js";
import { Archiver } from "./archiver.js";
import { checkRepository } from "./checker.js";
import { prune } from "./prune.js";
import { Repository } from "./repository.js";
import { Restorer } from "./restorer.js";

const PASSWORD = "pw";
const FILES = 60;

/**
 * A cancelled check, prune or restore (an aborted signal, as a cancelled job's
 * activity gives) stops between packs or files, leaving the repository complete.
 */
describe("cancelling engine work", () => {
  const tmp = tempDir("cairn-cancel-");
  const src = path.join(tmp.dir, "src");
  const backend = new LocalBackend(path.join(tmp.dir, "repo"), { fsync: false });
  const open = () => Repository.open(backend, PASSWORD, { threads: 0 });
  const packs = async () => {
    const ids: string[] = [];
    for await (const o of backend.list("data/")) ids.push(o.key);
    return ids;
  };
  const expectHealthy = async () => {
    const repo = await open();
    try {
      expect((await checkRepository(repo, { readData: true })).errors).toEqual([]);
    } finally {
      await repo.close();
    }
  };
  let first: string;
  let second: string;

  beforeAll(async () => {
    mkdirSync(src);
    for (let i = 0; i < FILES; i++) writeFileSync(path.join(src, `f${i}`), randomBytes(1024));
    // Two files per pack (compression off, packs of 2 KiB): many packs from little data, each half used once the first snapshot is gone.
    const repo = await Repository.init(backend, PASSWORD, { kdf: { name: "scrypt", N: 1024, r: 8, p: 1 }, threads: 0, packSize: 2048, compression: "none" });
    first = (await new Archiver(repo, { host: "h" }).backup([src])).id;
    for (let i = 0; i < FILES; i += 2) rmSync(path.join(src, `f${i}`));
    second = (await new Archiver(repo, { host: "h" }).backup([src])).id;
    await repo.close();
  });
  afterAll(() => tmp.cleanup());

  it("a check stops between packs and reads fewer than all", async () => {
    const repo = await open();
    const stop = new AbortController();
    let done = 0;
    let total = 0;
    try {
      await expect(
        checkRepository(repo, {
          readData: true,
          signal: stop.signal,
          onProgress: (p) => {
            done = p.packsDone;
            total = p.packsTotal;
            if (p.packsDone === 3) stop.abort();
          },
        }),
      ).rejects.toThrow(/check cancelled; it changed nothing/);
    } finally {
      await repo.close();
    }
    expect(total).toBeGreaterThan(FILES / 2);
    expect(done).toBeLessThan(10);
  });

  it("a restore stops between files and leaves the ones written", async () => {
    const repo = await open();
    const target = path.join(tmp.dir, "restored");
    const stop = new AbortController();
    try {
      const snapshot = await repo.loadJSON<{ tree: string }>("snapshots", first);
      await expect(new Restorer(repo, { target, signal: stop.signal, onProgress: () => stop.abort() }).restore(snapshot.tree)).rejects.toThrow(/restore cancelled after \d+ of 60 files/);
    } finally {
      await repo.close();
    }
    const written = readdirSync(path.join(target, src)).length;
    expect(written).toBeLessThan(FILES);
  });

  it("a prune stops before its new index and deletes nothing; the repository checks clean, and a prune let run finishes the work", async () => {
    await backend.delete(`snapshots/${first}`);
    const before = await packs();
    const repo = await open();
    const stop = new AbortController();
    try {
      await expect(
        prune(repo, {
          maxUnused: "0%",
          signal: stop.signal,
          onProgress: (p) => {
            if (p.phase === "repacking" && p.done === 2) stop.abort();
          },
        }),
      ).rejects.toThrow(/prune cancelled after \d+ of \d+ packs were repacked, before it wrote a new index or deleted anything/);
    } finally {
      await repo.close();
    }
    const after = new Set(await packs());
    expect(before.filter((k) => !after.has(k))).toEqual([]);
    await expectHealthy();

    const again = await open();
    try {
      const result = await prune(again, { maxUnused: "0%" });
      expect(result.packs.repacked).toBeGreaterThan(FILES / 4);
    } finally {
      await again.close();
    }
    await expectHealthy();
    expect(second).toBeTruthy();
  });
});

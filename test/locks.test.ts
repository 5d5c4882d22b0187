import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalBackend } from "../backends/local.js";
import { BlobType } from "../engine/blob-index.js";
import { RepositoryLock, type LockInfo } from "../engine/locks.js";
import { Repository } from "../engine/repository.js";
import { cairn, cairnOk, PASSWORD, tempDir } from "./helpers.js";

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const HOUR = 3_600_000;

describe("repository locks between processes", () => {
  const tmp = tempDir();
  const repo = path.join(tmp.dir, "repo");
  const r = (...args: string[]) => ["-r", repo, ...args];
  /** The test process's own view of the repository, used to hold locks and write lock files. */
  let handle: Repository;

  const source = (name: string, files: Record<string, Buffer>) => {
    const dir = path.join(tmp.dir, name);
    mkdirSync(dir);
    for (const [file, bytes] of Object.entries(files)) writeFileSync(path.join(dir, file), bytes);
    return dir;
  };
  const restore = async (id: string, src: string) => {
    const target = path.join(tmp.dir, `restore-${id.slice(0, 8)}-${randomBytes(3).toString("hex")}`);
    await cairnOk(r("restore", id, "--target", target, "--verify"));
    const dir = path.join(target, src);
    return Object.fromEntries(readdirSync(dir).map((f) => [f, sha256(readFileSync(path.join(dir, f)))]));
  };
  const writeLock = (lock: Partial<LockInfo>) => {
    const now = Date.now();
    return handle.saveJSON("locks", {
      host: hostname(), pid: process.pid, time: new Date(now).toISOString(), expires: new Date(now + HOUR).toISOString(),
      exclusive: false, operation: "backup", ...lock,
    } satisfies LockInfo);
  };
  const removeLock = (id: string) => handle.backend.delete(`locks/${id}`);

  beforeAll(async () => {
    await cairnOk(r("init"));
    handle = await Repository.open(new LocalBackend(repo), PASSWORD, { threads: 0 });
  });
  afterAll(async () => {
    await handle.close();
    tmp.cleanup();
  });

  it("runs two backups into one repository at once; both snapshots restore, and prune keeps one copy of what both stored", async () => {
    const shared = randomBytes(400_000);
    const one = { "shared.bin": shared, "one.bin": randomBytes(300_000) };
    const two = { "shared.bin": shared, "two.bin": randomBytes(300_000) };
    const src1 = source("src1", one);
    const src2 = source("src2", two);
    const [b1, b2] = await Promise.all([cairnOk(r("backup", src1, "--json")), cairnOk(r("backup", src2, "--json"))]);
    const id1 = JSON.parse(b1.stdout).id;
    const id2 = JSON.parse(b2.stdout).id;
    expect(id1).not.toBe(id2);
    const hashes = (files: Record<string, Buffer>) => Object.fromEntries(Object.entries(files).map(([f, b]) => [f, sha256(b)]));
    expect(await restore(id1, src1)).toEqual(hashes(one));
    expect(await restore(id2, src2)).toEqual(hashes(two));

    await cairnOk(r("prune", "--max-unused", "0%"));
    const report = JSON.parse((await cairnOk(r("check", "--read-data", "--json"))).stdout);
    expect(report.errors).toEqual([]);
    expect(report.warnings).toEqual([]);
    // Three distinct files of one blob each: whichever backup stored shared.bin (or both did), one copy is left.
    const after = await Repository.open(new LocalBackend(repo), PASSWORD, { threads: 0 });
    const dataCopies = [...(await after.indexFilesWithEntries()).values()].flatMap((f) => f.packs.flatMap((p) => p.blobs)).filter((b) => b.type === BlobType.data);
    await after.close();
    expect(dataCopies).toHaveLength(3);
    expect(await restore(id1, src1)).toEqual(hashes(one));
    expect(await restore(id2, src2)).toEqual(hashes(two));
  });

  it("prune exits 11 while a backup holds the repository, and with --retry-lock waits for it", async () => {
    const lock = await RepositoryLock.acquire(handle, { exclusive: false, operation: "backup" });
    let released = false;
    try {
      const refused = await cairn(r("prune"));
      expect(refused.code).toBe(11);
      expect(refused.stderr).toMatch(/the repository is locked: a lock held by backup \(pid \d+ on .+\).*--retry-lock/);

      const waiting = cairn(r("--retry-lock", "2m", "prune", "--json"));
      let exited = false;
      void waiting.then(() => (exited = true));
      // While the lock is held prune cannot finish, however fast or slow the machine is.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(exited).toBe(false);
      await lock.release();
      released = true;
      const done = await waiting;
      expect(done.stderr).toBe("");
      expect(done.code).toBe(0);
      expect(JSON.parse(done.stdout).dryRun).toBe(false);
    } finally {
      if (!released) await lock.release();
    }
  });

  it("a backup exits 11 while prune holds the exclusive lock", async () => {
    const lock = await RepositoryLock.acquire(handle, { exclusive: true, operation: "prune" });
    try {
      const refused = await cairn(r("backup", path.join(tmp.dir, "src1")));
      expect(refused.code).toBe(11);
      expect(refused.stderr).toMatch(/an exclusive lock held by prune/);
    } finally {
      await lock.release();
    }
  });

  it("ignores a lock whose process on this host is gone", async () => {
    const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
    const id = await writeLock({ pid: dead, exclusive: true, operation: "prune" });
    try {
      await cairnOk(r("prune"));
      await cairnOk(r("backup", path.join(tmp.dir, "src1")));
    } finally {
      await removeLock(id);
    }
  });

  it("ignores another host's lock once its lease expired, and honours it before", async () => {
    const past = Date.now() - 2 * HOUR;
    const expired = await writeLock({ host: "elsewhere.example", pid: 1, time: new Date(past).toISOString(), expires: new Date(past + HOUR).toISOString() });
    try {
      await cairnOk(r("prune"));
    } finally {
      await removeLock(expired);
    }

    const live = await writeLock({ host: "elsewhere.example", pid: 1 });
    try {
      const refused = await cairn(r("prune"));
      expect(refused.code).toBe(11);
      expect(refused.stderr).toMatch(/pid 1 on elsewhere\.example/);
    } finally {
      await removeLock(live);
    }
    await cairnOk(r("prune"));
  });
});

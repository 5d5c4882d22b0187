import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MemBackend } from "../../backends/mem.js";
import { Repository } from "../../engine/repository.js";
import { tempDir } from "../../test/helpers.js";
import { PREFETCH_DIR, WalArchive } from "./archive.js";
import { PREFETCH_PID, WalPrefetcher } from "./prefetch.js";
import { walFetchCommand } from "./restore.js";
import { segmentName } from "./wal.js";

const SYSTEM = "7300000000000000001";
const SEGMENT_SIZE = 1 << 20;
const FAST_KDF = { name: "scrypt" as const, N: 1024, r: 8, p: 1 };

/** A WAL segment as PostgreSQL writes it, as far as the archive reads it: the long page header, then bytes telling which segment it is. */
function segment(timeline: number, segno: number, fill = 0): Buffer {
  const buf = Buffer.alloc(SEGMENT_SIZE, fill);
  buf.writeUInt16LE(0x0002, 2);
  buf.writeUInt32LE(timeline, 4);
  buf.writeBigUInt64LE(BigInt(segno * SEGMENT_SIZE), 8);
  buf.writeBigUInt64LE(BigInt(SYSTEM), 24);
  buf.writeUInt32LE(SEGMENT_SIZE, 32);
  buf.writeUInt32LE(8192, 36);
  buf.write(`${timeline}/${segno}`, SEGMENT_SIZE - 32);
  return buf;
}
const name = (timeline: number, segno: number) => segmentName(timeline, BigInt(segno), SEGMENT_SIZE);

/** Runs restore_command as PostgreSQL does (through the shell, in the data directory), without blocking this process's prefetcher. */
function restoreCommand(command: string, pgdata: string, file: string): Promise<number | null> {
  const line = command.replaceAll("%f", file).replaceAll("%p", "pg_wal/RECOVERYXLOG");
  return new Promise((resolve) => spawn("/bin/sh", ["-c", line], { cwd: pgdata, stdio: "ignore" }).on("close", resolve));
}

/**
 * The prefetcher against a real repository's WAL archive and the real restore_command;
 * "cairn" there is a program that exits 7, so a request the prefetcher should have
 * answered shows as 7.
 */
describe("the WAL prefetcher and restore_command", () => {
  let tmp: ReturnType<typeof tempDir>;
  let pgdata: string;
  let archive: WalArchive;
  let repo: Repository;
  let controller: AbortController;
  let running: Promise<boolean> | undefined;
  const command = walFetchCommand({ program: ["/bin/sh", "-c", "exit 7"], repository: "/unused", systemId: SYSTEM });
  const dir = () => path.join(pgdata, PREFETCH_DIR);
  const recovered = () => readFileSync(path.join(pgdata, "pg_wal", "RECOVERYXLOG"));

  async function push(file: string, data: Buffer) {
    const p = path.join(tmp.dir, file);
    writeFileSync(p, data);
    await archive.pushReceived(p, SYSTEM);
  }

  async function start(window = 3, awaitServer = false) {
    running = new WalPrefetcher(archive, { pgdata, systemId: SYSTEM, window, signal: controller.signal, awaitServer }).run();
    const pid = path.join(dir(), PREFETCH_PID);
    for (let i = 0; i < 500 && !existsSync(pid); i++) await new Promise((r) => setTimeout(r, 10));
  }

  async function until(what: string, check: () => boolean) {
    for (let i = 0; i < 1000; i++) {
      if (check()) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  beforeEach(async () => {
    tmp = tempDir("cairn-prefetch-");
    pgdata = path.join(tmp.dir, "data");
    mkdirSync(path.join(pgdata, "pg_wal"), { recursive: true });
    writeFileSync(path.join(pgdata, "postmaster.pid"), "1\n");
    writeFileSync(path.join(pgdata, "recovery.signal"), "");
    repo = await Repository.init(new MemBackend(), "pw", { kdf: FAST_KDF, threads: 0 });
    archive = new WalArchive(repo);
    controller = new AbortController();
    for (let s = 1; s <= 5; s++) await push(name(1, s), segment(1, s));
  });

  afterEach(async () => {
    controller.abort();
    await running;
    running = undefined;
    await repo.close();
    tmp.cleanup();
  });

  it("hands over the segments pg restore fetched ahead, and fills the window after them", async () => {
    mkdirSync(dir(), { recursive: true });
    for (const s of [1, 2]) writeFileSync(path.join(dir(), name(1, s)), segment(1, s));
    await start(2);
    await until("the window after segment 2", () => [3, 4].every((s) => existsSync(path.join(dir(), name(1, s)))));
    // Those before it are kept for recovery's first requests, not taken for segments it moved past.
    expect([1, 2].every((s) => existsSync(path.join(dir(), name(1, s))))).toBe(true);
    for (let s = 1; s <= 4; s++) {
      expect(await restoreCommand(command, pgdata, name(1, s))).toBe(0);
      expect(recovered().equals(segment(1, s))).toBe(true);
    }
  });

  it("serves each segment byte for byte, the later ones fetched ahead, without starting cairn", async () => {
    await start(3);
    expect(await restoreCommand(command, pgdata, name(1, 1))).toBe(0);
    expect(recovered().equals(segment(1, 1))).toBe(true);
    // The window fills behind the first request: the next three, whole.
    await until("three segments fetched ahead", () => [2, 3, 4].every((s) => existsSync(path.join(dir(), name(1, s)))));
    expect(existsSync(path.join(dir(), name(1, 5)))).toBe(false);
    for (let s = 2; s <= 5; s++) {
      expect(await restoreCommand(command, pgdata, name(1, s))).toBe(0);
      expect(recovered().equals(segment(1, s))).toBe(true);
    }
  });

  it("says a file is missing without starting cairn, so recovery ends cleanly there", async () => {
    await start(3);
    expect(await restoreCommand(command, pgdata, name(1, 5))).toBe(0);
    rmSync(path.join(pgdata, "pg_wal", "RECOVERYXLOG"));
    expect(await restoreCommand(command, pgdata, name(1, 6))).toBe(1);
    expect(await restoreCommand(command, pgdata, "00000002.history")).toBe(1);
    expect(existsSync(path.join(pgdata, "pg_wal", "RECOVERYXLOG"))).toBe(false);
    // Asked again once it is archived, it is there: a "missing" answer is never kept for a later request.
    await push(name(1, 6), segment(1, 6));
    expect(await restoreCommand(command, pgdata, name(1, 6))).toBe(0);
    expect(recovered().equals(segment(1, 6))).toBe(true);
  });

  it("never hands over a file for another name or timeline, a leftover answer, or a .partial fetched ahead", async () => {
    await push(`${name(1, 6)}.partial`, segment(1, 6, 0x11));
    await push(name(2, 5), segment(2, 5, 0x22));
    await start(3);
    expect(await restoreCommand(command, pgdata, name(1, 4))).toBe(0);
    await until("segment 5 fetched ahead", () => existsSync(path.join(dir(), name(1, 5))));
    // Only whole segments are fetched ahead: 6 exists only as a .partial.
    await new Promise((r) => setTimeout(r, 200));
    expect(readdirSync(dir())).not.toContain(name(1, 6));
    // A leftover answer from a request that gave up waiting is not served to the next request.
    writeFileSync(path.join(dir(), `${name(2, 5)}.ready`), "stale");
    // Recovery moves to timeline 2: what was fetched ahead on timeline 1 goes, and timeline 2's file is served.
    expect(await restoreCommand(command, pgdata, name(2, 5))).toBe(0);
    expect(recovered().equals(segment(2, 5, 0x22))).toBe(true);
    expect(readdirSync(dir()).filter((n) => n.startsWith("00000001"))).toEqual([]);
    // Asked for by name, a segment archived only as .partial is served from it, as wal-fetch does.
    expect(await restoreCommand(command, pgdata, name(1, 6))).toBe(0);
    expect(recovered().equals(segment(1, 6, 0x11))).toBe(true);
  });

  it("stops and removes what it fetched when recovery ends, and restore_command then starts cairn", async () => {
    await start(3);
    expect(await restoreCommand(command, pgdata, name(1, 1))).toBe(0);
    await until("segments fetched ahead", () => existsSync(path.join(dir(), name(1, 2))));
    rmSync(path.join(pgdata, "recovery.signal"));
    // PostgreSQL's last requests come after it removed the signal file: they are still answered.
    expect(await restoreCommand(command, pgdata, "00000001.history")).toBe(1);
    expect(await running).toBe(true);
    running = undefined;
    expect(existsSync(dir())).toBe(false);
    expect(await restoreCommand(command, pgdata, name(1, 2))).toBe(7);
  });

  it("started by pg restore before the server, answers the server's first requests, and ends with the server", async () => {
    rmSync(path.join(pgdata, "postmaster.pid"));
    mkdirSync(dir(), { recursive: true });
    writeFileSync(path.join(dir(), name(1, 1)), segment(1, 1));
    await start(2, true);
    writeFileSync(path.join(pgdata, "postmaster.pid"), "1\n");
    // Recovery's first request, the next timeline's history, is looked up in the archive without starting cairn;
    // the window after the restore's segment fills once it is answered.
    expect(await restoreCommand(command, pgdata, "00000002.history")).toBe(1);
    await until("the window after the restore's segment", () => [2, 3].every((s) => existsSync(path.join(dir(), name(1, s)))));
    expect(await restoreCommand(command, pgdata, name(1, 1))).toBe(0);
    expect(recovered().equals(segment(1, 1))).toBe(true);
    // Once the server has run, its stop ends the prefetcher, which leaves nothing behind.
    rmSync(path.join(pgdata, "postmaster.pid"));
    expect(await running).toBe(true);
    running = undefined;
    expect(existsSync(dir())).toBe(false);
  });

  it("stopped before the server ever started, leaves what it fetched for the server's first wal-fetch", async () => {
    rmSync(path.join(pgdata, "postmaster.pid"));
    await start(2, true);
    // Asked before the server runs (recovery's first segment), it serves and fills the window after it.
    expect(await restoreCommand(command, pgdata, name(1, 1))).toBe(0);
    await until("the window", () => [2, 3].every((s) => existsSync(path.join(dir(), name(1, s)))));
    controller.abort();
    expect(await running).toBe(true);
    running = undefined;
    expect(readdirSync(dir()).sort()).toEqual([name(1, 2), name(1, 3)]);
    // No prefetcher runs now: restore_command starts cairn for what is not there, takes what is.
    expect(await restoreCommand(command, pgdata, "00000002.history")).toBe(7);
    expect(await restoreCommand(command, pgdata, name(1, 2))).toBe(0);
    expect(recovered().equals(segment(1, 2))).toBe(true);
  });

  it("runs once per data directory", async () => {
    await start(3);
    expect(await new WalPrefetcher(archive, { pgdata, systemId: SYSTEM, window: 3 }).run()).toBe(false);
    expect(readFileSync(path.join(dir(), PREFETCH_PID), "utf8")).toBe(String(process.pid));
  });
});

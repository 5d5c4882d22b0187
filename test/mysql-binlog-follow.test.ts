import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalBackend } from "../backends/local.js";
import { Repository } from "../engine/repository.js";
import { loadBinlogPartial, readBinlogPartial, streamBinlogs, type BinlogStreamReport } from "../sources/mysql/binlog-stream.js";
import { loginOf, parseMysqlUrl, withOptionFile } from "../sources/mysql/connection.js";
import { cairnOk, CLI, PASSWORD, ROOT } from "./helpers.js";
import { BACKUP_PASSWORD, checksums, createAppDatabase, initMariaDb, markTarget, mysqlTempDir, serverAt, withServerAt, type MariaDb } from "./mysql.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Continuous binary log archiving from a shell: `cairn mysql binlog-archive --follow`
 * streams the server's binary log and stores the log it writes every second, so rows
 * written after the last backup, with no FLUSH and no other archive run, are
 * recoverable to a time between two marker rows; it reconnects after the server
 * restarts and archives the log the restart closed.
 */
describe("cairn mysql binlog-archive --follow", () => {
  const tmp = mysqlTempDir("cairn-binlog-follow-");
  const repo = path.join(tmp.dir, "repo");
  const spool = path.join(tmp.dir, "spool");
  const dbPasswordFile = path.join(tmp.dir, "db-password");
  const r = (...args: string[]) => ["-r", repo, ...args];
  let db: MariaDb;
  let follower: ChildProcess | undefined;
  let exited: Promise<number | null> = Promise.resolve(null);
  const lines: Record<string, unknown>[] = [];
  let stderr = "";

  /** Polls the follower's reports until one matches (the follower prints each change of what is archived). */
  const reported = async (what: string, match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const hit = lines.find(match);
      if (hit) return hit;
      if (follower?.exitCode !== null) throw new Error(`the follower exited before ${what}: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`the follower did not report ${what} in 120 s; it said: ${JSON.stringify(lines.slice(-5))} ${stderr}`);
      await sleep(200);
    }
  };
  const reaching = (at: { file: string; pos: number }) => (l: Record<string, unknown>) => {
    if (typeof l.partial !== "string") return false;
    const [file, pos] = l.partial.split(":");
    return file === at.file && Number(pos) >= at.pos;
  };

  beforeAll(async () => {
    writeFileSync(dbPasswordFile, BACKUP_PASSWORD, { mode: 0o600 });
    await cairnOk(r("init"));
    db = await initMariaDb(tmp.dir);
    await createAppDatabase(db, 5000);
    await cairnOk(r("mysql", "backup", "--physical", "--url", db.url, "--db-password-file", dbPasswordFile));
  }, 240_000);

  afterAll(async () => {
    if (follower && follower.exitCode === null) follower.kill("SIGTERM");
    await exited;
    await db?.destroy();
    tmp.cleanup();
  });

  it("stores the log the server writes while it writes it: a point-in-time recovery between two markers needs no FLUSH and no other run", async () => {
    follower = spawn(process.execPath, [CLI, ...r("--json", "mysql", "binlog-archive", "--follow", "--interval", "1", "--spool", spool, "--url", db.url, "--db-password-file", dbPasswordFile)], {
      cwd: ROOT,
      env: { ...process.env, CAIRN_PASSWORD: PASSWORD },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const child = follower;
    exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    let buffered = "";
    child.stdout!.on("data", (d: Buffer) => {
      buffered += d.toString("utf8");
      const parts = buffered.split("\n");
      buffered = parts.pop()!;
      for (const p of parts) if (p.trim()) lines.push(JSON.parse(p) as Record<string, unknown>);
    });
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    await reported("a first store", (l) => typeof l.partial === "string");

    const { target, atTarget } = await markTarget(db, 4500);
    const after = await serverAt(db);
    expect(after.file).toBe("binlog.000001");
    await reported(`${after.file}:${after.pos}`, reaching(after));

    const dir = path.join(tmp.dir, "at-target");
    const out = JSON.parse((await cairnOk(r("--json", "mysql", "restore", "--target-dir", dir, "--time", target))).stdout);
    expect(out.binlogs).toEqual(["binlog.000001"]);
    await withServerAt(dir, async (s) => {
      expect(await s.sql("SELECT GROUP_CONCAT(name ORDER BY name) FROM app.markers")).toBe("before");
      expect(await checksums(s, "app", ["items", "markers"])).toEqual(atTarget);
    });

    const latest = path.join(tmp.dir, "latest");
    await cairnOk(r("mysql", "restore", "--target-dir", latest));
    await withServerAt(latest, async (s) => {
      expect(await s.sql("SELECT GROUP_CONCAT(name ORDER BY name) FROM app.markers")).toBe("after,before");
    });
  }, 600_000);

  it("reconnects after the server restarts, archives the log the restart closed whole, and follows the new one", async () => {
    await db.stop();
    await db.start();
    await db.sql("INSERT INTO markers VALUES ('restarted', NOW(6))", "app");
    const now = await serverAt(db);
    expect(now.file).toBe("binlog.000002");
    await reported("binlog.000001 archived whole", (l) => l.archived === "binlog.000001");
    await reported(`${now.file}:${now.pos}`, reaching(now));
    expect(stderr).toContain("starting it again");

    follower!.kill("SIGTERM");
    expect(await exited).toBe(0);
    const dir = path.join(tmp.dir, "after-restart");
    const out = JSON.parse((await cairnOk(r("--json", "mysql", "restore", "--target-dir", dir))).stdout);
    expect(out.binlogs).toEqual(["binlog.000001", "binlog.000002"]);
    await withServerAt(dir, async (s) => {
      expect(await s.sql("SELECT GROUP_CONCAT(name ORDER BY name) FROM app.markers")).toBe("after,before,restarted");
    });
  }, 600_000);

  it("stores only what is new at each look and rewrites the segments as one every few stores: the stored prefix is what was streamed, and the server's own log after its first event", async () => {
    const repository = await Repository.open(new LocalBackend(repo), PASSWORD, { threads: 0 });
    const controller = new AbortController();
    const reports: BinlogStreamReport[] = [];
    try {
      await withOptionFile(loginOf(parseMysqlUrl(db.url), BACKUP_PASSWORD), async (optionFile) => {
        const streaming = streamBinlogs(repository, { optionFile, spool: path.join(tmp.dir, "spool-engine"), intervalSeconds: 1, replicaId: 4000000002, segmentsBeforeCompaction: 2, signal: controller.signal, onReport: (rep) => reports.push(rep) });
        try {
          for (let i = 0; i < 5; i++) {
            await db.sql(`INSERT INTO markers VALUES ('engine-${i}', NOW(6))`, "app");
            const at = await serverAt(db);
            const deadline = Date.now() + 120_000;
            while (!reports.some((rep) => rep.archivedFile === at.file && rep.archivedPosition! >= at.pos)) {
              if (Date.now() > deadline) throw new Error(`not stored up to ${at.file}:${at.pos}: ${JSON.stringify(reports.slice(-3))}`);
              await sleep(200);
            }
          }
        } finally {
          controller.abort();
          await streaming;
        }
      });
      const at = await serverAt(db);
      const partial = await loadBinlogPartial(repository, reports.at(-1)!.server);
      expect(partial).toMatchObject({ name: at.file, size: at.pos });
      expect(partial!.segments.length).toBeLessThanOrEqual(2);
      const objects: string[] = [];
      for await (const o of repository.backend.list("binlog/")) objects.push(o.key);
      expect(objects.length).toBe(partial!.segments.length);
      const stored = (await readBinlogPartial(repository, partial!))!;
      expect(stored.equals(readFileSync(path.join(tmp.dir, "spool-engine", at.file)).subarray(0, at.pos))).toBe(true);
      // The server's own file differs only in its first event (the replication protocol sends it without the in-use flag).
      const server = readFileSync(path.join(db.datadir, at.file)).subarray(0, at.pos);
      const firstEventEnd = 4 + server.readUInt32LE(4 + 9);
      expect(stored.length).toBe(server.length);
      expect(stored.subarray(firstEventEnd).equals(server.subarray(firstEventEnd))).toBe(true);
    } finally {
      await repository.close();
    }
  }, 600_000);
});

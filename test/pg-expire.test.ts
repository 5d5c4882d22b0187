import { readdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PASSWORD } from "./helpers.js";
import { archiveEverything, cairnCommand, cairnPg, cairnPgOk, clusterAt, initCluster, pgTempDir, waitFor, type PgCluster } from "./postgres.js";

/**
 * WAL retention: forgetting base backups removes the archived WAL only they needed,
 * and never what a kept base backup or the point-in-time window after it needs.
 * Counted file by file in the archive, and proven by recovering inside the window.
 */
describe("WAL expiry with base backup retention (cairn forget, cairn pg expire)", () => {
  const tmp = pgTempDir();
  const repo = path.join(tmp.dir, "repo");
  const passwordFile = path.join(tmp.dir, "password");
  const r = (...args: string[]) => ["-r", repo, "--password-file", passwordFile, ...args];
  let pg: PgCluster;

  const walDir = () => path.join(repo, "wal", readdirSync(path.join(repo, "wal"))[0]);
  // What the archive holds: a local repository writes each file under a ".tmp-" name and renames
  // it when complete, so a push still in flight (PostgreSQL archives asynchronously) is not archived yet.
  const archived = () => readdirSync(walDir()).filter((n) => !n.startsWith(".tmp-")).sort();
  const segments = (names: string[]) => names.filter((n) => /^[0-9A-F]{24}$/.test(n));
  const mark = (note: string) => pg.sql(`INSERT INTO markers VALUES ('${note}')`);
  const pause = () => new Promise((res) => setTimeout(res, 150));
  /** Writes a little, then closes the segment, so the archive grows by one segment. */
  const fillSegments = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await pg.sql("INSERT INTO filler SELECT generate_series(1, 2000)");
      await pg.sql("SELECT pg_switch_wal()");
    }
  };
  const backup = async () => JSON.parse((await cairnPgOk(r("--json", "pg", "backup", "--url", pg.url))).stdout) as { id: string; source: { startLsn: string; stopLsn: string } };
  const segmentOf = (lsn: string) => pg.sql(`SELECT pg_walfile_name('${lsn}')`);

  let kept: { id: string; source: { startLsn: string; stopLsn: string } };
  let time: string;

  beforeAll(async () => {
    writeFileSync(passwordFile, PASSWORD);
    await cairnPgOk(r("init"));
    pg = await initCluster(tmp.dir, { archive_mode: "on", archive_command: `${cairnCommand(repo, passwordFile)} pg wal-push %p` });
    await pg.sql("CREATE TABLE markers (note text); CREATE TABLE filler (i int)");
    await fillSegments(2);
  }, 120_000);

  afterAll(async () => {
    await pg?.destroy();
    tmp.cleanup();
  });

  it("forget of the older base backup deletes exactly the WAL before the kept one; recovery to a time after it still works", async () => {
    const old = await backup();
    await fillSegments(4);
    kept = await backup();
    await mark("before");
    await pause();
    time = await pg.sql("SELECT clock_timestamp()");
    await pause();
    await mark("after");
    await archiveEverything(pg);
    // A timeline history file (as a promotion would archive) must outlive any expiry.
    const history = path.join(tmp.dir, "00000007.history");
    writeFileSync(history, "1\t0/1000000\tno recovery target specified\n");
    await cairnPgOk(r("pg", "wal-push", "--pgdata", pg.pgdata, history));

    const keptStart = await segmentOf(kept.source.startLsn);
    const before = archived().filter((n) => n.slice(0, 24) < keptStart && !n.endsWith(".history"));
    // The WAL before the old backup, its own, its .backup file, and the four segments between the two.
    expect(segments(before).length).toBeGreaterThanOrEqual(6);
    const oldStart = await segmentOf(old.source.startLsn);
    expect(before.filter((n) => n.endsWith(".backup")).map((n) => n.slice(0, 24))).toEqual([oldStart]);

    const everything = archived();
    const dry = JSON.parse((await cairnPgOk(r("--json", "forget", "--tag", "pg-base", "--keep-last", "1", "--dry-run"))).stdout);
    expect(dry.walExpired[0].expired).toEqual(before);
    expect(archived()).toEqual(everything);

    const out = JSON.parse((await cairnPgOk(r("--json", "forget", "--tag", "pg-base", "--keep-last", "1"))).stdout);
    expect(out.removed).toEqual([old.id]);
    expect(out.walExpired).toEqual([expect.objectContaining({ expired: before, backups: 1 })]);
    const left = archived();
    // Nothing from before the kept base backup is left; everything from its start on is, and the history file.
    expect(left.filter((n) => n.slice(0, 24) < keptStart)).toEqual([]);
    expect(left).toEqual(everything.filter((n) => !before.includes(n)));
    expect(left).toContain("00000007.history");

    const check = JSON.parse((await cairnPgOk(r("--json", "pg", "check"))).stdout).clusters[0];
    expect(check.backups.map((b: { id: string; missing: string[] }) => [b.id, b.missing])).toEqual([[kept.id, []]]);

    const dir = path.join(tmp.dir, "recovered");
    const restore = JSON.parse((await cairnPgOk(r("--json", "pg", "restore", "--target-dir", dir, "--time", time))).stdout);
    expect(restore.chosen.snapshot).toBe(kept.id);
    const restored = await clusterAt(dir);
    try {
      await restored.start({ archive_mode: "off" });
      await waitFor("recovery to finish and promote", async () => (await restored.sql("SELECT pg_is_in_recovery()")) === "f", 120_000);
      const notes = (await restored.sql("SELECT note FROM markers")).split("\n");
      expect(notes).toContain("before");
      expect(notes).not.toContain("after");
    } finally {
      await restored.destroy();
    }
  }, 240_000);

  it("pg expire --archive-backups 1 keeps point-in-time WAL after the newest base backup only; an older one keeps the WAL that makes it consistent", async () => {
    await fillSegments(3);
    const newest = await backup();
    await archiveEverything(pg);
    const [keptStart, keptStop, newestStart] = [await segmentOf(kept.source.startLsn), await segmentOf(kept.source.stopLsn), await segmentOf(newest.source.startLsn)];
    const all = archived();
    const expected = all.filter((n) => !n.endsWith(".history") && n.slice(0, 24) < newestStart && (n.slice(0, 24) < keptStart || n.slice(0, 24) > keptStop));
    // The three segments written between the two base backups go; the older backup's own stay.
    expect(segments(expected).length).toBeGreaterThanOrEqual(3);

    const bad = await cairnPg(r("pg", "expire", "--archive-backups", "0"));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--archive-backups takes a whole number of at least 1");

    const out = JSON.parse((await cairnPgOk(r("--json", "pg", "expire", "--archive-backups", "1"))).stdout).clusters[0];
    expect(out).toMatchObject({ backups: 2, archiveBackups: 1, expired: expected });
    const left = archived();
    for (const n of all.filter((x) => x.slice(0, 24) >= keptStart && x.slice(0, 24) <= keptStop)) expect(left).toContain(n);
    expect(segments(left).filter((n) => n > keptStop && n < newestStart)).toEqual([]);
    // The window shows that gap: the older backup's WAL reaches its own end and breaks at the first expired segment,
    // before the newest backup begins (the dashboard draws the stretch between in red).
    const window = JSON.parse((await cairnPgOk(r("--json", "pg", "window"))).stdout).clusters[0];
    expect(window.reach.map((b: { backup: string }) => b.backup)).toEqual([kept.id, newest.id]);
    expect(window.reach[0].breaksAt).toBe(segments(expected).find((n) => n > keptStop));
    expect(window.reach[0].until.time <= window.reach[1].endTime).toBe(true);
    expect(window.reach[1].breaksAt).toBeUndefined();

    // Point-in-time recovery between the two base backups is gone (and said so); the older backup still restores to its own end.
    const between = await cairnPg(r("pg", "restore", "--target-dir", path.join(tmp.dir, "never"), "--time", time));
    expect(between.code).toBe(1);
    expect(between.stderr).toContain("missing segment");
    const dir = path.join(tmp.dir, "older");
    await cairnPgOk(r("pg", "restore", "--target-dir", dir, "--lsn", kept.source.stopLsn));
    const restored = await clusterAt(dir);
    try {
      await restored.start({ archive_mode: "off" });
      await waitFor("recovery to finish and promote", async () => (await restored.sql("SELECT pg_is_in_recovery()")) === "f", 120_000);
      expect(await restored.sql("SELECT count(*) FROM markers")).toBe("0");
    } finally {
      await restored.destroy();
    }
  }, 240_000);
});

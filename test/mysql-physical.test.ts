import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cairn, cairnOk } from "./helpers.js";
import { APP_TABLES, BACKUP_PASSWORD, checksums, createAppDatabase, initMariaDb, markTarget, mysqlTempDir, withServerAt, type MariaDb } from "./mysql.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Physical backups (mariadb-backup streamed into the repository, prepared on restore)
 * and point-in-time recovery by replaying archived binary logs: a restored server has
 * the tables of the moment asked for, to the checksum.
 */
describe("cairn mysql backup --physical / binlog-archive / restore --target-dir", () => {
  const tmp = mysqlTempDir();
  const repo = path.join(tmp.dir, "repo");
  const dbPasswordFile = path.join(tmp.dir, "db-password");
  const r = (...args: string[]) => ["-r", repo, ...args];
  const login = () => ["--url", db.url, "--db-password-file", dbPasswordFile];
  const tables = APP_TABLES;
  let db: MariaDb;
  let backupId = "";
  let atBackup: Record<string, string> = {};
  let atTarget: Record<string, string> = {};
  let target = "";
  let position = "";

  beforeAll(async () => {
    writeFileSync(dbPasswordFile, BACKUP_PASSWORD, { mode: 0o600 });
    await cairnOk(r("init"));
    db = await initMariaDb(tmp.dir);
    await createAppDatabase(db, 20000);
    atBackup = await checksums(db, "app", tables);
    const backup = JSON.parse((await cairnOk(r("--json", "mysql", "backup", "--physical", ...login()))).stdout);
    backupId = backup.id;
    expect(backup.tags).toContain("mysql-physical");
    expect(backup.source).toMatchObject({ type: "mysql", mode: "physical", server: expect.stringMatching(new RegExp(`:${db.port}$`)), binlogFile: "binlog.000001" });

    // Writes after the backup, a first marker, the target time, then a second marker.
    ({ position, target, atTarget } = await markTarget(db, 19000));
    const archived = JSON.parse((await cairnOk(r("--json", "mysql", "binlog-archive", ...login()))).stdout);
    expect(archived.files).toEqual(["binlog.000001"]);
  }, 240_000);

  afterAll(async () => {
    await db?.destroy();
    tmp.cleanup();
  });

  it("restores a physical backup as it was, with identical table checksums", async () => {
    const dir = path.join(tmp.dir, "as-backed-up");
    await cairnOk(r("mysql", "restore", backupId, "--target-dir", dir));
    await withServerAt(dir, async (s) => {
      expect(await checksums(s, "app", tables)).toEqual(atBackup);
      const again = await cairn(r("mysql", "restore", backupId, "--target-dir", dir));
      expect(again.code).toBe(1);
      expect(again.stderr).toContain("not empty");
    });
  }, 180_000);

  it("recovers to a time between two marker rows by replaying the archived binary log", async () => {
    const dir = path.join(tmp.dir, "pitr");
    const out = JSON.parse((await cairnOk(r("--json", "mysql", "restore", "--target-dir", dir, "--time", target))).stdout);
    expect(out).toMatchObject({ snapshot: backupId, binlogs: ["binlog.000001"] });
    await withServerAt(dir, async (s) => {
      expect(await s.sql("SELECT name FROM markers ORDER BY name", "app")).toBe("before");
      expect(await checksums(s, "app", tables)).toEqual(atTarget);
    });
  }, 180_000);

  it("recovers to a binary log position", async () => {
    const dir = path.join(tmp.dir, "pitr-position");
    await cairnOk(r("mysql", "restore", "--target-dir", dir, "--position", position));
    await withServerAt(dir, async (s) => {
      expect(await s.sql("SELECT name FROM markers ORDER BY name", "app")).toBe("before");
      expect(await checksums(s, "app", tables)).toEqual(atTarget);
    });
  }, 180_000);

  it("archives only binary logs it does not have, and names a missing one", async () => {
    const none = JSON.parse((await cairnOk(r("--json", "mysql", "binlog-archive", "--no-rotate", ...login()))).stdout);
    expect(none.files).toEqual([]);
    const next = JSON.parse((await cairnOk(r("--json", "mysql", "binlog-archive", ...login()))).stdout);
    expect(next.files).toEqual(["binlog.000002"]);

    // The server purges what it archived; a log rotated out and never archived leaves a gap that recovery names.
    await db.sql("FLUSH BINARY LOGS; FLUSH BINARY LOGS");
    // PURGE skips a log a replication connection still reads (the last archive's may linger a moment).
    for (let i = 0; (await db.sql("SHOW BINARY LOGS")).split("\n")[0].split("\t")[0] !== "binlog.000005"; i++) {
      if (i > 100) throw new Error("binlog.000001-4 were not purged in 20 s");
      await db.sql("PURGE BINARY LOGS TO 'binlog.000005'");
      await sleep(200);
    }
    await db.sql("FLUSH BINARY LOGS");
    expect(JSON.parse((await cairnOk(r("--json", "mysql", "binlog-archive", "--no-rotate", ...login()))).stdout).files).toEqual(["binlog.000005"]);
    const gap = await cairn(r("mysql", "restore", "--target-dir", path.join(tmp.dir, "gap")));
    expect(gap.code, gap.stdout + gap.stderr).toBe(1);
    expect(gap.stderr).toContain("binary log binlog.000003");
    expect(gap.stderr).toContain("is not in the repository");
  }, 120_000);
});

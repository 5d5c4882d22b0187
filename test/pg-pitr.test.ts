import { writeFileSync, mkdirSync, readdirSync, readFileSync, chownSync, existsSync, statSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PREFETCH_DIR } from "../sources/postgres/archive.js";
import { PREFETCH_PID } from "../sources/postgres/prefetch.js";
import { PASSWORD } from "./helpers.js";
import { cairnCommand, cairnPg, cairnPgOk, clusterAt, initCluster, pgTempDir, waitFor, type PgCluster } from "./postgres.js";

/**
 * Point-in-time recovery through the CLI: a cluster archives its WAL with
 * `cairn pg wal-push`, one base backup is taken, then pairs of marker commits are
 * written around a target of each kind. Each restore must land exactly between
 * its pair: the row before is there, the row after is not.
 */
describe("cairn pg restore (point-in-time recovery)", () => {
  const tmp = pgTempDir();
  const repo = path.join(tmp.dir, "repo");
  const passwordFile = path.join(tmp.dir, "password");
  const r = (...args: string[]) => ["-r", repo, "--password-file", passwordFile, ...args];
  let pg: PgCluster;
  const targets: { name: string; flags: string[]; before: string; after: string }[] = [];

  /** Commits one marker row in its own transaction; returns that transaction's id. */
  const mark = async (note: string) => (await pg.sql(`BEGIN; INSERT INTO markers VALUES ('${note}'); SELECT pg_current_xact_id(); COMMIT;`)).trim();
  const pause = () => new Promise((res) => setTimeout(res, 150));

  beforeAll(async () => {
    writeFileSync(passwordFile, PASSWORD);
    await cairnPgOk(r("init"));
    pg = await initCluster(tmp.dir, { archive_mode: "on", archive_command: `${cairnCommand(repo, passwordFile)} pg wal-push %p` });
    await pg.sql("CREATE TABLE markers (note text)");
    await mark("base");
    const backup = JSON.parse((await cairnPgOk(r("--json", "pg", "backup", "--url", pg.url))).stdout);
    // The base backup is in the repository as soon as the command has returned.
    expect((await cairnPgOk(r("--json", "snapshots"))).stdout).toContain(backup.id);

    await mark("time-before");
    await pause();
    const time = await pg.sql("SELECT clock_timestamp()");
    await pause();
    await mark("time-after");
    targets.push({ name: "time", flags: ["--time", time], before: "time-before", after: "time-after" });

    await mark("lsn-before");
    const lsn = await pg.sql("SELECT pg_current_wal_insert_lsn()");
    await mark("lsn-after");
    targets.push({ name: "lsn", flags: ["--lsn", lsn], before: "lsn-before", after: "lsn-after" });

    const xid = await mark("xid-before");
    await mark("xid-after");
    targets.push({ name: "xid", flags: ["--xid", xid], before: "xid-before", after: "xid-after" });

    await mark("name-before");
    await pg.sql("SELECT pg_create_restore_point('before-deploy')");
    await mark("name-after");
    targets.push({ name: "restore point", flags: ["--name", "before-deploy"], before: "name-before", after: "name-after" });

    // Move past the last marker's segment and wait until PostgreSQL has archived it.
    await mark("tail");
    const last = await pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    await pg.sql("SELECT pg_switch_wal()");
    await waitFor("the last segment to be archived", async () => (await pg.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")) >= last);
  }, 180_000);

  afterAll(async () => {
    await pg?.destroy();
    tmp.cleanup();
  });

  for (const kind of ["time", "lsn", "xid", "restore point"]) {
    it(`recovers to a ${kind} target exactly between two commits`, async () => {
      const t = targets.find((x) => x.name === kind)!;
      const dir = path.join(tmp.dir, `restore-${kind.replace(" ", "-")}`);
      const out = await cairnPg(r("pg", "restore", "--target-dir", dir, ...t.flags));
      // On a failure, say what the repository held then (a CI run once found its snapshot gone).
      expect(out.code, `${out.stderr}\nsnapshots/: ${existsSync(path.join(repo, "snapshots")) ? readdirSync(path.join(repo, "snapshots")).join(", ") : "(missing)"}; repository: ${existsSync(repo) ? readdirSync(repo).join(", ") : "(missing)"}`).toBe(0);
      expect(out.stdout).toContain("restored base backup");
      expect(statSync(path.join(dir, "recovery.signal")).isFile()).toBe(true);
      // The first segments recovery asks for are fetched during the restore, whole, under their own names,
      // and the prefetcher restore started waits for the server with the repository open.
      const ahead = readdirSync(path.join(dir, PREFETCH_DIR));
      expect(ahead.filter((n) => n !== PREFETCH_PID).length).toBeGreaterThan(0);
      for (const n of ahead) expect(n).toMatch(/^([0-9A-F]{24}|pid)$/);
      const prefetcher = Number(readFileSync(path.join(dir, PREFETCH_DIR, PREFETCH_PID), "utf8"));
      expect(() => process.kill(prefetcher, 0)).not.toThrow();
      const restored = await clusterAt(dir);
      try {
        await restored.start({ archive_mode: "off" });
        await waitFor("recovery to finish and promote", async () => (await restored.sql("SELECT pg_is_in_recovery()")) === "f", 120_000);
        const notes = (await restored.sql("SELECT note FROM markers")).split("\n");
        expect(notes).toContain(t.before);
        expect(notes).not.toContain(t.after);
        expect(notes).toContain("base");
        // The prefetcher that served recovery stops with it and leaves nothing in pg_wal.
        await waitFor("the prefetcher to stop", async () => !existsSync(path.join(dir, PREFETCH_DIR)), 30_000);
      } finally {
        await restored.destroy();
      }
    }, 180_000);
  }

  it("explains its choice and refuses targets outside the window, naming the window's ends", async () => {
    const explain = JSON.parse((await cairnPgOk(r("--json", "pg", "restore", "--target-dir", path.join(tmp.dir, "never"), "--name", "before-deploy", "--explain"))).stdout);
    expect(explain.chosen.usable).toBe(true);
    expect(readdirSync(tmp.dir)).not.toContain("never");

    const window = JSON.parse((await cairnPgOk(r("--json", "pg", "window"))).stdout).clusters[0];
    const early = await cairnPg(r("pg", "restore", "--target-dir", path.join(tmp.dir, "early"), "--time", "2000-01-01 00:00:00+00"));
    expect(early.code).toBe(1);
    expect(early.stderr).toContain("before the earliest recoverable point");
    expect(early.stderr).toContain(window.earliest.time);

    const late = await cairnPg(r("pg", "restore", "--target-dir", path.join(tmp.dir, "late"), "--time", "2999-01-01 00:00:00+00"));
    expect(late.code).toBe(1);
    expect(late.stderr).toContain("after the latest recoverable point");
    expect(late.stderr).toContain(window.latest.lsn);
  });

  it("never writes into a running cluster's directory or a non-empty one", async () => {
    const running = await cairnPg(r("pg", "restore", "--target-dir", pg.pgdata, "--immediate"));
    expect(running.code).toBe(1);
    expect(running.stderr).toContain("running");
    const busy = path.join(tmp.dir, "busy");
    mkdirSync(busy);
    writeFileSync(path.join(busy, "keep.txt"), "mine");
    chownSync(busy, statSync(tmp.dir).uid, statSync(tmp.dir).gid);
    const nonEmpty = await cairnPg(r("pg", "restore", "--target-dir", busy, "--immediate"));
    expect(nonEmpty.code).toBe(1);
    expect(nonEmpty.stderr).toContain("not empty");
    expect(readdirSync(busy)).toEqual(["keep.txt"]);
  });
});

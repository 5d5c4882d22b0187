import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, chownSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, PASSWORD } from "./helpers.js";
import { asPostgres, cairnCommand, cairnPg, cairnPgOk, initCluster, PG_BIN, pgTempDir, waitFor, type PgCluster } from "./postgres.js";

/**
 * WAL archiving keeps PostgreSQL's archive_command / restore_command contract, and
 * the spool archiver loses nothing when it is killed under load.
 */
describe("cairn pg wal-push / wal-fetch / archiver", () => {
  const tmp = pgTempDir();
  const repo = path.join(tmp.dir, "repo");
  const spool = path.join(tmp.dir, "spool");
  const passwordFile = path.join(tmp.dir, "password");
  const r = (...args: string[]) => ["-r", repo, "--password-file", passwordFile, ...args];
  const owner = { uid: 0, gid: 0 };
  let pg: PgCluster;
  let archiver: ChildProcess | undefined;
  const pushedByArchiver: string[] = [];

  const startArchiver = () => {
    const child = spawn(process.execPath, [CLI, ...r("pg", "archiver", "--pgdata", pg.pgdata, "--spool", spool)], { uid: owner.uid, gid: owner.gid, stdio: ["ignore", "pipe", "inherit"] });
    child.stdout!.on("data", (d: Buffer) => pushedByArchiver.push(...d.toString().trim().split("\n")));
    return child;
  };
  const lastArchived = async () => pg.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
  const segmentKey = (name: string) => {
    const cluster = readdirSync(path.join(repo, "wal"))[0];
    return path.join(repo, "wal", cluster, name);
  };

  beforeAll(async () => {
    writeFileSync(passwordFile, PASSWORD);
    owner.uid = statSync(tmp.dir).uid;
    owner.gid = statSync(tmp.dir).gid;
    await cairnPgOk(r("init"));
    pg = await initCluster(tmp.dir, {
      archive_mode: "on",
      archive_command: `${cairnCommand(repo, passwordFile)} pg wal-push --spool ${spool} %p`,
    });
  }, 120_000);

  afterAll(async () => {
    archiver?.kill("SIGKILL");
    await pg?.destroy();
    tmp.cleanup();
  });

  it("archives segments, .backup and .history files; the same segment twice is fine, different content is refused", async () => {
    await cairnPgOk(r("pg", "backup", "--url", pg.url));
    await pg.sql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS i");
    const seg = await pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    await pg.sql("SELECT pg_switch_wal()");
    await waitFor("a segment to be archived", async () => (await lastArchived()) >= seg);

    // The archived copy comes back byte for byte, and pushing it again succeeds.
    const fetched = path.join(tmp.dir, "fetched");
    await asPostgres("mkdir", [fetched]);
    await cairnPgOk(r("pg", "wal-fetch", "--pgdata", pg.pgdata, seg, path.join(fetched, seg)));
    const bytes = readFileSync(path.join(fetched, seg));
    expect(bytes.length).toBe(16 * 1024 * 1024);
    const again = JSON.parse((await cairnPgOk(r("--json", "pg", "wal-push", "--pgdata", pg.pgdata, path.join(fetched, seg)))).stdout);
    expect(again.outcome).toBe("already-archived");

    bytes[bytes.length - 100] ^= 0xff;
    writeFileSync(path.join(fetched, seg), bytes);
    const changed = await cairnPg(r("pg", "wal-push", "--pgdata", pg.pgdata, path.join(fetched, seg)));
    expect(changed.code).not.toBe(0);
    expect(changed.stderr).toContain("already archived");
    expect(changed.stderr).toContain("different content");

    // The base backup's .backup file went through archive_command too.
    const backupFile = readdirSync(path.join(pg.pgdata, "pg_wal")).find((n) => n.endsWith(".backup"))!;
    expect(backupFile).toBeDefined();
    await cairnPgOk(r("pg", "wal-fetch", "--pgdata", pg.pgdata, backupFile, path.join(fetched, backupFile)));
    expect(readFileSync(path.join(fetched, backupFile), "utf8")).toContain("STOP WAL LOCATION");

    const history = path.join(fetched, "00000005.history");
    writeFileSync(history, "3\t0/9000000\tno recovery target specified\n");
    await cairnPgOk(r("pg", "wal-push", "--pgdata", pg.pgdata, history));
    rmSync(history);
    await cairnPgOk(r("pg", "wal-fetch", "--pgdata", pg.pgdata, "00000005.history", history));
    expect(readFileSync(history, "utf8")).toContain("0/9000000");
  });

  it("wal-fetch exits 1 without a word for a segment the archive does not have, and above 125 for any other failure", async () => {
    const missing = await cairnPg(r("pg", "wal-fetch", "--pgdata", pg.pgdata, "000000090000000000000001", path.join(tmp.dir, "nothing")));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("");
    expect(readdirSync(tmp.dir)).not.toContain("nothing");

    // Any other failure must not look like a missing file: PostgreSQL would end recovery early.
    const seg = await lastArchived();
    const wrongPassword = await cairnPg(["-r", repo, "pg", "wal-fetch", "--pgdata", pg.pgdata, seg, path.join(tmp.dir, "nothing")], { CAIRN_PASSWORD: "wrong" });
    expect(wrongPassword.code).toBeGreaterThan(125);
    expect(wrongPassword.stderr).toContain("wrong password");
    expect(readdirSync(tmp.dir)).not.toContain("nothing");
  });

  it("refuses a segment written by another cluster", async () => {
    const other = path.join(tmp.dir, "other");
    const r2 = await asPostgres(path.join(PG_BIN, "initdb"), ["-D", other, "-U", "postgres", "--no-sync", "--no-instructions"]);
    expect(r2.code).toBe(0);
    const foreign = path.join(tmp.dir, "foreign");
    await asPostgres("mkdir", [foreign]);
    const name = readdirSync(path.join(other, "pg_wal")).find((n) => /^[0-9A-F]{24}$/.test(n))!;
    const renamed = path.join(foreign, "0000000100000000000000F0");
    copyFileSync(path.join(other, "pg_wal", name), renamed);
    chownSync(renamed, owner.uid, owner.gid);
    const refused = await cairnPg(r("pg", "wal-push", "--pgdata", pg.pgdata, renamed));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("another cluster");
    const fetch = await cairnPg(r("pg", "wal-fetch", "--pgdata", pg.pgdata, "0000000100000000000000F0", path.join(foreign, "back")));
    expect(fetch.code).toBe(1);
  });

  it("loses no segment under pgbench load when the archiver is killed and restarted; pg check names a deleted segment", async () => {
    const first = await pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    archiver = startArchiver();
    const bench = (args: string[]) => asPostgres(path.join(PG_BIN, "pgbench"), [...args, pg.url]);
    expect((await bench(["-i", "-s", "2", "-q"])).code).toBe(0);
    const load = bench(["-T", "20", "-c", "2", "-n"]);
    const switches = (async () => {
      for (let i = 0; i < 16; i++) {
        await pg.sql("SELECT pg_switch_wal()");
        await new Promise((res) => setTimeout(res, 600));
        if (i === 5) {
          archiver!.kill("SIGKILL");
          await new Promise((res) => archiver!.once("exit", res));
        }
        if (i === 9) archiver = startArchiver();
      }
    })();
    expect((await load).code).toBe(0);
    await switches;
    await pg.sql("CHECKPOINT");
    const last = await pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    await pg.sql("SELECT pg_switch_wal()");
    await waitFor("every segment to be archived", async () => (await lastArchived()) >= last, 120_000);
    expect(await pg.sql("SELECT failed_count FROM pg_stat_archiver")).toBe("0");
    archiver.kill("SIGTERM");
    await new Promise((res) => archiver!.once("exit", res));
    // The archiver pushed segments (the fast path was taken), before and after the kill.
    expect(pushedByArchiver.filter((l) => /stored|already/.test(l)).length).toBeGreaterThan(4);

    const report = JSON.parse((await cairnPgOk(r("--json", "pg", "check"))).stdout).clusters[0];
    const chain = report.backups[0];
    expect(chain.missing).toEqual([]);
    const expected = parseInt(last.slice(16), 16) - parseInt(first.slice(16), 16);
    expect(chain.segments).toBeGreaterThan(expected);

    const victim = first.slice(0, 16) + (parseInt(first.slice(16), 16) + 3).toString(16).toUpperCase().padStart(8, "0");
    rmSync(segmentKey(victim));
    const broken = await cairnPg(r("pg", "check"));
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain(`MISSING ${victim}`);
  }, 240_000);

  it("expires only the WAL that no kept base backup needs", async () => {
    // A segment the archiver is still writing sits under a .tmp- name until renamed: not archived yet.
    const archived = () => readdirSync(path.dirname(segmentKey("x"))).filter((n) => !n.startsWith(".tmp-")).sort();
    const startSegment = async (snapshot: { source: { startLsn: string } }) => pg.sql(`SELECT pg_walfile_name('${snapshot.source.startLsn}')`);
    await cairnPgOk(r("pg", "backup", "--url", pg.url));
    const bases = JSON.parse((await cairnPgOk(r("--json", "snapshots", "--tag", "pg-base"))).stdout);
    expect(bases.length).toBe(2);
    const [firstStart, secondStart] = [await startSegment(bases[0]), await startSegment(bases[1])];
    const segments = (names: string[]) => names.filter((n) => /^[0-9A-F]{24}$/.test(n));

    // With both base backups kept, only what came before the first one may go.
    const dry = JSON.parse((await cairnPgOk(r("--json", "pg", "expire", "--dry-run"))).stdout).clusters[0];
    expect(dry.expired.length).toBeGreaterThan(0);
    expect(dry.expired.every((n: string) => n.slice(0, 24) < firstStart)).toBe(true);
    const all = archived();
    expect(all.filter((n) => n.slice(0, 24) < firstStart && !n.endsWith(".history"))).toEqual(dry.expired);

    await cairnPgOk(r("forget", "--tag", "pg-base", "--keep-last", "1"));
    await cairnPgOk(r("pg", "expire"));
    const left = archived();
    expect(segments(left).every((n) => n >= secondStart)).toBe(true);
    // Every segment the kept backup needs is still there (newer ones may have been archived meanwhile).
    for (const n of segments(all).filter((x) => x >= secondStart)) expect(left).toContain(n);
    expect(left).toContain("00000005.history");
    const report = JSON.parse((await cairnPgOk(r("--json", "pg", "check"))).stdout).clusters[0];
    expect(report.backups.map((b: { missing: string[] }) => b.missing)).toEqual([[]]);
  }, 120_000);
});

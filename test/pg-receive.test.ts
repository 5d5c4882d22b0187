import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, PASSWORD } from "./helpers.js";
import { asPostgres, cairnPg, cairnPgOk, clusterAt, initCluster, pgTempDir, waitFor, type PgCluster } from "./postgres.js";

/**
 * Streaming WAL archiving with pg_receivewal against a real cluster that has no
 * archive_command: commits reach the archive without pg_switch_wal (completed
 * segments as they complete, the segment in progress as .partial when the receiver
 * stops), and recovery replays up to the last of them.
 */
describe("cairn pg receive", () => {
  const tmp = pgTempDir();
  const repo = path.join(tmp.dir, "repo");
  const spool = path.join(tmp.dir, "spool");
  const passwordFile = path.join(tmp.dir, "password");
  const r = (...args: string[]) => ["-r", repo, "--password-file", passwordFile, ...args];
  const owner = { uid: 0, gid: 0 };
  let pg: PgCluster;
  let receiver: ChildProcess | undefined;
  let lines: Record<string, unknown>[] = [];

  const startReceiver = () => {
    lines = [];
    const child = spawn(process.execPath, [CLI, ...r("--json", "pg", "receive", "--url", pg.url, "--spool", spool)], { uid: owner.uid, gid: owner.gid, stdio: ["ignore", "pipe", "inherit"] });
    let rest = "";
    child.stdout!.on("data", (d: Buffer) => {
      const parts = (rest + d.toString()).split("\n");
      rest = parts.pop()!;
      for (const p of parts) if (p.trim()) lines.push(JSON.parse(p));
    });
    receiver = child;
    return child;
  };
  const stopReceiver = async () => {
    const child = receiver!;
    const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    receiver = undefined;
  };
  const archived = () => {
    const wal = path.join(repo, "wal");
    return readdirSync(path.join(wal, readdirSync(wal)[0])).sort();
  };
  const mark = (note: string) => pg.sql(`INSERT INTO markers VALUES ('${note}')`);
  /** Waits until the receiver has flushed everything the server wrote so far. */
  const received = async () => {
    const lsn = await pg.sql("SELECT pg_current_wal_lsn()");
    await waitFor("pg_receivewal to flush the last commit", async () => (await pg.sql(`SELECT coalesce(bool_and(flush_lsn >= '${lsn}'), false) FROM pg_stat_replication WHERE application_name = 'cairn receive'`)) === "t");
  };
  /** About 24 MB of WAL: at least one segment completes on its own. */
  const fill = () => pg.sql("INSERT INTO filler SELECT g, repeat('x', 500) FROM generate_series(1, 40000) g");
  const currentSegment = () => pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");

  beforeAll(async () => {
    writeFileSync(passwordFile, PASSWORD);
    owner.uid = statSync(tmp.dir).uid;
    owner.gid = statSync(tmp.dir).gid;
    await cairnPgOk(r("init"));
    pg = await initCluster(tmp.dir);
    await pg.sql("CREATE TABLE markers (note text); CREATE TABLE filler (i int, pad text)");
  }, 120_000);

  afterAll(async () => {
    receiver?.kill("SIGKILL");
    await pg?.destroy();
    tmp.cleanup();
  });

  let partialSegment: string;

  it("creates the slot, archives segments as they complete and the one in progress as .partial on stop; recovery reaches the last commit", async () => {
    expect(await pg.sql("SHOW archive_mode")).toBe("off");
    startReceiver();
    await waitFor("the receiver to stream", async () => lines.some((l) => l.streaming));
    expect(lines.find((l) => l.streaming)).toMatchObject({ slot: "cairn", slotCreated: true });
    expect(await pg.sql("SELECT slot_type FROM pg_replication_slots WHERE slot_name = 'cairn'")).toBe("physical");

    await cairnPgOk(r("pg", "backup", "--url", pg.url));
    await mark("after-backup");
    await fill();
    await mark("last");
    partialSegment = await currentSegment();
    await received();
    // The segment before the last commit's completed on its own and was archived while the receiver ran.
    const previous = partialSegment.slice(0, 16) + (parseInt(partialSegment.slice(16), 16) - 1).toString(16).toUpperCase().padStart(8, "0");
    await waitFor("the completed segment to be archived", async () => archived().includes(previous));
    expect(archived()).not.toContain(partialSegment);

    await stopReceiver();
    expect(lines).toContainEqual({ file: `${partialSegment}.partial`, outcome: "stored" });
    expect(archived()).toContain(`${partialSegment}.partial`);
    expect(archived()).not.toContain(partialSegment);

    const dir = path.join(tmp.dir, "recovered");
    await cairnPgOk(r("pg", "restore", "--target-dir", dir));
    const restored = await clusterAt(dir);
    try {
      await restored.start();
      await waitFor("recovery to finish and promote", async () => (await restored.sql("SELECT pg_is_in_recovery()")) === "f", 120_000);
      expect((await restored.sql("SELECT note FROM markers ORDER BY note")).split("\n")).toEqual(["after-backup", "last"]);
    } finally {
      await restored.destroy();
    }
  }, 240_000);

  it("resumes where it stopped: the .partial grows on the next stop, and the whole segment replaces it once complete", async () => {
    startReceiver();
    await waitFor("the receiver to stream", async () => lines.some((l) => l.streaming));
    expect(lines.find((l) => l.streaming)).toMatchObject({ slotCreated: false });
    await mark("second-run");
    expect(await currentSegment()).toBe(partialSegment);
    await received();
    await stopReceiver();
    expect(lines).toContainEqual({ file: `${partialSegment}.partial`, outcome: "extended" });

    startReceiver();
    await waitFor("the receiver to stream", async () => lines.some((l) => l.streaming));
    await fill();
    await received();
    // The receiver removes the archived .partial right after it stored the whole segment.
    await waitFor("the whole segment to replace its .partial in the archive", async () => archived().includes(partialSegment) && !archived().includes(`${partialSegment}.partial`));
    await stopReceiver();

    const check = JSON.parse((await cairnPgOk(r("--json", "pg", "check"))).stdout).clusters[0];
    expect(check.backups[0].missing).toEqual([]);
  }, 240_000);

  it("refuses a spool that holds another cluster's WAL, and a slot name pg_receivewal cannot use", async () => {
    const foreign = path.join(tmp.dir, "foreign-spool");
    await asPostgres("mkdir", [foreign]);
    await asPostgres("sh", ["-c", `echo '{"systemId":"1234"}' > ${foreign}/cairn-receive.json`]);
    const refused = await cairnPg(r("pg", "receive", "--url", pg.url, "--spool", foreign));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("holds WAL of database system 1234");
    const badSlot = await cairnPg(r("pg", "receive", "--url", pg.url, "--spool", path.join(tmp.dir, "other-spool"), "--slot", "Bad-Name"));
    expect(badSlot.code).toBe(1);
    expect(badSlot.stderr).toContain("lower-case letters, digits and underscores");
  });
});

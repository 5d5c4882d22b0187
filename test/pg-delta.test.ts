import { createHash } from "node:crypto";
import { openSync, closeSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PASSWORD } from "./helpers.js";
import { asPostgres, cairnPg, cairnPgOk, clusterAt, initCluster, PG_BIN, pgTempDir, waitFor, type PgCluster } from "./postgres.js";

/**
 * Delta restore: a base backup written over the stopped data directory of the same
 * cluster rewrites only what differs from the backup, so a damaged relation file
 * comes back while every file that already matched keeps its inode (and, when the
 * server had not touched it, its mtime).
 */
describe("cairn pg restore --delta", () => {
  const tmp = pgTempDir();
  const repo = path.join(tmp.dir, "repo");
  const passwordFile = path.join(tmp.dir, "password");
  const r = (...args: string[]) => ["-r", repo, "--password-file", passwordFile, ...args];
  const dir = path.join(tmp.dir, "restored");
  let pg: PgCluster;
  let expected: string;

  const table = "SELECT count(*), sum(hashtext(note)) FROM items";
  /** Every file under the data directory: inode, mtime (ns) and content hash. */
  const survey = (root: string) => {
    const out = new Map<string, { ino: bigint; mtime: bigint; sha: string }>();
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile()) {
          const st = statSync(p, { bigint: true });
          out.set(path.relative(root, p), { ino: st.ino, mtime: st.mtimeNs, sha: createHash("sha256").update(readFileSync(p)).digest("hex") });
        }
      }
    };
    walk(root);
    return out;
  };
  const startAndPromote = async (c: PgCluster) => {
    await c.start({ archive_mode: "off" });
    await waitFor("recovery to finish and promote", async () => (await c.sql("SELECT pg_is_in_recovery()")) === "f", 120_000);
  };

  beforeAll(async () => {
    writeFileSync(passwordFile, PASSWORD);
    await cairnPgOk(r("init"));
    pg = await initCluster(tmp.dir);
    await pg.sql("CREATE TABLE items (id int, note text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 20000) g");
    expected = await pg.sql(table);
    await cairnPgOk(r("pg", "backup", "--url", pg.url));
  }, 120_000);

  afterAll(async () => {
    await pg?.destroy();
    tmp.cleanup();
  });

  it("brings a damaged relation file back and leaves every file that matched as it was (same inode, same mtime)", async () => {
    // A data directory of the cluster as a restore leaves it, run once and stopped.
    await cairnPgOk(r("pg", "restore", "--target-dir", dir, "--immediate"));
    const pristine = survey(dir);
    const restored = await clusterAt(dir);
    await startAndPromote(restored);
    const relation = await restored.sql("SELECT pg_relation_filepath('items')");
    await restored.stop();

    const victim = path.join(dir, relation);
    const fd = openSync(victim, "r+");
    writeSync(fd, Buffer.alloc(8192, 0xab), 0, 8192, 8192 * 3);
    closeSync(fd);
    await restored.start({ archive_mode: "off" });
    expect(await restored.sql(table).catch((err: Error) => err.message)).toMatch(/invalid page/);
    await restored.stop();

    const before = survey(dir);
    const out = JSON.parse((await cairnPgOk(r("--json", "pg", "restore", "--target-dir", dir, "--delta", "--immediate"))).stdout);
    const after = survey(dir);
    expect(out.filesUnchanged).toBeGreaterThan(500);
    expect(out.bytesWritten).toBeLessThan(out.bytes / 10);
    expect(readFileSync(victim).subarray(8192 * 3, 8192 * 4).equals(Buffer.alloc(8192, 0xab))).toBe(false);

    // A file whose content already matched is not rewritten: same inode. Its times are set back to the
    // backup's (as pgBackRest does), so one the server never touched since the first restore keeps its mtime.
    let untouched = 0;
    for (const [file, b] of before) {
      const a = after.get(file);
      if (!a || a.sha !== b.sha) continue;
      expect({ file, ino: a.ino }).toEqual({ file, ino: b.ino });
      // postgresql.auto.conf and recovery.signal are the restore's own: written again each time.
      if (pristine.get(file)?.mtime !== b.mtime || file === "postgresql.auto.conf" || file === "recovery.signal") continue;
      untouched++;
      expect({ file, mtime: a.mtime }).toEqual({ file, mtime: b.mtime });
    }
    expect(untouched).toBeGreaterThan(500);
    expect(after.get(relation)!.ino).toBe(before.get(relation)!.ino);

    await startAndPromote(restored);
    try {
      expect(await restored.sql(table)).toBe(expected);
    } finally {
      await restored.stop();
    }
  }, 240_000);

  it("refuses a running cluster's directory, another cluster's, and a directory that is not a data directory", async () => {
    const running = await cairnPg(r("pg", "restore", "--target-dir", pg.pgdata, "--delta", "--immediate"));
    expect(running.code).toBe(1);
    expect(running.stderr).toContain("postmaster.pid");

    const other = path.join(tmp.dir, "other");
    expect((await asPostgres(path.join(PG_BIN, "initdb"), ["-D", other, "-U", "postgres", "--no-sync", "--no-instructions"])).code).toBe(0);
    const untouched = survey(other);
    const foreign = await cairnPg(r("pg", "restore", "--target-dir", other, "--delta", "--immediate"));
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toContain("never writes over another cluster");
    expect(survey(other)).toEqual(untouched);

    const empty = await cairnPg(r("pg", "restore", "--target-dir", path.join(tmp.dir, "nothing-here"), "--delta", "--immediate"));
    expect(empty.code).toBe(1);
    expect(empty.stderr).toContain("--delta restores over an existing data directory");
  });
});

import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PASSWORD } from "./helpers.js";
import { asPostgres, cairnPgOk, clusterAt, initCluster, PG_BIN, pgTempDir, waitFor, type PgCluster } from "./postgres.js";

/**
 * Base backups are stored page by page: after updates scattered over a table, the
 * second base backup stores a small fraction of the first (content-defined 1 MiB
 * chunks would store nearly all of it again), and it restores to the same rows.
 */
describe("cairn pg backup (deduplicated base backups)", () => {
  const tmp = pgTempDir();
  const repo = path.join(tmp.dir, "repo");
  const passwordFile = path.join(tmp.dir, "password");
  const r = (...args: string[]) => ["-r", repo, "--password-file", passwordFile, ...args];
  let pg: PgCluster;
  const backup = async () => JSON.parse((await cairnPgOk(r("--json", "pg", "backup", "--url", pg.url))).stdout);
  const accountsDigest = (c: PgCluster) => c.sql("SELECT md5(string_agg(a::text, ',' ORDER BY aid)) FROM pgbench_accounts a");

  beforeAll(async () => {
    writeFileSync(passwordFile, PASSWORD);
    await cairnPgOk(r("init"));
    pg = await initCluster(tmp.dir);
    const init = await asPostgres(path.join(PG_BIN, "pgbench"), ["-i", "-s", "5", "-q", pg.url]);
    expect(init.code).toBe(0);
    await pg.sql("CHECKPOINT");
  }, 120_000);

  afterAll(async () => {
    await pg?.destroy();
    tmp.cleanup();
  });

  it("records what recovery needs, and a second backup after scattered updates stores a small fraction of the first", async () => {
    const first = await backup();
    const info = first.source;
    expect(info).toMatchObject({ type: "postgres", mode: "physical", timeline: 1, version: "15", segmentSize: 16 * 1024 * 1024 });
    expect(info.systemId).toBe(await pg.sql("SELECT system_identifier FROM pg_control_system()"));
    expect(info.backupLabel).toContain(`START WAL LOCATION: ${info.startLsn}`);
    expect(first.tags).toContain("pg-base");
    expect(first.summary.totalBytes).toBeGreaterThan(70 * 1024 * 1024);

    // 300 single-row updates scattered over the 500,000-row table, and two small tables rewritten.
    await pg.sql("UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid IN (SELECT (random() * 499999)::int + 1 FROM generate_series(1, 300))");
    await pg.sql("UPDATE pgbench_branches SET bbalance = bbalance + 1");
    await pg.sql("UPDATE pgbench_tellers SET tbalance = tbalance + 1");
    await pg.sql("CHECKPOINT");
    const digest = await accountsDigest(pg);
    const second = await backup();
    expect(second.summary.dataAddedPacked).toBeLessThan(first.summary.dataAddedPacked / 5);

    // The second backup alone restores the changed rows.
    const dir = path.join(tmp.dir, "restored");
    await cairnPgOk(r("pg", "restore", "--target-dir", dir, "--immediate"));
    const restored = await clusterAt(dir);
    try {
      await restored.start();
      await waitFor("recovery to end", async () => (await restored.sql("SELECT pg_is_in_recovery()")) === "f", 120_000);
      expect(await accountsDigest(restored)).toBe(digest);
    } finally {
      await restored.destroy();
    }
  }, 300_000);
});

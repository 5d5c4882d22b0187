import { readdirSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiClient } from "./api-client.js";
import { cairnOk, PASSWORD } from "./helpers.js";
import { archivingPrimary } from "./pg-archiving.js";
import { testPolicy } from "./policy-fixtures.js";
import { archiveEverything, pgTempDir, type PgCluster } from "./postgres.js";
import { startStack, type Stack } from "./stack.js";

/**
 * A physical PostgreSQL plan's retention step: the base backups it forgets take the
 * archived WAL only they needed with them, and the job says how many files went.
 */
describe("plan retention expires archived WAL (Temporal + worker + initdb'd cluster)", () => {
  const tmp = pgTempDir("cairn-pg-retention-");
  const dataDir = path.join(tmp.dir, "data");
  const repo = path.join(tmp.dir, "repo");
  /** Written by archivingPrimary. */
  const passwordFile = path.join(tmp.dir, "password");
  let stack: Stack;
  let pg: PgCluster;

  const archived = () => {
    const wal = path.join(repo, "wal");
    return readdirSync(path.join(wal, readdirSync(wal)[0])).sort();
  };

  beforeAll(async () => {
    // The repository (tmp.dir/repo) and its wal/ folder belong to the postgres user, whose archive_command writes there.
    ({ primary: pg } = await archivingPrimary(tmp.dir));
    await pg.sql("CREATE TABLE filler (i int)");
    await archiveEverything(pg);
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir });
  }, 180_000);

  afterAll(async () => {
    await stack?.close();
    await pg?.destroy();
    tmp.cleanup();
  });

  it("the second run's retention forgets the first base backup and deletes the WAL before the second", async () => {
    const { ok, pollJob } = apiClient(stack.api);
    const { id: repositoryId } = await ok<{ id: string }>("POST", "/v1/repositories", { name: "pg", url: repo, password: PASSWORD });
    const { id: planId } = await ok<{ id: string }>("POST", "/v1/plans", {
      name: "cluster",
      repositoryId,
      source: { type: "postgres", mode: "physical", url: pg.url },
      retention: { keepLast: 1 },
    });
    const run = async () => pollJob((await ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`)).jobId, (j) => j.status !== "running");

    const first = await run();
    expect(first, JSON.stringify(first)).toMatchObject({ status: "completed" });
    for (let i = 0; i < 3; i++) {
      await pg.sql("INSERT INTO filler SELECT generate_series(1, 2000)");
      await pg.sql("SELECT pg_switch_wal()");
    }
    await archiveEverything(pg);
    const beforeRun = archived();

    const second = await run();
    expect(second, JSON.stringify(second)).toMatchObject({ status: "completed", result: { snapshotsRemoved: 1 } });
    const bases = JSON.parse((await cairnOk(["-r", repo, "--password-file", passwordFile, "--json", "snapshots", "--tag", "pg-base"])).stdout);
    expect(bases.map((b: { id: string }) => b.id)).toEqual([second.snapshotId]);
    const start = await pg.sql(`SELECT pg_walfile_name('${bases[0].source.startLsn}')`);

    // Everything archived before the kept base backup started went (the first backup's segments, its .backup file, the three between).
    const expired = beforeRun.filter((n) => n.slice(0, 24) < start && !n.endsWith(".history"));
    expect(expired.filter((n) => /^[0-9A-F]{24}$/.test(n)).length).toBeGreaterThanOrEqual(4);
    expect((second.result as { walFilesExpired: number }).walFilesExpired).toBeGreaterThanOrEqual(expired.length);
    const left = archived();
    expect(left.filter((n) => n.slice(0, 24) < start)).toEqual([]);
    for (const n of beforeRun.filter((x) => x.slice(0, 24) >= start)) expect(left).toContain(n);

    const check = JSON.parse((await cairnOk(["-r", repo, "--password-file", passwordFile, "--json", "pg", "check"])).stdout).clusters[0];
    expect(check.backups).toEqual([expect.objectContaining({ id: second.snapshotId, missing: [] })]);
  }, 300_000);
});

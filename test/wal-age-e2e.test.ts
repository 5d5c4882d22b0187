import { renameSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { apiClient } from "./api-client.js";
import { PASSWORD } from "./helpers.js";
import { archivingPrimary } from "./pg-archiving.js";
import { testPolicy } from "./policy-fixtures.js";
import { archiveEverything, pgTempDir, waitFor, type PgCluster } from "./postgres.js";
import { startStack, type Stack } from "./stack.js";

/**
 * The WAL archive's age in /metrics: PostgreSQL archives with `cairn pg wal-push`
 * (outside Temporal), the API asks a worker every CAIRN_WAL_AGE_REFRESH_SECONDS for
 * each physical plan's newest archived segment, and a scrape shows when it was
 * archived and how long ago.
 */
describe("WAL archive age in /metrics (Temporal + worker + initdb'd cluster archiving with wal-push)", () => {
  const tmp = pgTempDir("cairn-wal-age-");
  const dataDir = path.join(tmp.dir, "data");
  const repo = path.join(tmp.dir, "repo");
  let stack: Stack;
  let pg: PgCluster;


  beforeAll(async () => {
    // The repository (tmp.dir/repo) and its wal/ folder belong to the postgres user, whose archive_command writes there.
    ({ primary: pg } = await archivingPrimary(tmp.dir));
    await pg.sql("CREATE TABLE filler (i int)");
    await archiveEverything(pg);
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, api: { walAgeRefreshSeconds: 1 } });
  }, 180_000);

  afterAll(async () => {
    vi.restoreAllMocks();
    await stack?.close();
    await pg?.destroy();
    tmp.cleanup();
  });

  it("after pg_switch_wal the plan's last archived time appears in /metrics and the recovery window; an unreadable archive keeps it and says why once", async () => {
    const { ok, call, pollJob } = apiClient(stack.api);
    const { id: repositoryId } = await ok<{ id: string }>("POST", "/v1/repositories", { name: "pg", url: repo, password: PASSWORD });
    const { id: planId } = await ok<{ id: string }>("POST", "/v1/plans", { name: "cluster", repositoryId, source: { type: "postgres", mode: "physical", url: pg.url } });
    const job = await pollJob((await ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`)).jobId, (j) => j.status !== "running");
    expect(job, JSON.stringify(job)).toMatchObject({ status: "completed" });

    // Whole seconds: the gauge is compared with a time taken before the switch.
    const beforeSwitch = Math.floor(Date.now() / 1000) - 1;
    await pg.sql("INSERT INTO filler SELECT generate_series(1, 1000)");
    await archiveEverything(pg);
    const lastWal = await pg.sql("SELECT last_archived_wal FROM pg_stat_archiver");

    const labels = `{plan_id="${planId}",plan="cluster"}`;
    const gauge = async (name: string) => {
      const res = await call<string>("GET", "/metrics");
      expect(res.status).toBe(200);
      const line = res.body.split("\n").find((l) => l.startsWith(`${name}${labels} `));
      return line === undefined ? undefined : Number(line.split(" ")[1]);
    };
    // The worker's answer (asked directly) names the switched segment, archived since the switch.
    const window = await ok<{ lastArchivedAt?: string; lastArchivedWal?: string }>("GET", `/v1/plans/${planId}/recovery-window`);
    expect(window.lastArchivedWal).toBe(lastWal);
    const archivedAt = Date.parse(window.lastArchivedAt!) / 1000;
    expect(archivedAt).toBeGreaterThanOrEqual(beforeSwitch);
    expect(archivedAt * 1000).toBeLessThanOrEqual(Date.now());
    // The API's refresh loop (every second here) brings the same time to /metrics.
    await waitFor("the WAL archive metric to show the switched segment", async () => (await gauge("cairn_wal_archive_last_archived_timestamp_seconds")) === archivedAt, 120_000);
    const age = await gauge("cairn_wal_archive_age_seconds");
    expect(age).toBeGreaterThanOrEqual(0);
    expect(age).toBeLessThan(300);

    // The repository goes away: the metric keeps its last value, the API says why once.
    const said: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    vi.spyOn(process.stderr, "write").mockImplementation(((chunk: string | Uint8Array, ...rest: unknown[]) => {
      if (String(chunk).includes("WAL archive of plan cluster")) said.push(String(chunk));
      return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stderr.write);
    renameSync(repo, `${repo}-moved`);
    try {
      await waitFor("the refresh to say the archive cannot be read", async () => said.length > 0, 120_000);
      expect(said[0]).toMatch(/could not be read: .*keeps its last value/);
      // Several more refreshes (one a second) fail the same way without saying it again.
      await new Promise((r) => setTimeout(r, 5000));
      expect(said).toHaveLength(1);
      expect(await gauge("cairn_wal_archive_last_archived_timestamp_seconds")).toBe(archivedAt);
    } finally {
      renameSync(`${repo}-moved`, repo);
      vi.restoreAllMocks();
    }
  }, 400_000);
});

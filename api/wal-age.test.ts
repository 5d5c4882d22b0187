import * as path from "node:path";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCatalog, type OpenCatalog } from "../db/client.js";
import { alerts, plans, repositories } from "../db/schema.js";
import { SecretBox } from "../engine/secret-box.js";
import { tempDir } from "../test/helpers.js";
import { seedCatalog } from "../test/catalog-template.js";
import { inProcessWorkers, testPolicy } from "../test/policy-fixtures.js";
import { WalAgeCache } from "./wal-age.js";

/**
 * The refresh against a repository a worker cannot open (its disk gone): the plan
 * keeps its last value, the refresh says why once, and a value older than the
 * plan's RPO opens its wal_archive_stale alert (a fresh one clears it).
 */
describe("WalAgeCache.refresh with an unreadable archive", () => {
  const scratch = tempDir("cairn-wal-age-");
  let catalog: OpenCatalog;
  let cache: WalAgeCache;
  const said: string[] = [];

  beforeAll(async () => {
    await seedCatalog(scratch.dir);
    catalog = await openCatalog({ dataDir: scratch.dir });
    const secretBox = new SecretBox(SecretBox.generateKey());
    const policy = testPolicy(scratch.dir, scratch.dir);
    await catalog.db.insert(repositories).values({ id: "r1", name: "gone", url: path.join(scratch.dir, "no-repo"), sealedPassword: secretBox.seal("pw") });
    await catalog.db.insert(plans).values([
      { id: "p1", name: "db1", repositoryId: "r1", rpoMinutes: 15, source: { type: "postgres", mode: "physical", url: "postgresql://postgres@127.0.0.1:5999/postgres" } },
      { id: "p2", name: "files", repositoryId: "r1", source: { type: "files", paths: [scratch.dir] } },
    ]);
    cache = new WalAgeCache(catalog.db, inProcessWorkers(secretBox, policy), { warn: (m) => said.push(m) });
  });
  afterAll(async () => {
    cache?.stop();
    await catalog?.close();
    scratch.cleanup();
  });

  const openAlerts = async () => (await catalog.db.select().from(alerts).where(eq(alerts.kind, "wal_archive_stale"))).filter((a) => a.state !== "resolved");

  it("keeps the last value, says why once, and opens the stale alert past the RPO", async () => {
    const old = new Date(Date.now() - 3600_000).toISOString();
    cache.record("p1", { lastArchivedAt: old, lastArchivedWal: "000000010000000000000009" });
    await cache.refresh();
    await cache.refresh();
    expect(cache.list()).toEqual([{ planId: "p1", lastArchivedAt: old, lastArchivedWal: "000000010000000000000009" }]);
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/WAL archive of plan db1 \(p1\) could not be read: .*no-repo.*keeps its last value/);
    const open = await openAlerts();
    expect(open).toEqual([expect.objectContaining({ planId: "p1", severity: "critical", title: "WAL archive of plan db1 is stale" })]);
    expect(open[0].detail).toContain("past the plan's RPO of");
  });

  it("clears the alert once a segment within the RPO was archived", async () => {
    cache.record("p1", { lastArchivedAt: new Date(Date.now() - 60_000).toISOString() });
    await cache.refresh();
    expect(await openAlerts()).toEqual([]);
  });
});

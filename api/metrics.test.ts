/**
 * GET /metrics through the app (no port, Temporal unreachable): the permission it
 * declares, a scoped token's narrower view, and values read from catalog rows.
 */
import { Client, Connection } from "@temporalio/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCatalog, type OpenCatalog } from "../db/client.js";
import { jobs, plans, repositories } from "../db/schema.js";
import { SecretBox } from "../engine/secret-box.js";
import { tempDir } from "../test/helpers.js";
import { seedCatalog } from "../test/catalog-template.js";
import { inProcessWorkers, testPolicy } from "../test/policy-fixtures.js";
import { JOB_KINDS, type BackupResult, type JobKind, type WorkerReport } from "../workflows/messages.js";
import { createApp } from "./app.js";
import { renderMetrics } from "./metrics.js";
import { WalAgeCache } from "./wal-age.js";

const ADMIN = "test-admin-token";
const scratch = tempDir("cairn-metrics-");
let catalog: OpenCatalog;
let app: ReturnType<typeof createApp>;
let walAge: WalAgeCache;

const backup = (planId: string, n: number, over: Partial<BackupResult> = {}): typeof jobs.$inferInsert => {
  const result: BackupResult = {
    snapshotId: `s${n}`,
    filesNew: 2,
    filesChanged: 1,
    filesUnmodified: 7,
    bytesProcessed: 1000,
    bytesAdded: 100 * n,
    bytesStored: 50 * n,
    durationSeconds: 20 * n,
    warnings: [],
    snapshotsRemoved: 0,
    repositoryStats: { snapshots: n, packs: n, packBytes: 4096 * n },
    ...over,
  };
  const startedAt = new Date(Date.UTC(2026, 2, n, 3));
  return { id: `backup-${planId}-${n}`, runId: "r", kind: "backup", planId, status: "completed", phase: "done", progress: { filesDone: 10, bytesDone: 1000, bytesTotal: 1000, bytesPerSecond: 0, etaSeconds: 0 }, snapshotId: `s${n}`, result, startedAt, finishedAt: new Date(startedAt.getTime() + 60_000) };
};

beforeAll(async () => {
  await seedCatalog(scratch.dir);
  catalog = await openCatalog({ dataDir: scratch.dir });
  const connection = Connection.lazy({ address: "127.0.0.1:1" });
  const secretBox = new SecretBox(SecretBox.generateKey());
  const policy = testPolicy(scratch.dir, scratch.dir);
  const workers = inProcessWorkers(secretBox, policy);
  walAge = new WalAgeCache(catalog.db, workers);
  app = createApp({ catalog: catalog.db, temporal: new Client({ connection }), secretBox, adminToken: ADMIN, policy, workers, walAge });
  await catalog.db.insert(repositories).values([
    { id: "aa01", name: "nas", url: "/srv/nas", sealedPassword: "x" },
    { id: "bb02", name: "cloud", url: "/srv/cloud", sealedPassword: "x" },
  ]);
  await catalog.db.insert(plans).values([
    { id: "cc03", name: "www", repositoryId: "aa01", source: { type: "files", paths: ["/srv/www"] } },
    { id: "dd04", name: "db", repositoryId: "bb02", source: { type: "files", paths: ["/srv/db"] } },
  ]);
  await catalog.db.insert(jobs).values([
    backup("cc03", 1),
    backup("cc03", 2),
    { ...backup("cc03", 3), status: "failed", result: null, error: "the destination could not be reached" },
    backup("dd04", 4),
  ]);
});
afterAll(async () => {
  // The connection stays open: the client's retry timer for the unreachable server
  // would fire after close() and throw "Channel has been shut down" from that timer.
  await catalog?.close();
  scratch.cleanup();
});

async function tokenFor(role: string, scope?: { planIds: string[] }): Promise<string> {
  const res = await app.request("/v1/tokens", { method: "POST", headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" }, body: JSON.stringify({ name: `${role}-${scope ? "scoped" : "all"}`, role, ...(scope ? { scope } : {}) }) });
  expect(res.status).toBe(201);
  return ((await res.json()) as { token: string }).token;
}

const scrape = (token?: string) => app.request("/metrics", { headers: token ? { Authorization: `Bearer ${token}` } : {} });

/** Sample lines of the exposition as "name{labels} value". */
function samples(text: string): string[] {
  return text.split("\n").filter((l) => l && !l.startsWith("#"));
}

describe("GET /metrics", () => {
  it("needs a token whose role holds metrics:read", async () => {
    expect((await scrape()).status).toBe(401);
    const auditor = await scrape(await tokenFor("auditor"));
    expect(auditor.status).toBe(403);
    expect(((await auditor.json()) as { detail: string }).detail).toMatch(/metrics:read.*viewer/);
    const doc = (await (await app.request("/openapi.json")).json()) as { paths: Record<string, Record<string, Record<string, unknown>>> };
    expect(doc.paths["/metrics"].get["x-cairn-permission"]).toBe("metrics:read");
  });

  it("shows per plan the last success, durations, bytes added and files, job outcomes, and each repository's size, from the catalog", async () => {
    const res = await scrape(await tokenFor("viewer"));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const lines = samples(await res.text());
    const www = 'plan_id="cc03",plan="www"';
    expect(lines).toEqual(
      expect.arrayContaining([
        `cairn_backup_last_success_timestamp_seconds{${www}} ${Date.UTC(2026, 2, 2, 3, 1) / 1000}`,
        `cairn_backup_bytes_added_total{${www}} 300`,
        `cairn_backup_last_bytes_added{${www}} 200`,
        `cairn_backup_last_files{${www}} 10`,
        `cairn_backup_duration_seconds_count{${www}} 2`,
        `cairn_backup_duration_seconds_sum{${www}} 60`,
        `cairn_backup_duration_seconds_bucket{le="30",${www}} 1`,
        `cairn_backup_duration_seconds_bucket{le="60",${www}} 2`,
        `cairn_backup_duration_seconds_bucket{le="15",${www}} 0`,
        'cairn_jobs_finished_total{kind="backup",plan_id="cc03",status="completed"} 2',
        'cairn_jobs_finished_total{kind="backup",plan_id="cc03",status="failed"} 1',
        'cairn_repository_size_bytes{repository_id="aa01",repository="nas"} 8192',
        'cairn_repository_snapshots{repository_id="bb02",repository="cloud"} 4',
        "cairn_temporal_up 0",
      ]),
    );
    expect(lines.some((l) => l.startsWith("cairn_jobs_running"))).toBe(false);
  });

  it("shows a scoped token only its plans and their repositories", async () => {
    const res = await scrape(await tokenFor("viewer", { planIds: ["dd04"] }));
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('plan_id="dd04"');
    expect(text).not.toContain("cc03");
    expect(text).not.toContain('repository="nas"');
  });
});

describe("WAL archive age", () => {
  it("GET /metrics shows each plan's newest archived WAL time and its age at the scrape, to a scoped token only its plans", async () => {
    const archivedAt = new Date(Date.now() - 90_000);
    walAge.record("cc03", { lastArchivedAt: archivedAt.toISOString(), lastArchivedWal: "000000010000000000000007" });
    walAge.record("dd04", { lastArchivedAt: archivedAt.toISOString() });
    walAge.record("gone", { lastArchivedAt: archivedAt.toISOString() });
    const lines = samples(await (await scrape(await tokenFor("viewer"))).text());
    expect(lines).toContain(`cairn_wal_archive_last_archived_timestamp_seconds{plan_id="cc03",plan="www"} ${archivedAt.getTime() / 1000}`);
    const age = Number(lines.find((l) => l.startsWith('cairn_wal_archive_age_seconds{plan_id="cc03",plan="www"}'))?.split(" ")[1]);
    expect(age).toBeGreaterThanOrEqual(90);
    expect(age).toBeLessThan(90 + 600);
    // A plan not in the catalog (deleted since) is not shown.
    expect(lines.some((l) => l.includes("gone"))).toBe(false);
    const scoped = await (await scrape(await tokenFor("viewer", { planIds: ["dd04"] }))).text();
    expect(scoped).toContain('cairn_wal_archive_age_seconds{plan_id="dd04",plan="db"}');
    expect(scoped).not.toContain("cc03");
  });

  it("renderMetrics computes the age at the scrape's time and leaves the metrics out for plans with nothing archived", async () => {
    const now = new Date("2026-03-10T12:00:00.000Z");
    const plan = { id: "ee05", name: "pg", repositoryId: "aa01" } as Parameters<typeof renderMetrics>[0]["plans"][number];
    const at = "2026-03-10T11:58:30.000Z";
    const lines = samples((await renderMetrics({ plans: [plan], repositories: [], jobs: [], now, walArchives: [{ planId: "ee05", lastArchivedAt: at }] })).body);
    expect(lines).toEqual(expect.arrayContaining([`cairn_wal_archive_last_archived_timestamp_seconds{plan_id="ee05",plan="pg"} ${Date.parse(at) / 1000}`, 'cairn_wal_archive_age_seconds{plan_id="ee05",plan="pg"} 90']));
    const none = (await renderMetrics({ plans: [plan], repositories: [], jobs: [], now, walArchives: [] })).body;
    expect(none).not.toContain("cairn_wal_archive");
  });
});

describe("renderMetrics: running jobs and workers", () => {
  const now = new Date("2026-03-10T12:00:00.000Z");
  const report = (identity: string, secondsAgo: number): WorkerReport => ({
    identity,
    host: "backup-1",
    taskQueue: "cairn",
    at: new Date(now.getTime() - secondsAgo * 1000).toISOString(),
    intervalMs: 15_000,
    cpu: 0.42,
    memory: { usedBytes: 3e9, totalBytes: 8e9 },
    disk: { path: "/var/lib/cairn", freeBytes: 5e10, totalBytes: 1e11 },
    activitiesRunning: 3,
    slots: { tuner: "resource-based", targetCpu: 0.8, targetMemory: 0.8, maxActivities: 32 },
  });

  it("counts running jobs of every kind, drills and recoveries included, zero where none runs", async () => {
    const running = Object.fromEntries(JOB_KINDS.map((k, i) => [k, i])) as Record<JobKind, number>;
    const lines = samples((await renderMetrics({ plans: [], repositories: [], jobs: [], running })).body);
    expect(JOB_KINDS).toEqual(expect.arrayContaining(["backup", "restore", "verify", "check", "prune", "copy", "recovery", "drill"]));
    for (const [i, kind] of JOB_KINDS.entries()) expect(lines).toContain(`cairn_jobs_running{kind="${kind}"} ${i}`);
  });

  it("shows when each kind of job last succeeded, per plan and repository, and how long completed jobs of each kind took", async () => {
    const plan = { id: "cc03", name: "www", repositoryId: "aa01" } as Parameters<typeof renderMetrics>[0]["plans"][number];
    const job = (id: string, kind: JobKind, status: "completed" | "failed", startMinute: number, minutes: number, planId: string | null = null): typeof jobs.$inferSelect => ({
      ...(backup("cc03", 1) as typeof jobs.$inferSelect),
      id,
      kind,
      planId,
      status,
      result: status === "completed" ? { errors: [], warnings: [], packsRead: 0 } : null,
      startedAt: new Date(Date.UTC(2026, 2, 10, 3, startMinute)),
      finishedAt: new Date(Date.UTC(2026, 2, 10, 3, startMinute + minutes)),
      steps: null,
      log: null,
      attempts: 1,
      alertsEvaluatedAt: null,
    });
    const rows = [
      job("check-aa01-20260310T030000000Z", "check", "completed", 0, 2),
      job("check-aa01-20260310T031000000Z", "check", "completed", 10, 4),
      job("prune-aa01-20260310T032000000Z", "prune", "failed", 20, 1),
      job("verify-bb02-20260310T033000000Z", "verify", "completed", 30, 1),
      job("drill-cc03-20260310T034000000Z", "drill", "completed", 40, 30, "cc03"),
    ];
    const lines = samples((await renderMetrics({ plans: [plan], repositories: [], jobs: rows, running: Object.fromEntries(JOB_KINDS.map((k) => [k, 0])) as Record<JobKind, number>, queue: { pendingByPriority: { high: 1, normal: 0, low: 3 }, waitingForSlot: 2 } })).body);
    const at = (minute: number) => Date.UTC(2026, 2, 10, 3, minute) / 1000;
    expect(lines).toEqual(
      expect.arrayContaining([
        `cairn_job_last_success_timestamp_seconds{kind="check",plan_id="",repository_id="aa01"} ${at(14)}`,
        `cairn_job_last_success_timestamp_seconds{kind="verify",plan_id="",repository_id="bb02"} ${at(31)}`,
        `cairn_job_last_success_timestamp_seconds{kind="drill",plan_id="cc03",repository_id="aa01"} ${at(70)}`,
        'cairn_job_duration_seconds_count{kind="check"} 2',
        'cairn_job_duration_seconds_sum{kind="check"} 360',
        'cairn_job_duration_seconds_bucket{le="300",kind="check"} 2',
        'cairn_job_duration_seconds_bucket{le="120",kind="check"} 1',
        'cairn_job_duration_seconds_count{kind="drill"} 1',
        'cairn_jobs_finished_total{kind="prune",plan_id="",status="failed"} 1',
        'cairn_queue_pending_tasks{priority="high"} 1',
        'cairn_queue_pending_tasks{priority="low"} 3',
        "cairn_jobs_waiting_for_slot 2",
      ]),
    );
    // A prune that failed has no success to show.
    expect(lines.filter((l) => l.startsWith("cairn_job_") && l.includes('kind="prune"'))).toEqual([]);
  });

  it("shows each fresh worker's CPU, memory, disk and activities, and only the last report time of a stale one", async () => {
    const lines = samples((await renderMetrics({ plans: [], repositories: [], jobs: [], workers: [report("7@backup-1", 5), report("9@backup-1", 3600)], now })).body);
    const fresh = 'worker="7@backup-1",host="backup-1"';
    expect(lines).toEqual(
      expect.arrayContaining([
        `cairn_worker_last_report_timestamp_seconds{${fresh}} ${now.getTime() / 1000 - 5}`,
        `cairn_worker_cpu_usage_ratio{${fresh}} 0.42`,
        `cairn_worker_memory_used_bytes{${fresh}} 3000000000`,
        `cairn_worker_memory_total_bytes{${fresh}} 8000000000`,
        `cairn_worker_disk_free_bytes{${fresh}} 50000000000`,
        `cairn_worker_disk_total_bytes{${fresh}} 100000000000`,
        `cairn_worker_activities_running{${fresh}} 3`,
        `cairn_worker_last_report_timestamp_seconds{worker="9@backup-1",host="backup-1"} ${now.getTime() / 1000 - 3600}`,
      ]),
    );
    expect(lines.filter((l) => l.includes("9@backup-1"))).toHaveLength(1);
  });
});

describe("renderMetrics: binary log archivers", () => {
  it("shows each running archiver's lag, recovery point and last look, for plans in the catalog only", async () => {
    const plan = { id: "ff06", name: "shop", repositoryId: "aa01" } as Parameters<typeof renderMetrics>[0]["plans"][number];
    const archivedThrough = "2026-03-10T11:59:00.000Z";
    const lastCheckedAt = "2026-03-10T11:59:40.000Z";
    const lines = samples(
      (
        await renderMetrics({
          plans: [plan],
          repositories: [],
          jobs: [],
          binlogArchivers: [
            { planId: "ff06", lagBytes: 4096, lagSeconds: 40, archivedThrough, lastCheckedAt },
            { planId: "gone", lagBytes: 1, lagSeconds: 1, archivedThrough, lastCheckedAt },
          ],
        })
      ).body,
    );
    const labels = 'plan_id="ff06",plan="shop"';
    expect(lines.filter((l) => l.startsWith("cairn_binlog_archive_")).sort()).toEqual(
      [
        `cairn_binlog_archive_lag_bytes{${labels}} 4096`,
        `cairn_binlog_archive_lag_seconds{${labels}} 40`,
        `cairn_binlog_archive_archived_through_timestamp_seconds{${labels}} ${Date.parse(archivedThrough) / 1000}`,
        `cairn_binlog_archive_last_check_timestamp_seconds{${labels}} ${Date.parse(lastCheckedAt) / 1000}`,
      ].sort(),
    );
    // An archiver that has not looked yet has no figures to show.
    const starting = (await renderMetrics({ plans: [plan], repositories: [], jobs: [], binlogArchivers: [{ planId: "ff06" }] })).body;
    expect(samples(starting).filter((l) => l.startsWith("cairn_binlog_archive_"))).toEqual([]);
  });
});

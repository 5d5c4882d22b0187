import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { Client } from "@temporalio/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiClient } from "./api-client.js";
import { PASSWORD, ROOT } from "./helpers.js";
import { testPolicy, testPolicyEnv } from "./policy-fixtures.js";
import { archiveEverything, cairnCommand, cairnPgOk, initCluster, pgTempDir, type PgCluster } from "./postgres.js";
import { startStack, type Stack } from "./stack.js";

interface Drill {
  jobId: string;
  outcome: string;
  snapshotId: string | null;
  rtoSeconds: number | null;
  filesVerified: number;
  bytes: number;
  error: string | null;
  check?: { sql: string; rows: string[] };
}

/**
 * Recovery drills through the API (the run's Temporal dev server, a worker
 * process, the API, an initdb'd cluster). The worker runs as the postgres user, as next to a
 * database server; its drill directory is the default, <its data dir>/drills.
 */
describe("recovery drills (Temporal dev server + worker + API + PostgreSQL)", () => {
  const tmp = pgTempDir("cairn-drills-e2e-");
  const dataDir = path.join(tmp.dir, "data");
  const workerData = path.join(tmp.dir, "worker-data");
  const drillDir = path.join(workerData, "drills");
  const passwordFile = path.join(tmp.dir, "password");
  let stack: Stack;
  let worker: ChildProcess;
  let workerLog = "";
  let workerExited: Promise<void>;
  const secretKey = randomBytes(32).toString("base64");
  const previousKey = process.env.CAIRN_SECRET_KEY;
  let temporalClient: Client;
  let pg: PgCluster;
  let client: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    writeFileSync(passwordFile, PASSWORD);
    process.env.CAIRN_SECRET_KEY = secretKey;
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, api: { historyIntervalMs: 300 }, worker: false });
    worker = spawn("runuser", ["-u", "postgres", "--", process.execPath, path.join(ROOT, "dist", "worker.js")], {
      env: { ...process.env, ...stack.env, CAIRN_DATA_DIR: workerData, ...testPolicyEnv(tmp.dir), CAIRN_WORKER_CONCURRENCY: "2", CAIRN_THREADS: "1" },
      cwd: tmp.dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    worker.stdout!.on("data", (d: Buffer) => (workerLog = (workerLog + d.toString()).slice(-8000)));
    worker.stderr!.on("data", (d: Buffer) => (workerLog = (workerLog + d.toString()).slice(-8000)));
    workerExited = new Promise((resolve) => worker.once("exit", () => resolve()));
    client = apiClient(stack.api);
    temporalClient = stack.client;
  }, 180_000);

  afterAll(async () => {
    await stack?.api.close();
    if (worker?.pid && worker.exitCode === null && worker.signalCode === null) {
      process.kill(worker.pid, "SIGTERM");
      await Promise.race([workerExited, new Promise((r) => setTimeout(r, 20_000))]);
      if (worker.exitCode === null && worker.signalCode === null) process.kill(worker.pid, "SIGKILL");
    }
    await stack?.close();
    await pg?.destroy();
    if (previousKey === undefined) delete process.env.CAIRN_SECRET_KEY;
    else process.env.CAIRN_SECRET_KEY = previousKey;
    tmp.cleanup();
  });

  /** A files plan over a small tree in its own repository, backed up once. */
  async function backedUpFilesPlan(name: string, drill?: Record<string, unknown>): Promise<{ planId: string; repo: string; files: number }> {
    const src = path.join(tmp.dir, `src-${name}`);
    mkdirSync(path.join(src, "deep", "er"), { recursive: true });
    writeFileSync(path.join(src, "big.bin"), randomBytes(3 << 20));
    writeFileSync(path.join(src, "deep", "notes.txt"), "the drill reads this back\n");
    writeFileSync(path.join(src, "deep", "er", "empty"), "");
    const repo = path.join(tmp.dir, `repo-${name}`);
    const { id: repositoryId } = await client.ok<{ id: string }>("POST", "/v1/repositories", { name, url: repo, password: PASSWORD });
    const { id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", { name, repositoryId, source: { type: "files", paths: [src] }, ...(drill ? { drill } : {}) });
    const { jobId } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    const job = await client.pollJob(jobId, (j) => j.status !== "running");
    expect(job.status, JSON.stringify(job) + workerLog).toBe("completed");
    return { planId, repo, files: 3 };
  }

  async function drillOf(planId: string) {
    const { jobId } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/drills`);
    expect(jobId).toMatch(new RegExp(`^drill-${planId}-`));
    const job = await client.pollJob(jobId, (j) => j.status !== "running");
    const { drills } = await client.ok<{ drills: Drill[] }>("GET", `/v1/plans/${planId}/drills`);
    return { job, drill: drills.find((d) => d.jobId === jobId)! };
  }

  it("drills a files plan: restores the latest snapshot, reads every file back, reports and removes its scratch copy; only operators run drills, and the run is audited", async () => {
    const { planId, files } = await backedUpFilesPlan("www", { cron: "0 5 * * 0", timezone: "UTC" });
    const plan = await client.ok<{ drill: unknown; drillScheduleId: string }>("GET", `/v1/plans/${planId}`);
    expect(plan.drill).toEqual({ cron: "0 5 * * 0", timezone: "UTC" });
    const schedule = await temporalClient.schedule.getHandle(plan.drillScheduleId).describe();
    expect(schedule.action).toMatchObject({ type: "startWorkflow", workflowType: "drillWorkflow" });

    const { job, drill } = await drillOf(planId);
    expect(job, JSON.stringify(job) + workerLog).toMatchObject({ kind: "drill", status: "completed", planId });
    expect(drill).toMatchObject({ outcome: "passed", snapshotId: job.snapshotId, filesVerified: files, error: null });
    expect(drill.bytes).toBeGreaterThan(3 << 20);
    expect(drill.rtoSeconds).toBeGreaterThan(0);
    expect(readdirSync(drillDir)).toEqual([]);

    const { token: viewer } = await client.ok<{ token: string }>("POST", "/v1/tokens", { name: "viewer", role: "viewer" });
    const asViewer = apiClient({ url: stack.api.url, token: viewer });
    expect((await asViewer.call("POST", `/v1/plans/${planId}/drills`)).status).toBe(403);
    expect((await asViewer.ok<{ drills: Drill[] }>("GET", `/v1/plans/${planId}/drills`)).drills).toHaveLength(1);
    const { events } = await client.ok<{ events: { outcome: string; resource: string }[] }>("GET", "/v1/audit?action=runDrill");
    expect(events.map((e) => e.outcome)).toEqual(expect.arrayContaining(["succeeded", "denied"]));

    // The drill feeds the plan's risk score: a passed drill is a tested restore.
    const analytics = await client.ok<{ risk: { factors: { kind: string; points: number; detail: string }[] } }>("GET", `/v1/analytics/plans/${planId}`);
    expect(analytics.risk.factors.find((f) => f.kind === "restore-test")).toMatchObject({ points: 0, detail: expect.stringMatching(/^last recovery drill passed \(RTO/) });
  });

  it("fails a drill of a damaged backup, saying which pack is damaged, raises an alert, and leaves no scratch directory", async () => {
    const { planId, repo } = await backedUpFilesPlan("damaged");
    const packs = readdirSync(path.join(repo, "data"), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
    const biggest = packs.sort((a, b) => statSync(b).size - statSync(a).size)[0];
    const bytes = readFileSync(biggest);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(biggest, bytes);

    const { job, drill } = await drillOf(planId);
    expect(job.status, JSON.stringify(job) + workerLog).toBe("failed");
    expect(job.error).toMatch(/^recovery drill of plan damaged failed: snapshot [0-9a-f]{8} of plan damaged could not be restored: pack [0-9a-f]{64} is damaged/);
    expect(job.error).toContain(` ${path.join(tmp.dir, "src-damaged", "big.bin")} cannot be restored`);
    expect(drill).toMatchObject({ outcome: "failed", rtoSeconds: null, filesVerified: 0, error: job.error });
    expect(readdirSync(drillDir)).toEqual([]);
    const analytics = await client.ok<{ risk: { factors: { kind: string; points: number; detail: string }[] } }>("GET", `/v1/analytics/plans/${planId}`);
    expect(analytics.risk.factors.find((f) => f.kind === "restore-test")).toMatchObject({ points: 15, detail: expect.stringContaining("failed: recovery drill of plan damaged failed") });

    // It raised the plan's drill_failed alert, with the cause (the job recorder's loop evaluates each finished job once).
    let alerts: { kind: string; severity: string; state: string; planId: string; detail: string }[] = [];
    for (let i = 0; i < 150 && !alerts.length; i++) {
      if (i) await new Promise((r) => setTimeout(r, 200));
      ({ alerts } = await client.ok<{ alerts: typeof alerts }>("GET", "/v1/alerts?kind=drill_failed"));
    }
    expect(alerts).toEqual([expect.objectContaining({ kind: "drill_failed", severity: "critical", state: "open", planId, detail: expect.stringContaining(job.error!) })]);
  });

  /** The plan the physical drill test made, drilled again by the next test. */
  let physicalPlanId = "";

  it("drills a physical PostgreSQL plan: recovers the latest base backup and WAL on a free loopback port, runs the check SQL, reports the RTO; the source cluster is untouched", async () => {
    const repo = path.join(tmp.dir, "repo-pg");
    await cairnPgOk(["-r", repo, "--password-file", passwordFile, "init"]);
    pg = await initCluster(tmp.dir, { archive_mode: "on", archive_command: `${cairnCommand(repo, passwordFile)} pg wal-push %p` });
    await pg.sql("CREATE TABLE markers (note text); INSERT INTO markers VALUES ('base')");
    const { id: repositoryId } = await client.ok<{ id: string }>("POST", "/v1/repositories", { name: "pg", url: repo, password: PASSWORD });
    const logical = await client.call<{ detail: string }>("POST", "/v1/plans", { name: "dumps", repositoryId, source: { type: "postgres", mode: "logical", url: pg.url }, drill: { cron: "@weekly" } });
    expect(logical.status).toBe(400);
    expect(logical.body.detail).toContain("POST /v1/restores/logical");
    const { id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", {
      name: "cluster",
      repositoryId,
      source: { type: "postgres", mode: "physical", url: pg.url },
      drill: { checkSql: "SELECT string_agg(note, ',' ORDER BY note) FROM markers" },
    });
    const backup = await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    expect(await client.pollJob(backup.jobId, (j) => j.status !== "running"), workerLog).toMatchObject({ status: "completed" });
    // Committed after the base backup: only replaying the archived WAL brings it back.
    await pg.sql("INSERT INTO markers VALUES ('after-backup')");
    await archiveEverything(pg, 60_000);
    const pidBefore = readFileSync(path.join(pg.pgdata, "postmaster.pid"), "utf8");

    const { job, drill } = await drillOf(planId);
    expect(job, JSON.stringify(job) + workerLog).toMatchObject({ kind: "drill", status: "completed" });
    expect(drill).toMatchObject({ outcome: "passed", check: { sql: "SELECT string_agg(note, ',' ORDER BY note) FROM markers", rows: ["after-backup,base"] }, error: null });
    expect(drill.rtoSeconds).toBeGreaterThan(0);
    expect(drill.filesVerified).toBeGreaterThan(0);
    expect(readdirSync(drillDir)).toEqual([]);

    // The source: the same server process, still the primary on its first timeline, its rows as they were.
    expect(readFileSync(path.join(pg.pgdata, "postmaster.pid"), "utf8")).toBe(pidBefore);
    expect(await pg.sql("SELECT pg_is_in_recovery(), timeline_id FROM pg_control_checkpoint()")).toBe("f|1");
    expect(await pg.sql("SELECT string_agg(note, ',' ORDER BY note) FROM markers")).toBe("after-backup,base");
    expect(existsSync(path.join(pg.pgdata, "standby.signal"))).toBe(false);
    physicalPlanId = planId;
  });

  it("fails a drill whose check query fails, and stops and removes the throwaway server all the same", async () => {
    const planId = physicalPlanId;
    expect(planId, "the physical plan of the test before").toBeTruthy();
    await client.ok("PATCH", `/v1/plans/${planId}`, { drill: { checkSql: "SELECT * FROM no_such_table" } });
    const bad = await drillOf(planId);
    expect(bad.job.status).toBe("failed");
    expect(bad.drill.error).toContain('relation "no_such_table" does not exist');
    expect(readdirSync(drillDir)).toEqual([]);
  });
});

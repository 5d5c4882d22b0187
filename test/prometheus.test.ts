/**
 * Prometheus scrapes Cairn's GET /metrics with a viewer token, and the worker
 * process's Temporal metrics, and the values read back through Prometheus's own
 * query API match the jobs the API reports: the platform as an operator monitors
 * it (Temporal dev server, the worker as `node dist/worker.js`, API, Prometheus).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { totalmem } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiServer } from "../api/server.js";
import type { BackupResult } from "../workflows/messages.js";
import { apiClient, type Job } from "./api-client.js";
import { PASSWORD, ROOT, tempDir } from "./helpers.js";
import { testPolicy, testPolicyEnv } from "./policy-fixtures.js";
import { freePort, startPrometheus, type TestServer } from "./servers.js";
import { startStack, type Stack } from "./stack.js";
import { makeOddTree } from "./tree-fixtures.js";

/** A finished backup as GET /v1/jobs/{id} shows it. */
type BackupJob = Omit<Job, "result"> & { finishedAt: string; result: BackupResult };

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

describe("Prometheus scrapes /metrics (Temporal dev server + worker + API + Prometheus)", () => {
  const tmp = tempDir("cairn-prometheus-e2e-");
  const dataDir = path.join(tmp.dir, "data");
  const src = path.join(tmp.dir, "src");
  let stack: Stack;
  let worker: ChildProcess;
  let workerExited: Promise<void>;
  let workerLog = "";
  let workerMetrics: string;
  let api: ApiServer;
  let prometheus: TestServer & { url: string };
  let ok: ReturnType<typeof apiClient>["ok"];
  let pollJob: ReturnType<typeof apiClient>["pollJob"];

  beforeAll(async () => {
    makeOddTree(src);
    // The API first: it creates the platform secret key the worker then reads from the same data directory.
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, worker: false });
    api = stack.api;
    workerMetrics = `http://127.0.0.1:${await freePort()}`;
    worker = spawn(process.execPath, [path.join(ROOT, "dist", "worker.js")], {
      env: {
        ...process.env,
        ...stack.env,
        CAIRN_DATA_DIR: dataDir,
        ...testPolicyEnv(tmp.dir),
        CAIRN_WORKER_CONCURRENCY: "2",
        CAIRN_WORKER_REPORT_INTERVAL_MS: "1000",
        CAIRN_WORKER_METRICS_ADDRESS: new URL(workerMetrics).host,
        CAIRN_THREADS: "1",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    worker.stdout!.on("data", (d: Buffer) => (workerLog = (workerLog + d.toString()).slice(-8000)));
    worker.stderr!.on("data", (d: Buffer) => (workerLog = (workerLog + d.toString()).slice(-8000)));
    workerExited = new Promise((resolve) => worker.once("exit", () => resolve()));
    ({ ok, pollJob } = apiClient(api));
  });

  afterAll(async () => {
    await prometheus?.stop();
    if (worker?.pid && worker.exitCode === null && worker.signalCode === null) {
      process.kill(worker.pid, "SIGTERM");
      await Promise.race([workerExited, new Promise((r) => setTimeout(r, 20_000))]);
      if (worker.exitCode === null && worker.signalCode === null) process.kill(worker.pid, "SIGKILL");
    }
    await stack?.close();
    tmp.cleanup();
  });

  /** Runs a PromQL instant query through Prometheus's HTTP API. */
  async function query(promql: string): Promise<Sample[]> {
    const res = await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as { status: string; data: { result: Sample[] }; error?: string };
    if (body.status !== "success") throw new Error(`Prometheus refused ${promql}: ${body.error}`);
    return body.data.result;
  }

  /** The single value of a query, once Prometheus has one equal to `expected` (scrapes come every second). */
  async function valueOnceEqual(promql: string, expected: number): Promise<number> {
    let last: Sample[] = [];
    for (let i = 0; i < 120; i++) {
      last = await query(promql);
      if (last.length === 1 && Number(last[0].value[1]) === expected) return expected;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`${promql} is ${JSON.stringify(last)}, not ${expected}`);
  }

  it("reads back the last success, bytes added, files, outcomes, duration count and repository size of real backups", async () => {
    const { id: repositoryId } = await ok<{ id: string }>("POST", "/v1/repositories", { name: "main", url: path.join(tmp.dir, "repo"), password: PASSWORD });
    const { id: planId } = await ok<{ id: string }>("POST", "/v1/plans", { name: "odd-tree", repositoryId, source: { type: "files", paths: [src] } });
    const first = await ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    expect((await pollJob(first.jobId, (j) => j.status !== "running")).status).toBe("completed");
    // The second run is never read through the API: the scrape itself copies it into the catalog.
    const second = await ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    await stack.client.workflow.getHandle(second.jobId).result();
    // A repository's check, a job of another kind: its last success is shown per repository.
    const check = await pollJob((await ok<{ jobId: string }>("POST", `/v1/repositories/${repositoryId}/check`, {})).jobId, (j) => j.status !== "running");
    expect(check.status, JSON.stringify(check)).toBe("completed");
    const { token } = await ok<{ token: string }>("POST", "/v1/tokens", { name: "prometheus", role: "viewer" });

    prometheus = await startPrometheus([
      { job: "cairn", url: api.url, token },
      { job: "cairn-worker", url: workerMetrics },
    ]);
    const plan = `plan_id="${planId}",plan="odd-tree"`;
    await valueOnceEqual(`cairn_jobs_finished_total{kind="backup",plan_id="${planId}",status="completed"}`, 2);
    expect(await valueOnceEqual('up{job="cairn"}', 1)).toBe(1);

    const job = await ok<BackupJob>("GET", `/v1/jobs/${second.jobId}`);
    const result = job.result;
    await valueOnceEqual(`cairn_backup_last_success_timestamp_seconds{${plan}}`, new Date(job.finishedAt).getTime() / 1000);
    await valueOnceEqual(`cairn_backup_last_bytes_added{${plan}}`, result.bytesAdded);
    await valueOnceEqual(`cairn_backup_last_files{${plan}}`, result.filesNew + result.filesChanged + result.filesUnmodified);
    await valueOnceEqual(`cairn_backup_duration_seconds_count{${plan}}`, 2);
    await valueOnceEqual(`cairn_repository_snapshots{repository_id="${repositoryId}",repository="main"}`, 2);
    await valueOnceEqual(`cairn_repository_size_bytes{repository_id="${repositoryId}",repository="main"}`, result.repositoryStats!.packBytes);
    await valueOnceEqual('cairn_jobs_running{kind="backup"}', 0);
    await valueOnceEqual("cairn_temporal_up", 1);
    await valueOnceEqual(`cairn_job_last_success_timestamp_seconds{kind="check",plan_id="",repository_id="${repositoryId}"}`, new Date((check as Job & { finishedAt: string }).finishedAt).getTime() / 1000);
    await valueOnceEqual('cairn_job_duration_seconds_count{kind="backup"}', 2);
    await valueOnceEqual('cairn_job_duration_seconds_count{kind="check"}', 1);
    // Nothing waits: the backlog of every priority and the jobs waiting for a slot are 0.
    await valueOnceEqual("count(cairn_queue_pending_tasks)", 3);
    await valueOnceEqual("sum(cairn_queue_pending_tasks)", 0);
    await valueOnceEqual("cairn_jobs_waiting_for_slot", 0);
    // Every job kind has its running count, drills and recoveries included.
    for (const kind of ["restore", "check", "copy", "recovery", "drill"]) await valueOnceEqual(`cairn_jobs_running{kind="${kind}"}`, 0);
    expect(result.bytesAdded).toBe(0); // the second run found nothing new: the gauge shows the last run, not a sum
    const firstResult = (await ok<BackupJob>("GET", `/v1/jobs/${first.jobId}`)).result;
    await valueOnceEqual(`cairn_backup_bytes_added_total{${plan}}`, firstResult.bytesAdded);
  });

  it("reads the worker process's own report (memory, disk, activities) through the API's /metrics", async () => {
    const memory = await valueOnceEqual('count(cairn_worker_memory_total_bytes{job="cairn"})', 1);
    expect(memory).toBe(1);
    await valueOnceEqual('cairn_worker_memory_total_bytes{job="cairn"}', totalmem());
    await valueOnceEqual('cairn_worker_activities_running{job="cairn"}', 0);
    const [disk] = await query('cairn_worker_disk_free_bytes{job="cairn"} <= cairn_worker_disk_total_bytes{job="cairn"}');
    expect(Number(disk.value[1])).toBeGreaterThan(0);
    const [cpu] = await query('cairn_worker_cpu_usage_ratio{job="cairn"}');
    expect(Number(cpu.value[1])).toBeGreaterThanOrEqual(0);
    expect(Number(cpu.value[1])).toBeLessThanOrEqual(1);
  });

  it("reads the worker's activity slots (CAIRN_WORKER_CONCURRENCY) from its own metrics endpoint", async () => {
    expect(await valueOnceEqual('up{job="cairn-worker"}', 1), workerLog).toBe(1);
    await valueOnceEqual('temporal_worker_task_slots_available{job="cairn-worker",worker_type="ActivityWorker",task_queue="cairn"}', 2);
    await valueOnceEqual('temporal_worker_task_slots_used{job="cairn-worker",worker_type="ActivityWorker",task_queue="cairn"}', 0);
  });
});

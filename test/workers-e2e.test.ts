import { mkdirSync, statfsSync, writeFileSync } from "node:fs";
import { totalmem } from "node:os";
import * as path from "node:path";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WORKER_REGISTER_ID, WORKER_REGISTER_TASK_QUEUE, WORKER_REGISTER_WORKFLOW, workerReportSignal, type WorkerReport } from "../workflows/messages.js";
import { apiClient } from "./api-client.js";
import { PASSWORD, tempDir } from "./helpers.js";
import { testPolicy } from "./policy-fixtures.js";
import { startStack, type Stack } from "./stack.js";

interface WorkerView {
  identity: string;
  host: string;
  taskQueue: string;
  reportedAt: string;
  intervalMs: number;
  stale: boolean;
  cpu: number;
  memory: { usedBytes: number; totalBytes: number; used: number };
  disk: { path: string; freeBytes: number; totalBytes: number; used: number };
  activitiesRunning: number;
  slots: Record<string, unknown>;
}
interface Bottleneck {
  identity: string;
  resource: string;
  used: number;
  threshold: number;
  recommendation: { type: string; priority: string; title: string; description: string };
}

/**
 * Workers on the resource-based tuner report themselves to the workers' register
 * (a workflow on its own task queue) on the real Temporal dev server; the API lists
 * them, marks a silent one stale, shows their gauges in /metrics, and lists the
 * bottlenecks their reports show.
 */
describe("worker reports and bottlenecks (Temporal dev server + worker + API)", () => {
  const tmp = tempDir("cairn-workers-e2e-");
  const dataDir = path.join(tmp.dir, "data");
  let stack: Stack;
  let client: ReturnType<typeof apiClient>;

  /** GET /v1/workers until `until` holds. */
  const workersUntil = async (until: (w: { workers: WorkerView[]; bottlenecks: Bottleneck[] }) => boolean) => {
    let last: { workers: WorkerView[]; bottlenecks: Bottleneck[] } | undefined;
    for (let i = 0; i < 300; i++) {
      last = await client.ok<{ workers: WorkerView[]; bottlenecks: Bottleneck[] }>("GET", "/v1/workers");
      if (until(last)) return last;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`GET /v1/workers never showed what was expected; last: ${JSON.stringify(last)}`);
  };

  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger("WARN") });
    // No fixed number of slots: the resource-based tuner, with targets of its own.
    stack = await startStack({
      policy: testPolicy(tmp.dir, dataDir),
      dataDir,
      worker: { maxConcurrentActivityTaskExecutions: undefined, resourceTargets: { cpu: 0.9, memory: 0.95 }, reportIntervalMs: 1000 },
    });
    client = apiClient(stack.api);
  }, 600_000);

  afterAll(async () => {
    await stack?.close();
    tmp.cleanup();
  }, 600_000);

  it("runs a backup on tuned slots and reports the machine's CPU, memory and its data directory's free disk", async () => {
    const src = path.join(tmp.dir, "src");
    mkdirSync(src);
    writeFileSync(path.join(src, "a.txt"), "tuned\n");
    const { id: repositoryId } = await client.ok<{ id: string }>("POST", "/v1/repositories", { name: "main", url: path.join(tmp.dir, "repo"), password: PASSWORD });
    const { id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", { name: "tuned", repositoryId, source: { type: "files", paths: [src] } });
    const job = await client.pollJob((await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`)).jobId, (j) => j.status !== "running");
    expect(job.status, JSON.stringify(job)).toBe("completed");

    const identity = stack.worker!.worker.options.identity;
    const { workers } = await workersUntil((w) => w.workers.some((x) => x.identity === identity && !x.stale));
    const me = workers.find((x) => x.identity === identity)!;
    expect(me).toMatchObject({ taskQueue: "cairn", intervalMs: 1000, stale: false, slots: { tuner: "resource-based", targetCpu: 0.9, targetMemory: 0.95, maxActivities: 32 } });
    expect(me.cpu).toBeGreaterThanOrEqual(0);
    expect(me.cpu).toBeLessThanOrEqual(1);
    expect(me.memory.totalBytes).toBe(totalmem());
    expect(me.memory.usedBytes).toBeGreaterThan(0);
    expect(me.memory.used).toBeCloseTo(me.memory.usedBytes / me.memory.totalBytes, 6);
    const fs = statfsSync(dataDir);
    expect(me.disk).toMatchObject({ path: dataDir, totalBytes: fs.blocks * fs.bsize });
    expect(me.disk.freeBytes).toBeGreaterThan(0);
    expect(me.disk.freeBytes).toBeLessThanOrEqual(me.disk.totalBytes);

    // The same figures as Prometheus gauges.
    const metrics = await (await fetch(`${stack.api.url}/metrics`, { headers: { Authorization: `Bearer ${stack.api.token}` } })).text();
    const labels = `worker="${identity}",host="${me.host}"`;
    expect(metrics).toContain(`cairn_worker_memory_total_bytes{${labels}} ${totalmem()}`);
    expect(metrics).toContain(`cairn_worker_disk_total_bytes{${labels}} ${fs.blocks * fs.bsize}`);
    expect(metrics).toMatch(new RegExp(`cairn_worker_activities_running\\{${labels.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\} \\d+`));

    // Stopped, the worker says it is gone; with no register worker running, its last report goes stale instead.
    await stack.stopWorker();
    await workersUntil((w) => w.workers.find((x) => x.identity === identity)?.stale === true);
    await stack.startWorker({ maxConcurrentActivityTaskExecutions: 3, reportIntervalMs: 1000 });
    const back = await workersUntil((w) => w.workers.some((x) => x.identity === identity && !x.stale && x.slots.tuner === "fixed"));
    expect(back.workers.filter((x) => x.identity === identity)).toHaveLength(1);
    expect(back.workers.find((x) => x.identity === identity)!.slots).toEqual({ tuner: "fixed", activities: 3 });
  }, 300_000);

  it("lists a worker whose disk is nearly full and whose CPU is saturated as bottlenecks, with what to do", async () => {
    const report: WorkerReport = {
      identity: "4242@busy-host",
      host: "busy-host",
      taskQueue: "cairn",
      at: new Date().toISOString(),
      intervalMs: 600_000,
      cpu: 0.97,
      memory: { usedBytes: 4 << 30, totalBytes: 16 * 2 ** 30 },
      disk: { path: "/var/lib/cairn", freeBytes: 2 ** 30, totalBytes: 20 * 2 ** 30 },
      activitiesRunning: 12,
      slots: { tuner: "fixed", activities: 12 },
    };
    // As a worker on another machine sends it.
    await stack.client.workflow.signalWithStart(WORKER_REGISTER_WORKFLOW, {
      workflowId: WORKER_REGISTER_ID,
      taskQueue: WORKER_REGISTER_TASK_QUEUE,
      args: [[]],
      signal: workerReportSignal,
      signalArgs: [report],
    });
    const { bottlenecks } = await workersUntil((w) => w.bottlenecks.some((b) => b.identity === report.identity));
    const busy = bottlenecks.filter((b) => b.identity === report.identity);
    expect(busy.map((b) => [b.resource, b.threshold, b.recommendation.priority])).toEqual([
      ["disk", 0.9, "high"],
      ["cpu", 0.8, "medium"],
    ]);
    expect(busy[0].used).toBeCloseTo(0.95, 6);
    expect(busy[0].recommendation.description).toContain("CAIRN_DATA_DIR");
    expect(busy[1].recommendation.description).toContain("CAIRN_WORKER_TARGET_CPU");

    const analytics = await client.ok<{ bottlenecks: Bottleneck[] }>("GET", "/v1/analytics/bottlenecks");
    expect(analytics.bottlenecks.filter((b) => b.identity === report.identity)).toEqual(busy);
    const viewer = apiClient(stack.api, (await client.ok<{ token: string }>("POST", "/v1/tokens", { name: "viewer", role: "viewer" })).token);
    expect((await viewer.call("GET", "/v1/analytics/bottlenecks")).status).toBe(200);
    const { id: repositoryId } = await client.ok<{ id: string }>("POST", "/v1/repositories", { name: "scoped", url: path.join(tmp.dir, "scoped"), password: PASSWORD });
    const { token: scoped } = await client.ok<{ token: string }>("POST", "/v1/tokens", { name: "scoped", role: "viewer", scope: { repositoryIds: [repositoryId] } });
    const refused = await apiClient(stack.api, scoped).call<{ detail: string }>("GET", "/v1/workers");
    expect(refused.status).toBe(403);
    expect(refused.body.detail).toContain("unscoped token");
  }, 300_000);
});

import * as path from "node:path";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiServer } from "../api/server.js";
import { apiClient } from "./api-client.js";
import { PASSWORD, tempDir } from "./helpers.js";
import { testPolicy } from "./policy-fixtures.js";
import { startStack, type Stack } from "./stack.js";
import { makeOddTree } from "./tree-fixtures.js";

interface Queue {
  pending: number;
  pendingByPriority: { high: number; normal: number; low: number };
  running: number;
  completed: number;
  failed: number;
  averageDuration: number | null;
  successRate: number | null;
}

/**
 * The job queue on Temporal's task priority (dev server with the priority
 * matcher): jobs wait in the task queue while no worker polls, GET /v1/queue
 * counts them per priority, and a worker with one activity slot serves the
 * high-priority job before low ones that were queued earlier.
 */
describe("job queue (Temporal dev server + worker + API)", () => {
  const tmp = tempDir("cairn-queue-e2e-");
  const dataDir = path.join(tmp.dir, "data");
  const src = path.join(tmp.dir, "src");
  let stack: Stack;
  let api: ApiServer;
  let client: ReturnType<typeof apiClient>;

  const startWorker = async (slots: number) => {
    await stack.startWorker({ maxConcurrentActivityTaskExecutions: slots });
  };
  const stopWorker = () => stack.stopWorker();

  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger("WARN") });
    makeOddTree(src);
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, api: { historyIntervalMs: 300 } });
    api = stack.api;
    client = apiClient(api);
  }, 600_000);

  afterAll(async () => {
    await stack?.close();
    tmp.cleanup();
  }, 600_000);

  it("serves a high-priority job before low-priority ones queued earlier, and counts the waiting work per priority", async () => {
    const { id: repositoryId } = await client.ok<{ id: string }>("POST", "/v1/repositories", { name: "main", url: path.join(tmp.dir, "repo"), password: PASSWORD });
    const plan = async (name: string, priority: string) =>
      (await client.ok<{ id: string }>("POST", "/v1/plans", { name, repositoryId, source: { type: "files", paths: [src] }, queue: { priority, maxAttempts: 3, initialIntervalSeconds: 2, timeoutMinutes: 60 } })).id;
    const low = await plan("low", "low");
    const high = await plan("high", "high");
    expect((await client.ok<{ queue: unknown }>("GET", `/v1/plans/${high}`)).queue).toEqual({ priority: "high", maxAttempts: 3, initialIntervalSeconds: 2, timeoutMinutes: 60 });

    await stopWorker();
    const lows: string[] = [];
    for (let i = 0; i < 3; i++) lows.push((await client.ok<{ jobId: string }>("POST", `/v1/plans/${low}/run`)).jobId);
    const highJob = (await client.ok<{ jobId: string }>("POST", `/v1/plans/${high}/run`)).jobId;

    // Nobody polls: each job's first workflow task waits in the task queue, at its priority.
    let queue: Queue | undefined;
    for (let i = 0; i < 150; i++) {
      queue = await client.ok<Queue>("GET", "/v1/queue");
      if (queue.pendingByPriority.high === 1 && queue.pendingByPriority.low === 3) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(queue).toMatchObject({ pending: 4, pendingByPriority: { high: 1, normal: 0, low: 3 }, running: 4 });

    // One activity slot: every step of every job waits its turn, and the high job's steps go first.
    await startWorker(1);
    const finished = new Map<string, number>();
    for (const id of [...lows, highJob]) {
      const job = await client.pollJob(id, (j) => j.status !== "running");
      expect(job.status, JSON.stringify(job)).toBe("completed");
      finished.set(id, Date.parse((job as unknown as { finishedAt: string }).finishedAt));
    }
    // Served first-in-first-out, the high job, queued last, would finish after all three. With priority
    // it overtakes them; a low job's step may still slip in while the high job's workflow schedules its
    // next step (the one slot is free for that moment), so one low job may finish first, not two.
    const overtaken = lows.filter((id) => finished.get(highJob)! < finished.get(id)!);
    expect(overtaken.length, `high ${highJob} finished at ${finished.get(highJob)}, lows at ${lows.map((id) => finished.get(id))}`).toBeGreaterThanOrEqual(2);

    // The plan's retry policy and timeout reached Temporal.
    const history = await stack.client.workflow.getHandle(highJob).fetchHistory();
    const started = history.events![0].workflowExecutionStartedEventAttributes!;
    expect(started.priority?.priorityKey).toBe(1);
    expect(Number(started.workflowExecutionTimeout?.seconds)).toBe(3600);
    const scheduled = history.events!.filter((e) => e.activityTaskScheduledEventAttributes).map((e) => e.activityTaskScheduledEventAttributes!.retryPolicy!);
    expect(scheduled.length).toBeGreaterThanOrEqual(4);
    for (const retry of scheduled) {
      expect(retry.maximumAttempts).toBe(3);
      expect(Number(retry.initialInterval?.seconds)).toBe(2);
    }

    let after: Queue | undefined;
    // Temporal's backlog count is approximate and refreshed behind the tasks it counts: once the
    // jobs are done it reaches 0 within seconds, not at the same moment.
    for (let i = 0; i < 300; i++) {
      after = await client.ok<Queue>("GET", "/v1/queue");
      if (after.completed === 4 && after.running === 0 && after.pending === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(after).toMatchObject({ pending: 0, running: 0, completed: 4, failed: 0, successRate: 1 });
    expect(after!.averageDuration).toBeGreaterThan(0);
  });
});

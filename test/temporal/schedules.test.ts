import * as path from "node:path";
import { Client, Connection, ScheduleOverlapPolicy, type ScheduleHandle } from "@temporalio/client";
import { DefaultLogger, NativeConnection, Runtime, type WorkflowBundle } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDevServer, type DevServer } from "../../scripts/temporal.js";
import { createCairnWorker, type CairnWorker } from "../../worker.js";
import { SEARCH_ATTRIBUTE_KEYS, statusQuery, TASK_QUEUE, type BackupInput, type BackupResult } from "../../workflows/messages.js";
import { cairnOk, tempDir } from "../helpers.js";
import { backupInput, bundle, initRepository, randomFiles, startTemporal, waitFor } from "./helpers.js";
import { testPolicy } from "../policy-fixtures.js";

Runtime.install({ logger: new DefaultLogger("ERROR") });

/** Plans run on Temporal Schedules; the dev server keeps them, and past runs, in its SQLite file. */
describe("schedules, and a dev server restart", () => {
  const tmp = tempDir("cairn-schedules-");
  const dataDir = path.join(tmp.dir, "data");
  const repo = path.join(tmp.dir, "repo");
  let server: DevServer;
  let client: Client;
  let clientConnection: Connection;
  let dbFile: string;
  let workflowBundle: WorkflowBundle;
  let worker: { cairn: CairnWorker; connection: NativeConnection; running: Promise<void> } | undefined;
  let input: BackupInput;
  let active: ScheduleHandle;
  let paused: ScheduleHandle;
  const completed: string[] = [];

  async function startWorker(): Promise<void> {
    const connection = await NativeConnection.connect({ address: server.address });
    const cairn = await createCairnWorker({ policy: testPolicy(tmp.dir, dataDir), connection, dataDir, workflowBundle });
    worker = { cairn, connection, running: cairn.run() };
  }

  async function stopWorker(): Promise<void> {
    if (!worker) return;
    worker.cairn.shutdown();
    await worker.running;
    await worker.connection.close();
    worker = undefined;
  }

  beforeAll(async () => {
    const env = await startTemporal(tmp.dir);
    ({ server, client, dbFile } = env);
    clientConnection = env.connection;
    workflowBundle = await bundle();
    await startWorker();
    const src = path.join(tmp.dir, "src");
    randomFiles(src, 2, 1024 * 1024);
    await initRepository(repo);
    input = await backupInput(dataDir, repo, [src], { planId: "scheduled", planName: "scheduled plan" });
  });

  afterAll(async () => {
    await stopWorker();
    await clientConnection?.close();
    await server?.stop();
    tmp.cleanup();
  });

  function schedule(id: string, plan: BackupInput, state: { paused: boolean }) {
    return client.schedule.create({
      scheduleId: `${id}-${Date.now()}`,
      // Seven cron fields start with seconds: every two seconds.
      spec: { cronExpressions: ["*/2 * * * * * *"] },
      action: {
        type: "startWorkflow",
        workflowType: "backupWorkflow",
        taskQueue: TASK_QUEUE,
        args: [plan],
        typedSearchAttributes: [
          { key: SEARCH_ATTRIBUTE_KEYS.plan, value: plan.planId },
          { key: SEARCH_ATTRIBUTE_KEYS.kind, value: "backup" },
        ],
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
      state: { paused: state.paused, note: state.paused ? "paused by the test" : undefined },
    });
  }

  it("a schedule starts backupWorkflow on its own; a paused schedule starts nothing", async () => {
    paused = await schedule("paused-plan", { ...input, planId: "paused" }, { paused: true });
    active = await schedule("active-plan", input, { paused: false });

    const actions = await waitFor("two scheduled runs", async () => {
      const { info } = await active.describe();
      return info.recentActions.length >= 2 ? info.recentActions : undefined;
    });
    await active.pause("enough runs for the test");
    for (const action of actions) {
      const result = await client.workflow.getHandle<() => Promise<BackupResult>>(action.action.workflow.workflowId).result();
      expect(result.snapshotId).toMatch(/^[0-9a-f]{64}$/);
      completed.push(action.action.workflow.workflowId);
    }
    const snapshots = JSON.parse((await cairnOk(["-r", repo, "snapshots", "--json"])).stdout) as { host: string }[];
    expect(snapshots.length).toBeGreaterThanOrEqual(2);
    expect(new Set(snapshots.map((s) => s.host))).toEqual(new Set(["plan-scheduled"]));

    const { info } = await paused.describe();
    expect(info.numActionsTaken).toBe(0);
    expect(info.recentActions).toEqual([]);
  });

  it("keeps schedules and the histories of completed runs across a dev server restart", async () => {
    expect(completed.length).toBeGreaterThanOrEqual(2);
    await stopWorker();
    await clientConnection.close();
    await server.stop();

    server = await startDevServer({ dbFile, headless: true, log: () => undefined });
    clientConnection = await Connection.connect({ address: server.address });
    client = new Client({ connection: clientConnection });

    const ids: string[] = [];
    for await (const s of client.schedule.list()) ids.push(s.scheduleId);
    expect(ids.sort()).toEqual([active.scheduleId, paused.scheduleId].sort());
    expect((await client.schedule.getHandle(active.scheduleId).describe()).state.paused).toBe(true);

    for (const id of completed) {
      const handle = client.workflow.getHandle(id);
      expect((await handle.describe()).status.name).toBe("COMPLETED");
      const events = (await handle.fetchHistory()).events ?? [];
      expect(events.some((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === "snapshotBackup")).toBe(true);
    }
    // A worker replays a kept history to answer the status query of a finished run.
    await startWorker();
    const status = await client.workflow.getHandle(completed[0]).query(statusQuery);
    expect(status).toMatchObject({ kind: "backup", phase: "done" });
  });
});

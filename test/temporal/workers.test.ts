import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalBackend } from "../../backends/local.js";
import { Repository } from "../../engine/repository.js";
import { statusQuery, TASK_QUEUE, type BackupResult } from "../../workflows/messages.js";
import { cairnOk, tempDir } from "../helpers.js";
import {
  PASSWORD,
  activityWorkers,
  backupInput,
  heartbeating,
  initRepository,
  packFiles,
  randomFiles,
  spawnWorker,
  startTemporal,
  waitFor,
  type WorkerProcess,
} from "./helpers.js";

const MiB = 1024 * 1024;

/** Worker processes (`node dist/worker.js`) as production runs them: killed, restarted, side by side. */
describe("worker processes", () => {
  const tmp = tempDir("cairn-workers-");
  const dataDir = path.join(tmp.dir, "data");
  let env: Awaited<ReturnType<typeof startTemporal>>;
  const workers: WorkerProcess[] = [];
  const worker = (extra: Record<string, string> = {}) => {
    const w = spawnWorker(env.server.address, dataDir, extra);
    workers.push(w);
    return w;
  };

  beforeAll(async () => {
    env = await startTemporal(tmp.dir);
  });

  afterAll(async () => {
    for (const w of workers) await w.stop();
    await env?.connection.close();
    await env?.server.stop();
    tmp.cleanup();
  });

  it("a backup whose worker is killed half way is finished by another worker, which reuses the packs that landed", { timeout: 240_000 }, async () => {
    const src = path.join(tmp.dir, "big");
    const repo = path.join(tmp.dir, "repo-kill");
    const total = randomFiles(src, 25, 8 * MiB);
    await initRepository(repo, 4);
    // zstd at level 15 on random data is slow enough to stop the worker in the middle.
    const input = await backupInput(dataDir, repo, [src], { compression: "zstd:15" });

    const first = worker();
    await first.ready;
    const handle = await env.client.workflow.start("backupWorkflow", { taskQueue: TASK_QUEUE, workflowId: `killed-${Date.now()}`, args: [input] });
    // While the snapshot runs, the status query answers with the progress the activity signals.
    // The total comes from a scan that runs beside the reading (0 until it ends), so under
    // load the first bytes can be reported before it.
    const running = await waitFor("progress in the status query", async () => {
      const status = await handle.query(statusQuery);
      return status.progress.bytesDone > 0 && status.progress.bytesTotal > 0 ? status : undefined;
    });
    expect(running).toMatchObject({ kind: "backup", phase: "snapshot", progress: { bytesTotal: total } });
    await waitFor("half the packs and a heartbeat", async () => (packFiles(repo).size >= 25 && (await heartbeating(handle, "snapshotBackup")) ? true : undefined));
    first.child.kill("SIGKILL");
    await first.stop();

    // What the checkpoints put in the index before the kill: the next attempt must not upload it again.
    const stored = packFiles(repo);
    const opened = await Repository.open(new LocalBackend(repo), PASSWORD, { threads: 0 });
    let indexedBytes = 0;
    for (const f of (await opened.indexFilesWithEntries()).values()) for (const p of f.packs) indexedBytes += stored.get(p.id) ?? 0;
    await opened.close();
    expect(indexedBytes).toBeGreaterThan(total / 4);
    expect(indexedBytes).toBeLessThan(total);

    const second = worker();
    const result = await handle.result();
    const started = await activityWorkers(handle);
    expect(started).toContain(first.identity);
    expect(started).toContain(second.identity);
    expect(result.warnings.join("\n")).toMatch(/the snapshot resumed after attempt 1 stopped/);
    expect(result.bytesProcessed).toBe(total);
    // The resumed attempt stored what had not landed, plus the packs that were open at the kill.
    expect(result.bytesStored).toBeLessThanOrEqual(total - indexedBytes + 4 * 4 * MiB);
    await cairnOk(["-r", repo, "check", "--read-data"]);
    await second.stop();
  });

  it("two workers on the task queue share concurrent backups", async () => {
    const repo = path.join(tmp.dir, "repo-shared");
    await initRepository(repo, 4);
    // One activity at a time each, so a busy worker leaves the next task to the other.
    const pair = [worker({ CAIRN_WORKER_CONCURRENCY: "1" }), worker({ CAIRN_WORKER_CONCURRENCY: "1" })];
    await Promise.all(pair.map((w) => w.ready));
    const handles = await Promise.all(
      Array.from({ length: 4 }, async (_, i) => {
        const src = path.join(tmp.dir, `plan-${i}`);
        randomFiles(src, 2, MiB);
        const input = await backupInput(dataDir, repo, [src], { planId: `plan-${i}`, planName: `plan ${i}` });
        return env.client.workflow.start("backupWorkflow", { taskQueue: TASK_QUEUE, workflowId: `shared-${i}-${Date.now()}`, args: [input] });
      }),
    );
    const results: BackupResult[] = await Promise.all(handles.map((h) => h.result()));
    expect(new Set(results.map((r) => r.snapshotId)).size).toBe(4);

    const identities = new Set<string>();
    for (const h of handles) for (const id of await activityWorkers(h)) identities.add(id);
    expect(identities).toEqual(new Set(pair.map((w) => w.identity)));
    await cairnOk(["-r", repo, "check"]);
  });
});

import { existsSync, renameSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { WorkflowFailedError, WorkflowHandle } from "@temporalio/client";
import type { ApplicationFailure } from "@temporalio/common";
import { historyToJSON } from "@temporalio/common/lib/proto-utils.js";
import { DefaultLogger, NativeConnection, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSecretBox } from "../../engine/secret-box.js";
import { createCairnWorker, type CairnWorker } from "../../worker.js";
import { statusQuery, TASK_QUEUE, type BackupResult, type RestoreInput, type RestoreResult } from "../../workflows/messages.js";
import { ROOT, cairnOk, tempDir } from "../helpers.js";
import { describeTree, makeOddTree, withoutSetid } from "../tree-fixtures.js";
import { PASSWORD, backupInput, bundle, historyPayloadSizes, initRepository, randomFiles, startTemporal } from "./helpers.js";
import { testPolicy } from "../policy-fixtures.js";

Runtime.install({ logger: new DefaultLogger("ERROR") });

describe("backupWorkflow with secondary repositories", () => {
  const tmp = tempDir("cairn-replicate-");
  const dataDir = path.join(tmp.dir, "data");
  const src = path.join(tmp.dir, "src");
  const primary = path.join(tmp.dir, "primary");
  const secondary = path.join(tmp.dir, "secondary");
  let env: Awaited<ReturnType<typeof startTemporal>>;
  let connection: NativeConnection;
  let worker: CairnWorker;
  let running: Promise<void>;
  let replicated: WorkflowHandle | undefined;

  beforeAll(async () => {
    env = await startTemporal(tmp.dir);
    connection = await NativeConnection.connect({ address: env.server.address });
    worker = await createCairnWorker({ policy: testPolicy(tmp.dir, dataDir), connection, dataDir, workflowBundle: await bundle(), maxConcurrentActivityTaskExecutions: 4 });
    running = worker.run();
    makeOddTree(src);
    randomFiles(path.join(src, "blobs"), 2, 2 * 1024 * 1024);
    await initRepository(primary);
    await cairnOk(["-r", secondary, "init", "--copy-chunker-params", "--from-repo", primary], { env: { CAIRN_FROM_PASSWORD: PASSWORD } });
  });

  afterAll(async () => {
    worker?.shutdown();
    await running;
    await connection?.close();
    await env?.connection.close();
    await env?.server.stop();
    tmp.cleanup();
  });

  it("copies the new snapshot to a secondary, and a secondary it cannot reach leaves a warning, not a failed backup", async () => {
    const box = await loadSecretBox(dataDir);
    const input = await backupInput(dataDir, primary, [src], {
      secondaries: [
        { id: "offsite", url: secondary, sealedPassword: box.seal(PASSWORD) },
        { id: "gone", url: path.join(tmp.dir, "no-repository-here"), sealedPassword: box.seal(PASSWORD) },
      ],
    });
    const handle = await env.client.workflow.start("backupWorkflow", { taskQueue: TASK_QUEUE, workflowId: `replicate-${Date.now()}`, args: [input] });
    replicated = handle;
    const result = (await handle.result()) as BackupResult;

    expect(result.replicas).toHaveLength(1);
    expect(result.replicas![0]).toMatchObject({ repositoryId: "offsite" });
    expect(result.replicas![0].bytesSent).toBeGreaterThan(4 * 1024 * 1024);
    expect(result.warnings).toEqual([expect.stringContaining(`was not copied to secondary repository gone`)]);
    expect(result.warnings[0]).toContain("there is no Cairn repository at");
    expect(await handle.query(statusQuery)).toMatchObject({ phase: "done", snapshotId: result.snapshotId });

    const copies = JSON.parse((await cairnOk(["-r", secondary, "snapshots", "--json"])).stdout) as { id: string }[];
    expect(copies.map((s) => s.id)).toEqual([result.replicas![0].snapshotId]);
    const target = path.join(tmp.dir, "restore");
    await cairnOk(["-r", secondary, "restore", "latest", "--target", target]);
    expect(describeTree(path.join(target, src))).toEqual(describeTree(src));
    await cairnOk(["-r", secondary, "check", "--read-data"]);

    // Secondaries travel as references with sealed passwords: every payload stays small.
    for (const { event, bytes } of historyPayloadSizes(await handle.fetchHistory())) expect(bytes, event).toBeLessThanOrEqual(4 * 1024);
  });

  it("a copy that failed in one run is made by the next, once the secondary can be reached", async () => {
    const box = await loadSecretBox(dataDir);
    const late = path.join(tmp.dir, "late");
    const secondaries = [
      { id: "offsite", url: secondary, sealedPassword: box.seal(PASSWORD) },
      { id: "late", url: late, sealedPassword: box.seal(PASSWORD) },
    ];
    const input = await backupInput(dataDir, primary, [src], { secondaries });
    const run = async (name: string) => (await env.client.workflow.execute("backupWorkflow", { taskQueue: TASK_QUEUE, workflowId: `${name}-${Date.now()}`, args: [input] })) as BackupResult;

    const missed = await run("late-missing");
    expect(missed.replicas!.map((r) => r.repositoryId)).toEqual(["offsite"]);
    expect(missed.warnings).toEqual([expect.stringContaining(`snapshot ${missed.snapshotId.slice(0, 8)} was not copied to secondary repository late`)]);

    // The secondary appears (its disk is mounted again); it shares no id key with the primary, so blobs are re-keyed.
    await initRepository(late);
    writeFileSync(path.join(src, "added.txt"), "written between the two runs\n");
    const caught = await run("late-caught-up");
    expect(caught.warnings).toEqual([]);
    const toLate = caught.replicas!.find((r) => r.repositoryId === "late")!;
    // The missed run and the first test's run, both of this plan; offsite got the missed one when it was made.
    expect(toLate.caughtUp).toBe(2);
    expect(caught.replicas!.find((r) => r.repositoryId === "offsite")!.caughtUp).toBe(0);

    const primarySnapshots = JSON.parse((await cairnOk(["-r", primary, "snapshots", "--json"])).stdout) as { time: string; paths: string[] }[];
    const lateSnapshots = JSON.parse((await cairnOk(["-r", late, "snapshots", "--json"])).stdout) as { id: string; time: string }[];
    // Every run of the plan is in the secondary now.
    expect(lateSnapshots.map((s) => s.time)).toEqual(primarySnapshots.map((s) => s.time));
    expect(lateSnapshots.map((s) => s.id)).toContain(toLate.snapshotId);
    const target = path.join(tmp.dir, "restore-missed");
    const missedCopy = lateSnapshots[lateSnapshots.length - 2];
    await cairnOk(["-r", late, "restore", missedCopy.id, "--target", target]);
    expect(existsSync(path.join(target, src, "added.txt"))).toBe(false);
    expect(describeTree(path.join(target, src, "blobs"))).toEqual(describeTree(path.join(src, "blobs")));
    await cairnOk(["-r", late, "check", "--read-data"]);

    // A third run finds nothing left to catch up.
    const again = await run("late-steady");
    expect(again.replicas!.map((r) => r.caughtUp)).toEqual([0, 0]);
  });

  it("a restore is served by a secondary when the primary cannot be reached, and by the primary when it can", async () => {
    const box = await loadSecretBox(dataDir);
    const { repository } = await backupInput(dataDir, primary, [src]);
    const [latest] = (JSON.parse((await cairnOk(["-r", primary, "snapshots", "--json"])).stdout) as { id: string; time: string; host: string; paths: string[] }[]).slice(-1);
    const input: RestoreInput = {
      repository,
      snapshotId: latest.id,
      target: "",
      snapshot: { time: latest.time, host: latest.host, paths: latest.paths },
      secondaries: [
        { id: "nowhere", url: path.join(tmp.dir, "never-made"), sealedPassword: box.seal(PASSWORD) },
        // Holds a copy, but its password was changed since: the next secondary serves instead.
        { id: "late", url: path.join(tmp.dir, "late"), sealedPassword: box.seal("an old password") },
        { id: "offsite", url: secondary, sealedPassword: box.seal(PASSWORD) },
      ],
    };
    const restore = async (name: string, extra: Partial<RestoreInput>) =>
      env.client.workflow.execute("restoreWorkflow", { taskQueue: TASK_QUEUE, workflowId: `${name}-${Date.now()}`, args: [{ ...input, target: path.join(tmp.dir, name), ...extra }] }) as Promise<RestoreResult>;

    const moved = `${primary}.unmounted`;
    renameSync(primary, moved);
    let failedOver: RestoreResult;
    try {
      failedOver = await restore("restore-failover", {});
    } finally {
      renameSync(moved, primary);
    }
    expect(failedOver.servedBy).toEqual({ repositoryId: "offsite", url: secondary, failover: true });
    expect(failedOver.warnings).toEqual([
      expect.stringMatching(/^restored from the snapshot's copy [0-9a-f]{8} in secondary repository offsite, because repository repo-1 could not be reached: there is no Cairn repository at /),
      expect.stringMatching(/^secondary repository nowhere could not serve: there is no Cairn repository at /),
      expect.stringMatching(/^secondary repository late could not serve: wrong password/),
    ]);
    expect(describeTree(path.join(tmp.dir, "restore-failover", src))).toEqual(withoutSetid(describeTree(src)));

    const direct = await restore("restore-primary", {});
    expect(direct.servedBy).toEqual({ repositoryId: "repo-1", url: primary, failover: false });
    expect(direct.warnings).toEqual([]);
    expect(describeTree(path.join(tmp.dir, "restore-primary", src))).toEqual(withoutSetid(describeTree(src)));

    // An id from the copy (the API resolved it while the primary was down) finds the same backup in the primary by time, host and paths.
    const [copy] = (JSON.parse((await cairnOk(["-r", secondary, "snapshots", "--json"])).stdout) as { id: string }[]).slice(-1);
    expect(copy.id).not.toBe(latest.id);
    expect((await restore("restore-by-copy-id", { snapshotId: copy.id })).servedBy.repositoryId).toBe("repo-1");

    // A primary that answers decides: a snapshot it does not have, or a wrong password, is an error, not a reason to read another copy.
    const missing = await restore("restore-missing", { snapshotId: "0123456789abcdef", snapshot: { ...input.snapshot!, time: "2001-01-01T00:00:00Z" } }).then(() => undefined, (e: WorkflowFailedError) => e.cause?.cause as ApplicationFailure);
    expect(missing?.type).toBe("InvalidRequestError");
    const wrong = await restore("restore-wrong-password", { repository: { ...repository, sealedPassword: box.seal("not the password") } }).then(() => undefined, (e: WorkflowFailedError) => e.cause?.cause as ApplicationFailure);
    expect(wrong?.type).toBe("WrongPasswordError");
    expect(existsSync(path.join(tmp.dir, "restore-wrong-password"))).toBe(false);
  });

  it("records its history for the replay test", async () => {
    // Recorded when missing, or again with CAIRN_RECORD_HISTORIES=1 after a deliberate workflow change.
    const target = path.join(ROOT, "test", "replay", "backupWorkflow-secondaries.json");
    if (existsSync(target) && !process.env.CAIRN_RECORD_HISTORIES) return;
    const history = await replicated!.fetchHistory();
    expect(history.events?.some((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === "replicateSnapshot")).toBe(true);
    writeFileSync(target, historyToJSON(history));
  });
});

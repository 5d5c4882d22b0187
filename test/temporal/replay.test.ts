import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { DefaultLogger, Runtime, Worker, type WorkflowBundleOption } from "@temporalio/worker";
import { describe, expect, it } from "vitest";
import { prebuiltWorkflowBundle } from "../../worker.js";
import { ROOT } from "../helpers.js";
import { bundle } from "./helpers.js";

Runtime.install({ logger: new DefaultLogger("ERROR") });

/**
 * Histories recorded from real runs (by workflows.test.ts) replayed against the
 * current workflow code: a change that would break running workflows (a step
 * added, removed or reordered without patching) fails here.
 */
describe("recorded workflow histories replay against the current code", () => {
  const dir = path.join(ROOT, "test", "replay");
  const files = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();

  async function replayAll(workflowBundle: WorkflowBundleOption): Promise<void> {
    const histories = files.map((f) => ({ workflowId: f.replace(/\.json$/, ""), history: JSON.parse(readFileSync(path.join(dir, f), "utf8")) }));
    const failures: string[] = [];
    let replayed = 0;
    for await (const result of Worker.runReplayHistories({ workflowBundle }, histories)) {
      replayed++;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    expect(failures).toEqual([]);
    expect(replayed).toBe(files.length);
  }

  it("replays every history in test/replay without a determinism error", async () => {
    expect(files).toEqual(expect.arrayContaining(["backupWorkflow.json", "restoreWorkflow.json", "verifyWorkflow.json", "pruneWorkflow.json"]));
    await replayAll(await bundle());
  });

  it("replays them as well with the bundle npm run build wrote, which production workers load", async () => {
    const prebuilt = prebuiltWorkflowBundle();
    if (!("codePath" in prebuilt)) throw new Error(`no fresh prebuilt workflow bundle (${prebuilt.stale}): run npm run build`);
    await replayAll(prebuilt);
  });
});

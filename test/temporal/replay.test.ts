import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { DefaultLogger, Runtime, Worker } from "@temporalio/worker";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers.js";
import { bundle } from "./helpers.js";

Runtime.install({ logger: new DefaultLogger("ERROR") });

/**
 * Histories recorded from real runs (by workflows.test.ts) replayed against the
 * current workflow code: a change that would break running workflows (a step
 * added, removed or reordered without patching) fails here.
 */
describe("recorded workflow histories replay against the current code", () => {
  it("replays every history in test/replay without a determinism error", async () => {
    const dir = path.join(ROOT, "test", "replay");
    const files = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();
    expect(files).toEqual(expect.arrayContaining(["backupWorkflow.json", "restoreWorkflow.json", "verifyWorkflow.json", "pruneWorkflow.json"]));
    const histories = files.map((f) => ({ workflowId: f.replace(/\.json$/, ""), history: JSON.parse(readFileSync(path.join(dir, f), "utf8")) }));
    const failures: string[] = [];
    let replayed = 0;
    for await (const result of Worker.runReplayHistories({ workflowBundle: await bundle() }, histories)) {
      replayed++;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    expect(failures).toEqual([]);
    expect(replayed).toBe(files.length);
  });
});

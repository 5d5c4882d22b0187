import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalBackend } from "../backends/local.js";
import { RepositoryLock } from "../engine/locks.js";
import { Repository } from "../engine/repository.js";
import { SEARCH_ATTRIBUTE_KEYS, SEARCH_ATTRIBUTES } from "../workflows/messages.js";
import { apiClient, type Job } from "./api-client.js";
import { PASSWORD, tempDir } from "./helpers.js";
import { testPolicy } from "./policy-fixtures.js";
import { startStack, type Stack } from "./stack.js";

type Steps = Job & { steps: { name: string; startedAt: string; finishedAt: string }[]; waitingFor?: string };

/**
 * The global job limit (CAIRN_MAX_JOBS, here the worker's maxJobs 2) on the real
 * Temporal dev server: two jobs hold the slots, a third (a recovery drill) waits
 * visibly, and once it runs it holds a slot itself, so a fourth waits for it. And
 * the search attributes an operator filters on in the Web UI: every job carries its
 * repository, and its outcome once it ended.
 */
describe("global job limit and job search attributes (Temporal dev server + worker + API)", () => {
  const tmp = tempDir("cairn-job-slots-e2e-");
  const dataDir = path.join(tmp.dir, "data");
  let stack: Stack;
  let client: ReturnType<typeof apiClient>;

  const finished = (jobId: string) => client.pollJob(jobId, (j) => j.status !== "running");
  const repository = async (name: string) => (await client.ok<{ id: string }>("POST", "/v1/repositories", { name, url: path.join(tmp.dir, name), password: PASSWORD })).id;
  /** A shared lock on the repository, as another process's backup would hold: a prune there waits for it. */
  const holdLock = async (name: string) => {
    const repo = await Repository.open(new LocalBackend(path.join(tmp.dir, name), { fsync: false }), PASSWORD, { threads: 0 });
    const lock = await RepositoryLock.acquire(repo, { exclusive: false, operation: "test holding the repository" });
    let released: Promise<void> | undefined;
    return () => (released ??= lock.release().then(() => repo.close()));
  };
  /** The workflow ids a visibility query lists, once it lists `expected` (visibility is eventually consistent). */
  const listed = async (query: string, expected: string[]): Promise<string[]> => {
    let ids: string[] = [];
    for (let i = 0; i < 100; i++) {
      ids = [];
      for await (const wf of stack.client.workflow.list({ query })) ids.push(wf.workflowId);
      if (expected.every((id) => ids.includes(id))) return ids.sort();
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${query} lists ${JSON.stringify(ids)}, not all of ${JSON.stringify(expected)}`);
  };

  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger("WARN") });
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, api: { historyIntervalMs: 300 }, worker: { maxJobs: 2 } });
    client = apiClient(stack.api);
  }, 600_000);

  afterAll(async () => {
    await stack?.close();
    tmp.cleanup();
  }, 600_000);

  it("lets two jobs run, makes a drill wait for a slot while they do, and counts the drill against the limit once it runs", async () => {
    const src = path.join(tmp.dir, "src");
    mkdirSync(src);
    writeFileSync(path.join(src, "a.txt"), "what the drill reads back\n");
    const drilled = await repository("drilled");
    const { id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", { name: "drilled", repositoryId: drilled, source: { type: "files", paths: [src] } });
    const backup = await finished((await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`)).jobId);
    expect(backup.status, JSON.stringify(backup)).toBe("completed");

    const a = await repository("a");
    const b = await repository("b");
    const releaseA = await holdLock("a");
    const releaseB = await holdLock("b");
    let pruneA: string;
    let pruneB: string;
    let drill: string;
    let next: string;
    try {
      // Both prunes take a global slot, then wait inside their step for the exclusive lock.
      pruneA = (await client.ok<{ jobId: string }>("POST", `/v1/repositories/${a}/prune`, {})).jobId;
      await client.pollJob(pruneA, (j) => j.phase === "prune");
      pruneB = (await client.ok<{ jobId: string }>("POST", `/v1/repositories/${b}/prune`, {})).jobId;
      await client.pollJob(pruneB, (j) => j.phase === "prune");

      drill = (await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/drills`)).jobId;
      const waiting = (await client.pollJob(drill, (j) => j.phase === "waiting" || j.status !== "running")) as Steps;
      expect(waiting, JSON.stringify(waiting)).toMatchObject({ kind: "drill", status: "running", phase: "waiting" });
      expect(waiting.waitingFor).toContain("global limit (CAIRN_MAX_JOBS)");
      const queue = await client.ok<{ waitingForSlot: number; running: number }>("GET", "/v1/queue");
      expect(queue).toMatchObject({ waitingForSlot: 1, running: 3 });
      for (const id of [pruneA, pruneB]) expect((await client.ok<Job>("GET", `/v1/jobs/${id}`)).phase).toBe("prune");

      // A fourth job queues behind the drill.
      next = (await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`)).jobId;
      expect((await client.pollJob(next, (j) => j.phase === "waiting" || j.status !== "running")).phase).toBe("waiting");
      await releaseA();
    } finally {
      await releaseA();
      // B stays held until the drill has run: the drill and prune B then hold both slots.
    }
    try {
      const drillDone = (await finished(drill!)) as Steps;
      expect(drillDone.status, JSON.stringify(drillDone)).toBe("completed");
      expect((await client.ok<Job>("GET", `/v1/jobs/${pruneB!}`)).status).toBe("running");
      const nextDone = (await finished(next!)) as Steps;
      expect(nextDone.status, JSON.stringify(nextDone)).toBe("completed");
      // The fourth job's first step began only after the drill's last one had ended: the drill held a slot.
      const drillEnd = Math.max(...drillDone.steps.map((s) => Date.parse(s.finishedAt)));
      const prepared = nextDone.steps.find((s) => s.name === "prepare")!;
      expect(Date.parse(prepared.startedAt)).toBeGreaterThanOrEqual(drillEnd);
      expect((await client.ok<{ lines: { message: string }[] }>("GET", `/v1/jobs/${drill!}/logs`)).lines.map((l) => l.message)).toContain("got a slot of cairn-slots-global");
    } finally {
      await releaseB();
    }
    expect((await finished(pruneA!)).status).toBe("completed");
    expect((await finished(pruneB!)).status).toBe("completed");

    // Every job carries the repository it worked on, and how it ended.
    expect(await listed(`${SEARCH_ATTRIBUTES.repository} = "${drilled}"`, [backup.id, drill!, next!])).toEqual([backup.id, drill!, next!].sort());
    expect(await listed(`${SEARCH_ATTRIBUTES.repository} = "${a}" AND ${SEARCH_ATTRIBUTES.outcome} = "completed"`, [pruneA!])).toEqual([pruneA!]);
  }, 600_000);

  it("finds a plan's failed jobs by CairnOutcome and CairnPlan, as an operator filters them in the Web UI", async () => {
    const src = path.join(tmp.dir, "vanishing");
    mkdirSync(src);
    writeFileSync(path.join(src, "b.txt"), "here for the first run only\n");
    const repositoryId = await repository("outcomes");
    const { id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", { name: "vanishing", repositoryId, source: { type: "files", paths: [src] } });
    const good = await finished((await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`)).jobId);
    expect(good.status).toBe("completed");
    rmSync(src, { recursive: true });
    const bad = await finished((await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`)).jobId);
    expect(bad.status, JSON.stringify(bad)).toBe("failed");

    expect(await listed(`CairnOutcome = "failed" AND CairnPlan = "${planId}"`, [bad.id])).toEqual([bad.id]);
    expect(await listed(`CairnOutcome = "completed" AND CairnPlan = "${planId}"`, [good.id])).toEqual([good.id]);
    const described = await stack.client.workflow.getHandle(bad.id).describe();
    const attributes = Object.fromEntries(Object.entries(SEARCH_ATTRIBUTE_KEYS).map(([name, key]) => [name, described.typedSearchAttributes.get(key)]));
    expect(attributes).toEqual({ plan: planId, kind: "backup", source: "files", repository: repositoryId, outcome: "failed" });
  }, 300_000);
});

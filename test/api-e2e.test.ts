import { closeSync, existsSync, mkdirSync, openSync, readdirSync, renameSync, writeSync } from "node:fs";
import * as path from "node:path";
import { Client, Connection, ScheduleNotFoundError } from "@temporalio/client";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import type { TypedSearchAttributes } from "@temporalio/common";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiServer } from "../api/server.js";
import { SEARCH_ATTRIBUTE_KEYS } from "../workflows/messages.js";
import { apiClient, type Job } from "./api-client.js";
import { PASSWORD, cairnOk, tempDir } from "./helpers.js";
import { describeTree, makeOddTree, withoutSetid } from "./tree-fixtures.js";
import { testPolicy } from "./policy-fixtures.js";
import { startStack, type Stack } from "./stack.js";
import { inBlackout, WEEK } from "../api/blackouts.js";

/**
 * The platform as a user drives it: the API (real HTTP server, PGlite catalog),
 * a Temporal dev server and a worker, a local repository on disk.
 */
describe("API end to end (Temporal dev server + worker)", () => {
  const tmp = tempDir("cairn-api-e2e-");
  const dataDir = path.join(tmp.dir, "data");
  const src = path.join(tmp.dir, "src");
  let stack: Stack;
  let api: ApiServer;
  let connection: Connection;
  let client: Client;
  let repositoryId: string;

  let call: ReturnType<typeof apiClient>["call"];
  let ok: ReturnType<typeof apiClient>["ok"];
  let pollJob: ReturnType<typeof apiClient>["pollJob"];
  let listUntil: ReturnType<typeof apiClient>["listUntil"];

  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger("WARN") });
    makeOddTree(src);
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir });
    api = stack.api;
    ({ call, ok, pollJob, listUntil } = apiClient(api));
    ({ connection, client } = stack);
  });

  afterAll(async () => {
    await stack?.close();
    tmp.cleanup();
  });

  it("starts with a generated admin token and reports ready", async () => {
    expect(api.token).toMatch(/^cairn_/);
    const ready = await fetch(`${api.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready", checks: { catalog: "ok", temporal: "ok" } });
  });

  let planId: string;
  let snapshotId: string;

  it("backs up a plan run through the API and reports its progress", async () => {
    ({ id: repositoryId } = await ok<{ id: string }>("POST", "/v1/repositories", { name: "main", url: path.join(tmp.dir, "repo"), password: PASSWORD }));
    ({ id: planId } = await ok<{ id: string }>("POST", "/v1/plans", {
      name: "odd-tree",
      repositoryId,
      source: { type: "files", paths: [src] },
      retention: { keepLast: 5 },
      verifySamplePercent: 100,
    }));
    const { jobId } = await ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    expect(jobId).toMatch(new RegExp(`^backup-${planId}-\\d{8}T\\d{9}Z$`));

    const seen: Job[] = [];
    const done = await pollJob(jobId, (j) => j.status !== "running", seen);
    expect(done, JSON.stringify(done)).toMatchObject({ id: jobId, kind: "backup", status: "completed", phase: "done", planId });
    expect(seen[0].status).toBe("running");
    const facts = Object.values(describeTree(src)).filter((f) => f.type === "file");
    expect(done.progress.filesDone).toBe(facts.length);
    expect(done.progress.bytesDone).toBe(facts.reduce((n, f) => n + f.size!, 0));
    expect(done.snapshotId).toMatch(/^[0-9a-f]{64}$/);
    snapshotId = done.snapshotId!;

    // The finished job reads the same again (now from the catalog mirror), and the lists find it by plan and status.
    expect(await ok<Job>("GET", `/v1/jobs/${jobId}`)).toEqual(done);
    await listUntil(`planId=${planId}`, (jobs) => jobs.some((j) => j.id === jobId && j.status === "completed" && j.snapshotId === snapshotId));
    await listUntil("status=completed&kind=backup", (jobs) => jobs.some((j) => j.id === jobId));
    const running = await ok<{ jobs: Job[] }>("GET", `/v1/jobs?status=running&planId=${planId}`);
    expect(running.jobs).toEqual([]);

    const { snapshots } = await ok<{ snapshots: { id: string; paths: string[]; tags: string[] }[] }>("GET", `/v1/snapshots?repositoryId=${repositoryId}`);
    expect(snapshots.map((s) => s.id)).toEqual([snapshotId]);
    expect(snapshots[0].paths).toEqual([src]);
    expect(snapshots[0].tags).toEqual(["plan:odd-tree"]);
    // The CLI finds a plan's snapshots by the plan's name (their tag) or id (their host).
    for (const plan of ["odd-tree", planId]) {
      const listed = JSON.parse((await cairnOk(["-r", path.join(tmp.dir, "repo"), "snapshots", "--plan", plan, "--json"])).stdout) as { id: string }[];
      expect(listed.map((s) => s.id)).toEqual([snapshotId]);
    }
  });

  it("restores the snapshot byte-identical, selectively, and as a dry run", async () => {
    const target = path.join(tmp.dir, "restore-full");
    const full = await ok<{ jobId: string; snapshotId: string }>("POST", "/v1/restores", { repositoryId, snapshotId: snapshotId.slice(0, 8), target });
    expect(full.snapshotId).toBe(snapshotId);
    const restored = await pollJob(full.jobId, (j) => j.status !== "running");
    expect(restored, JSON.stringify(restored)).toMatchObject({ kind: "restore", status: "completed" });
    expect(describeTree(path.join(target, src))).toEqual(withoutSetid(describeTree(src)));
    // A finished restore keeps its size and the rate it wrote at, not zeros.
    expect(restored.progress.bytesTotal).toBeGreaterThan(0);
    expect(restored.progress.bytesDone).toBe(restored.progress.bytesTotal);
    expect(restored.progress.bytesPerSecond).toBeGreaterThan(0);

    const selTarget = path.join(tmp.dir, "restore-selected");
    const sel = await ok<{ jobId: string }>("POST", "/v1/restores", { repositoryId, snapshotId: "latest", target: selTarget, include: ["*.txt"], exclude: ["bottom.txt"] });
    expect((await pollJob(sel.jobId, (j) => j.status !== "running")).status).toBe("completed");
    const files = Object.entries(describeTree(path.join(selTarget, src))).filter(([, f]) => f.type === "file").map(([p]) => p).sort();
    expect(files).toEqual(["naïve café ünïcødé 日本語 🙂.txt", "small.txt"]);

    // A pattern with a slash is anchored on the snapshot's absolute paths, as restic reads it.
    const anchoredTarget = path.join(tmp.dir, "restore-anchored");
    const anchored = await ok<{ jobId: string }>("POST", "/v1/restores", { repositoryId, snapshotId: "latest", target: anchoredTarget, include: [`${src}/small.*`] });
    expect((await pollJob(anchored.jobId, (j) => j.status !== "running")).status).toBe("completed");
    expect(Object.keys(describeTree(path.join(anchoredTarget, src))).filter((p) => p !== "")).toEqual(["small.txt"]);

    // An include that selects nothing fails the job at once (no retries) and says why.
    const nothing = await ok<{ jobId: string }>("POST", "/v1/restores", { repositoryId, snapshotId: "latest", target: path.join(tmp.dir, "restore-nothing"), include: ["/srv/www/*.txt"] });
    const nothingJob = await pollJob(nothing.jobId, (j) => j.status !== "running");
    expect(nothingJob.status).toBe("failed");
    expect(nothingJob.error).toMatch(/no path in the snapshot matches the include pattern "\/srv\/www\/\*\.txt"/);

    const dryTarget = path.join(tmp.dir, "restore-dry");
    const dry = await ok<{ jobId: string }>("POST", "/v1/restores", { repositoryId, snapshotId, target: dryTarget, dryRun: true });
    const dryJob = await pollJob(dry.jobId, (j) => j.status !== "running");
    expect(dryJob.status).toBe("completed");
    expect(dryJob.result).toMatchObject({ dryRun: true });
    expect((dryJob.result as { files: number }).files).toBeGreaterThan(10);
    expect(existsSync(dryTarget) ? readdirSync(dryTarget) : []).toEqual([]);

    const missing = await call<{ errors: { path: string }[] }>("POST", "/v1/restores", { repositoryId, snapshotId: "abcdef12", target });
    expect(missing.status).toBe(404);
    expect(missing.body.errors[0].path).toBe("snapshotId");
  });

  it("restores from a copy when the repository cannot be reached, and the job says which repository served it", async () => {
    const offsiteUrl = path.join(tmp.dir, "offsite");
    const { id: offsiteId } = await ok<{ id: string }>("POST", "/v1/repositories", { name: "offsite", url: offsiteUrl, password: PASSWORD });
    const repoUrl = path.join(tmp.dir, "repo");
    await cairnOk(["-r", offsiteUrl, "copy", "--from-repo", repoUrl], { env: { CAIRN_FROM_PASSWORD: PASSWORD } });
    const target = path.join(tmp.dir, "restore-failover");
    renameSync(repoUrl, `${repoUrl}.unmounted`);
    let job: Job;
    try {
      const started = await ok<{ jobId: string; snapshotId: string }>("POST", "/v1/restores", { repositoryId, snapshotId: "latest", target, fallbackRepositoryIds: [offsiteId] });
      job = await pollJob(started.jobId, (j) => j.status !== "running");
    } finally {
      renameSync(`${repoUrl}.unmounted`, repoUrl);
    }
    expect(job, JSON.stringify(job)).toMatchObject({ kind: "restore", status: "completed", result: { servedBy: { repositoryId: offsiteId, url: offsiteUrl, failover: true } } });
    expect((job.result as { warnings: string[] }).warnings[0]).toContain(`secondary repository ${offsiteId}`);
    expect(describeTree(path.join(target, src))).toEqual(withoutSetid(describeTree(src)));
  });

  it("shows live progress of a long backup, and cancels it", async () => {
    // A 1 GiB sparse file: seconds of reading and chunking, almost nothing stored.
    const bigSrc = path.join(tmp.dir, "big");
    mkdirSync(bigSrc);
    const fd = openSync(path.join(bigSrc, "zeros.img"), "w");
    writeSync(fd, Buffer.from("end"), 0, 3, 1024 * 1024 * 1024);
    closeSync(fd);
    const { id } = await ok<{ id: string }>("POST", "/v1/plans", { name: "big", repositoryId, source: { type: "files", paths: [bigSrc] } });
    const { jobId } = await ok<{ jobId: string }>("POST", `/v1/plans/${id}/run`);

    const live = await pollJob(jobId, (j) => j.status !== "running" || (j.phase === "snapshot" && j.progress.bytesDone > 0));
    expect(live.status, "the backup finished before any progress was seen").toBe("running");
    expect(live.progress.bytesDone).toBeLessThanOrEqual(live.progress.bytesTotal);
    expect(live.progress.bytesTotal).toBe(1024 * 1024 * 1024 + 3);
    expect(live.progress.bytesPerSecond).toBeGreaterThan(0);
    await listUntil(`status=running&planId=${id}`, (jobs) => jobs.some((j) => j.id === jobId));

    expect((await call("POST", `/v1/jobs/${jobId}/cancel`)).status).toBe(202);
    const cancelled = await pollJob(jobId, (j) => j.status !== "running");
    expect(cancelled.status).toBe("cancelled");
    const again = await call<{ detail: string }>("POST", `/v1/jobs/${jobId}/cancel`);
    expect(again.status).toBe(409);
    expect((await call("GET", "/v1/jobs/backup-nosuchplan-20250101T000000000Z")).status).toBe(404);
  });

  it("keeps one Temporal Schedule per plan in step with the plan", async () => {
    const { id } = await ok<{ id: string }>("POST", "/v1/plans", {
      name: "nightly",
      repositoryId,
      source: { type: "files", paths: [src] },
      schedule: { cron: "30 2 * * *", timezone: "Europe/Paris" },
      retention: { keepDaily: 7 },
    });
    const handle = client.schedule.getHandle(`plan-${id}`);
    let desc = await handle.describe();
    expect(desc.spec.timezone).toBe("Europe/Paris");
    expect(desc.spec.calendars?.[0]).toMatchObject({ hour: [{ start: 2, end: 2, step: 1 }], minute: [{ start: 30, end: 30, step: 1 }] });
    expect(desc.policies.overlap).toBe("SKIP");
    expect(desc.action).toMatchObject({ type: "startWorkflow", workflowType: "backupWorkflow", workflowId: `backup-${id}`, taskQueue: "cairn" });
    expect(desc.action.args?.[0]).toMatchObject({ planId: id, source: { paths: [src] }, retention: { keepDaily: 7 } });
    expect(JSON.stringify(desc.action.args)).not.toContain(PASSWORD);
    expect((desc.action.typedSearchAttributes as TypedSearchAttributes).get(SEARCH_ATTRIBUTE_KEYS.plan)).toBe(id);
    expect(desc.state.paused).toBe(false);

    expect(await ok("POST", `/v1/plans/${id}/pause`)).toMatchObject({ paused: true });
    expect((await handle.describe()).state.paused).toBe(true);
    expect(await ok("POST", `/v1/plans/${id}/resume`)).toMatchObject({ paused: false });
    expect((await handle.describe()).state.paused).toBe(false);

    await ok("PATCH", `/v1/plans/${id}`, { schedule: { cron: "0 4 * * MON", timezone: "UTC" } });
    desc = await handle.describe();
    expect(desc.spec.timezone).toBe("UTC");
    expect(desc.spec.calendars?.[0]).toMatchObject({ hour: [{ start: 4, end: 4, step: 1 }], dayOfWeek: [{ start: "MONDAY", end: "MONDAY", step: 1 }] });

    // Trigger takes the schedule's action now: a backup of this plan appears among the jobs.
    expect(await ok("POST", `/v1/plans/${id}/trigger`)).toEqual({ scheduleId: `plan-${id}` });
    const [triggered] = await listUntil(`planId=${id}`, (jobs) => jobs.length > 0);
    expect(triggered.id.startsWith(`backup-${id}-`)).toBe(true);
    expect((await pollJob(triggered.id, (j) => j.status !== "running")).status).toBe("completed");

    // Removing the schedule from the plan removes it from Temporal; so does deleting the plan.
    await ok("PATCH", `/v1/plans/${id}`, { schedule: null });
    await expect(handle.describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
    await ok("PATCH", `/v1/plans/${id}`, { schedule: { cron: "@daily", timezone: "UTC" } });
    expect((await handle.describe()).spec.timezone).toBe("UTC");
    expect((await call("DELETE", `/v1/plans/${id}`)).status).toBe(204);
    await expect(handle.describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
    expect((await call("GET", `/v1/plans/${id}`)).status).toBe(404);
  });
  it("keeps blackout windows and an overlap policy, lists the next runs, backfills a missed period and runs once at a given time", async () => {
    // A window over the next two whole hours (UTC, every day, past midnight when it comes to that): the hourly runs due then are left out.
    const first = (new Date().getUTCHours() + 1) % 24;
    const hh = (h: number) => `${String(h % 24).padStart(2, "0")}:00`;
    const blackouts = [{ from: hh(first), to: hh(first + 2) }];
    const { id } = await ok<{ id: string }>("POST", "/v1/plans", {
      name: "business-hours",
      repositoryId,
      source: { type: "files", paths: [src] },
      schedule: { cron: "0 * * * *", timezone: "UTC", overlap: "buffer_one", blackouts },
    });
    const handle = client.schedule.getHandle(`plan-${id}`);
    const desc = await handle.describe();
    expect(desc.policies.overlap).toBe("BUFFER_ONE");
    expect(desc.spec.skip?.length).toBeGreaterThan(0);

    // Temporal's own list of next runs, through the API: hourly, except in the window.
    const state = await ok<{ nextRuns: string[]; paused: boolean; recentRuns: unknown[] }>("GET", `/v1/plans/${id}/schedule`);
    expect(state.paused).toBe(false);
    expect(state.nextRuns.length).toBeGreaterThan(3);
    const hours = state.nextRuns.map((t) => new Date(t).getUTCHours());
    for (const t of state.nextRuns.map((r) => new Date(r))) expect(inBlackout(blackouts, WEEK[t.getUTCDay()], t.getUTCHours() * 60 + t.getUTCMinutes())).toBe(false);
    expect(hours).not.toContain(first);
    expect(hours).not.toContain((first + 1) % 24);
    expect(hours).toContain((first + 2) % 24);

    // Bad input says what to write, and changes nothing.
    const badWindow = await call<{ detail: string; errors: { path: string }[] }>("PATCH", `/v1/plans/${id}`, { schedule: { cron: "0 * * * *", timezone: "UTC", blackouts: [{ from: "8:00", to: "18:00" }] } });
    expect(badWindow.status).toBe(400);
    expect(JSON.stringify(badWindow.body)).toContain("HH:MM");
    expect((await handle.describe()).policies.overlap).toBe("BUFFER_ONE");
    expect((await call("POST", `/v1/plans/${id}/run`, { at: "2020-01-01T00:00:00Z" })).status).toBe(400);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect((await call("POST", `/v1/plans/${id}/backfill`, { from: new Date().toISOString(), to: future })).status).toBe(400);

    // Backfill of the past three hours with the default overlap (skip): one catch-up run, listed among the plan's jobs.
    const now = Date.now();
    expect(await ok("POST", `/v1/plans/${id}/backfill`, { from: new Date(now - 3 * 3_600_000).toISOString(), to: new Date(now - 60_000).toISOString() })).toEqual({ scheduleId: `plan-${id}` });
    const [caughtUp] = await listUntil(`planId=${id}`, (jobs) => jobs.length > 0);
    expect((await pollJob(caughtUp.id, (j) => j.status !== "running")).status).toBe("completed");

    // A one-time run at a given time: listed at once, and its work starts no earlier than asked.
    const at = new Date(Date.now() + 4000).toISOString();
    const { jobId } = await ok<{ jobId: string }>("POST", `/v1/plans/${id}/run`, { at });
    expect((await ok<Job>("GET", `/v1/jobs/${jobId}`)).status).toBe("running");
    expect((await pollJob(jobId, (j) => j.status !== "running")).status).toBe("completed");
    const history = await client.workflow.getHandle(jobId).fetchHistory();
    const firstTask = history.events!.find((e) => e.workflowTaskScheduledEventAttributes)!;
    const firstTaskMs = Number(firstTask.eventTime!.seconds) * 1000 + Math.floor((firstTask.eventTime!.nanos ?? 0) / 1e6);
    expect(firstTaskMs).toBeGreaterThanOrEqual(Date.parse(at) - 1000);
    expect((await call("DELETE", `/v1/plans/${id}`)).status).toBe(204);
  });
});

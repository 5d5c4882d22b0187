import { randomBytes } from "node:crypto";
import { existsSync, type FSWatcher, mkdirSync, readdirSync, readFileSync, rmSync, statSync, watch, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { Client } from "@temporalio/client";
import proto from "@temporalio/proto";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiServer } from "../api/server.js";
import { LocalBackend } from "../backends/local.js";
import { Archiver } from "../engine/archiver.js";
import { RepositoryLock } from "../engine/locks.js";
import { Repository } from "../engine/repository.js";
import { apiClient, type Job } from "./api-client.js";
import { cairnOk, PASSWORD, tempDir } from "./helpers.js";
import { testPolicy } from "./policy-fixtures.js";
import { startSshd, type Sshd } from "./servers.js";
import { startStack, type Stack } from "./stack.js";

/** Files in the big repository: one small pack each, so a check or prune has many steps to stop between. */
const FILES = 5000;

/**
 * Maintenance jobs through the API on a real Temporal dev server and worker:
 * check, verify, prune and copy started as jobs, and a cancelled check or
 * prune that stops mid-way and leaves a repository `cairn check` passes; and a
 * repository's concurrency limit that makes a second job wait for a slot.
 */
describe("maintenance jobs (Temporal dev server + worker + API)", () => {
  const tmp = tempDir("cairn-maintenance-e2e-");
  const dataDir = path.join(tmp.dir, "data");
  const src = path.join(tmp.dir, "src");
  const bigRepo = path.join(tmp.dir, "big");
  let stack: Stack;
  let api: ApiServer;
  let client: ReturnType<typeof apiClient>;
  let bigId: string;
  /** The same big repository, registered a second time as reached over SFTP from the test's own OpenSSH server. */
  let bigOverSshId: string;
  let sshd: Sshd;
  let temporalClient: Client;

  const packs = () => readdirSync(path.join(bigRepo, "data")).flatMap((d) => readdirSync(path.join(bigRepo, "data", d)));
  const packBytes = () => readdirSync(path.join(bigRepo, "data")).reduce((sum, d) => sum + readdirSync(path.join(bigRepo, "data", d)).reduce((s, p) => s + statSync(path.join(bigRepo, "data", d, p)).size, 0), 0);
  const finished = (jobId: string) => client.pollJob(jobId, (j) => j.status !== "running");
  /** The listening sshd and every process under it (one per connection), found through /proc. */
  const sshdProcesses = (): number[] => {
    const parents = new Map<number, number>();
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        // The command name is in parentheses and may hold spaces: the fields after it are counted from its end.
        const stat = readFileSync(`/proc/${name}/stat`, "utf8");
        parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
      } catch {
        // gone meanwhile
      }
    }
    const found = [sshd.pid];
    for (let i = 0; i < found.length; i++) for (const [pid, ppid] of parents) if (ppid === found[i] && !found.includes(pid)) found.push(pid);
    return found;
  };
  const signalSshd = (signal: "SIGSTOP" | "SIGCONT") => {
    for (const pid of sshdProcesses()) {
      try {
        process.kill(pid, signal);
      } catch {
        // a connection's process that ended meanwhile
      }
    }
  };

  /**
   * Cancels a job of the big repository while its step is held in its work, whatever the machine's speed:
   * the repository is reached over SFTP, and the test's SSH server is frozen (SIGSTOP) before the job
   * starts, so the step blocks on its first read of the repository. Once Temporal shows the step running,
   * the test cancels the job, waits until the job says the worker has the cancellation in hand, and only
   * then lets the server go on (SIGCONT): the step must stop at its next safe point.
   */
  const cancelWhileHeld = async (start: () => Promise<string>): Promise<Job> => {
    signalSshd("SIGSTOP");
    try {
      const jobId = await start();
      const handle = temporalClient.workflow.getHandle(jobId);
      // A busy machine may take a while to hand the step to the worker: wait for it, for minutes if need be.
      for (const deadline = Date.now() + 300_000; ; ) {
        const pending = (await handle.describe()).raw.pendingActivities ?? [];
        if (pending.some((a) => a.state === proto.temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED)) break;
        if (Date.now() > deadline) throw new Error(`job ${jobId}'s step never started: ${JSON.stringify(await client.ok("GET", `/v1/jobs/${jobId}`))}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect((await client.call("POST", `/v1/jobs/${jobId}/cancel`)).status).toBe(202);
      const heard = await client.pollJob(jobId, (j) => j.status !== "running" || j.progress.stopping === true);
      expect(heard, JSON.stringify(heard)).toMatchObject({ status: "running", progress: { stopping: true } });
      const logs = await client.ok<{ lines: { message: string }[] }>("GET", `/v1/jobs/${jobId}/logs`);
      expect(logs.lines.map((l) => l.message)).toContain("the worker received the cancellation: the step stops at its next safe point");
      signalSshd("SIGCONT");
      return await finished(jobId);
    } finally {
      signalSshd("SIGCONT");
    }
  };

  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger("WARN") });
    for (let d = 0; d < FILES / 100; d++) {
      mkdirSync(path.join(src, `d${d}`), { recursive: true });
      for (let i = 0; i < 100; i++) writeFileSync(path.join(src, `d${d}`, `f${i}`), randomBytes(1024));
    }
    // Tiny packs (compression off, two files each): thousands of packs in a few megabytes.
    const backend = new LocalBackend(bigRepo, { fsync: false });
    const repo = await Repository.init(backend, PASSWORD, { kdf: { name: "scrypt", N: 1024, r: 8, p: 1 }, threads: 1, packSize: 2048, compression: "none" });
    await new Archiver(repo, { host: "box" }).backup([src]);
    // The second snapshot lacks every other file: once the first is forgotten each pack is half used.
    for (let d = 0; d < FILES / 100; d++) for (let i = 0; i < 100; i += 2) rmSync(path.join(src, `d${d}`, `f${i}`));
    await new Archiver(repo, { host: "box" }).backup([src]);
    await repo.close();

    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, api: { historyIntervalMs: 300 } });
    api = stack.api;
    temporalClient = stack.client;
    client = apiClient(api);
    bigId = (await client.ok<{ id: string; created: boolean }>("POST", "/v1/repositories", { name: "big", url: bigRepo, password: PASSWORD })).id;
    sshd = await startSshd();
    bigOverSshId = (
      await client.ok<{ id: string }>("POST", "/v1/repositories", {
        name: "big-over-ssh",
        url: `sftp:${sshd.username}@127.0.0.1:${sshd.port}${bigRepo}`,
        password: PASSWORD,
        credentials: { CAIRN_SFTP_KEY: sshd.clientKey, CAIRN_SFTP_KNOWN_HOSTS: sshd.knownHostsFile },
      })
    ).id;
  }, 600_000);

  afterAll(async () => {
    await sshd?.stop();
    await stack?.close();
    tmp.cleanup();
  }, 600_000);

  // Where exactly a check or prune stops (between packs, fewer read than all) is proven in engine/cancel.test.ts;
  // here the whole path is: the API's cancel reaches the step on the worker, which stops, releases the lock and
  // ends the job as cancelled, with the repository as it was.
  it("a cancelled check job ends as cancelled and leaves a repository that checks clean", async () => {
    const job = await cancelWhileHeld(async () => {
      const { jobId } = await client.ok<{ jobId: string }>("POST", `/v1/repositories/${bigOverSshId}/check`, { readData: true });
      expect(jobId).toMatch(new RegExp(`^check-${bigOverSshId}-`));
      return jobId;
    });
    expect(job, JSON.stringify(job)).toMatchObject({ status: "cancelled", kind: "check" });
    expect((job as Job & { steps?: { name: string; outcome: string }[] }).steps?.map((s) => [s.name, s.outcome])).toEqual([["check", "cancelled"]]);
    await cairnOk(["check", "-r", bigRepo]);
  }, 300_000);

  it("a cancelled prune stops before deleting anything and leaves a repository that checks clean; a prune let run repacks", async () => {
    await cairnOk(["forget", "-r", bigRepo, "--keep-last", "1"]);
    const before = packs();
    const bytesBefore = packBytes();
    const job = await cancelWhileHeld(async () => (await client.ok<{ jobId: string }>("POST", `/v1/repositories/${bigOverSshId}/prune`, { maxUnused: "0%" })).jobId);
    expect(job, JSON.stringify(job)).toMatchObject({ status: "cancelled", kind: "prune" });
    const after = new Set(packs());
    expect(before.filter((p) => !after.has(p))).toEqual([]);
    await cairnOk(["check", "-r", bigRepo]);

    const full = await finished((await client.ok<{ jobId: string }>("POST", `/v1/repositories/${bigId}/prune`, { maxUnused: "0%" })).jobId);
    expect(full, JSON.stringify(full)).toMatchObject({ status: "completed", kind: "prune" });
    // Half of the file data was forgotten: how it is freed (packs repacked, or deleted whole) depends on how the
    // backup laid blobs into packs and on how far the cancelled prune got, but the repository must shrink by it.
    const { packsRepacked, packsDeleted } = full.result as { packsRepacked: number; packsDeleted: number };
    expect(packsRepacked + packsDeleted).toBeGreaterThan(0);
    expect(packBytes()).toBeLessThan(bytesBefore * 0.75);
    await cairnOk(["check", "-r", bigRepo, "--read-data"]);
  }, 600_000);

  it("a prune cancelled once it deletes finishes deleting and ends completed, its log saying the cancellation came too late", async () => {
    // A repository whose only snapshot of many small files (two to a pack) is forgotten for an empty one: a prune deletes those packs whole.
    const lateRepo = path.join(tmp.dir, "late");
    const lateSrc = path.join(tmp.dir, "late-src");
    for (let d = 0; d < 20; d++) {
      mkdirSync(path.join(lateSrc, `d${d}`), { recursive: true });
      for (let i = 0; i < 100; i++) writeFileSync(path.join(lateSrc, `d${d}`, `f${i}`), randomBytes(1024));
    }
    const repo = await Repository.init(new LocalBackend(lateRepo, { fsync: false }), PASSWORD, { kdf: { name: "scrypt", N: 1024, r: 8, p: 1 }, threads: 1, packSize: 2048, compression: "none" });
    await new Archiver(repo, { host: "box" }).backup([lateSrc]);
    rmSync(lateSrc, { recursive: true });
    mkdirSync(lateSrc);
    await new Archiver(repo, { host: "box" }).backup([lateSrc]);
    await repo.close();
    await cairnOk(["forget", "-r", lateRepo, "--keep-last", "1"]);
    const { id: lateId } = await client.ok<{ id: string }>("POST", "/v1/repositories", {
      name: "late-over-ssh",
      url: `sftp:${sshd.username}@127.0.0.1:${sshd.port}${lateRepo}`,
      password: PASSWORD,
      credentials: { CAIRN_SFTP_KEY: sshd.clientKey, CAIRN_SFTP_KNOWN_HOSTS: sshd.knownHostsFile },
    });
    const dataDir = path.join(lateRepo, "data");
    const packsOf = () => readdirSync(dataDir).flatMap((d) => readdirSync(path.join(dataDir, d)).map((p) => path.join(d, p)));
    const before = new Set(packsOf());

    // The SSH server is frozen as soon as the first pack disappears: the prune has written its new index by then
    // (it deletes nothing before), and hundreds of deletes are still to come.
    let watcher: FSWatcher | undefined;
    const deleting = new Promise<void>((resolve) => {
      watcher = watch(dataDir, { recursive: true }, (_event, name) => {
        if (!name || !before.has(name) || existsSync(path.join(dataDir, name))) return;
        signalSshd("SIGSTOP");
        watcher!.close();
        resolve();
      });
    });
    let job: Job;
    try {
      const { jobId } = await client.ok<{ jobId: string }>("POST", `/v1/repositories/${lateId}/prune`, {});
      await deleting;
      expect((await client.call("POST", `/v1/jobs/${jobId}/cancel`)).status).toBe(202);
      // The job's log (read from Temporal's history, no worker needed) says when the step has the cancellation in hand.
      for (const deadline = Date.now() + 300_000; ; ) {
        const logs = await client.ok<{ lines: { message: string }[] }>("GET", `/v1/jobs/${jobId}/logs`);
        if (logs.lines.some((l) => l.message === "the worker received the cancellation: the step stops at its next safe point")) break;
        if (Date.now() > deadline) throw new Error(`job ${jobId}'s step never heard the cancellation: ${JSON.stringify(logs)}`);
        await new Promise((r) => setTimeout(r, 500));
      }
      expect(packsOf().length).toBeGreaterThan(before.size / 2);
      signalSshd("SIGCONT");
      job = await finished(jobId);
    } finally {
      watcher?.close();
      signalSshd("SIGCONT");
    }
    // The repository was pruned: the job says so rather than "cancelled", and its log says why the cancellation did not stop it.
    expect(job, JSON.stringify(job)).toMatchObject({ status: "completed", kind: "prune" });
    expect((job.result as { packsDeleted: number }).packsDeleted).toBeGreaterThan(before.size / 2);
    expect(packsOf().length).toBeLessThan(before.size / 2);
    const tooLate = expect.stringMatching(/^the cancellation came too late: the prune had written its new index/);
    expect((job as Job & { warnings: string[] }).warnings).toEqual([tooLate]);
    const { lines } = await client.ok<{ lines: { level: string; message: string }[] }>("GET", `/v1/jobs/${job.id}/logs`);
    expect(lines.filter((l) => l.level === "warn").map((l) => l.message)).toContainEqual(tooLate);
    await cairnOk(["check", "-r", lateRepo, "--read-data"]);
  }, 900_000);

  it("checks a share of the data, verifies a snapshot and copies it into another repository, each a job listed with its kind", async () => {
    const check = await finished((await client.ok<{ jobId: string }>("POST", `/v1/repositories/${bigId}/check`, { readDataSubset: "1/5" })).jobId);
    expect(check, JSON.stringify(check)).toMatchObject({ status: "completed", kind: "check", result: { errors: [] } });
    const read = (check.result as { packsRead: number }).packsRead;
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThan(packs().length / 4);

    const verify = await finished((await client.ok<{ jobId: string }>("POST", `/v1/repositories/${bigId}/verify`, { snapshotId: "latest", samplePercent: 10 })).jobId);
    expect(verify, JSON.stringify(verify)).toMatchObject({ status: "completed", kind: "verify", result: { errors: [] } });

    const { id: copyId } = await client.ok<{ id: string }>("POST", "/v1/repositories", { name: "copies", url: path.join(tmp.dir, "copies"), password: "another password" });
    const copy = await finished((await client.ok<{ jobId: string }>("POST", `/v1/repositories/${bigId}/copy`, { snapshotId: "latest", toRepositoryId: copyId })).jobId);
    expect(copy, JSON.stringify(copy)).toMatchObject({ status: "completed", kind: "copy", result: { copied: true } });
    const copied = await client.ok<{ snapshots: { id: string }[] }>("GET", `/v1/snapshots?repositoryId=${copyId}`);
    expect(copied.snapshots.map((s) => s.id)).toEqual([(copy.result as { copiedSnapshotId: string }).copiedSnapshotId]);

    const same = await client.call<{ detail: string }>("POST", `/v1/repositories/${bigId}/copy`, { snapshotId: "latest", toRepositoryId: bigId });
    expect(same.status).toBe(422);
    const { token } = await client.ok<{ token: string }>("POST", "/v1/tokens", { name: "watcher", role: "viewer" });
    expect((await apiClient(api, token).call("POST", `/v1/repositories/${bigId}/prune`, {})).status).toBe(403);

    for (const kind of ["check", "verify", "prune", "copy"]) {
      const jobs = await client.listUntil(`kind=${kind}`, (list) => list.length > 0);
      expect(jobs.every((j) => j.kind === kind)).toBe(true);
    }
  }, 300_000);

  it("with maxConcurrentJobs 1, a second job on the repository waits for a slot, visibly, and runs once the first is done", async () => {
    const limitedRepo = path.join(tmp.dir, "limited");
    const { id: limitedId } = await client.ok<{ id: string }>("POST", "/v1/repositories", { name: "limited", url: limitedRepo, password: PASSWORD, maxConcurrentJobs: 1 });
    expect(await client.ok("GET", `/v1/repositories/${limitedId}`)).toMatchObject({ maxConcurrentJobs: 1 });
    const small = path.join(tmp.dir, "small");
    mkdirSync(small);
    writeFileSync(path.join(small, "a.txt"), "a small file");
    const { id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", { name: "small", repositoryId: limitedId, source: { type: "files", paths: [small] } });

    // The first job takes the slot, then waits for the repository's lock, which this test holds.
    const repo = await Repository.open(new LocalBackend(limitedRepo, { fsync: false }), PASSWORD, { threads: 0 });
    const lock = await RepositoryLock.acquire(repo, { exclusive: false, operation: "test holding the repository" });
    let first: string;
    let second: string;
    try {
      first = (await client.ok<{ jobId: string }>("POST", `/v1/repositories/${limitedId}/prune`, {})).jobId;
      await client.pollJob(first, (j) => j.phase === "prune");
      second = (await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`)).jobId;
      const waiting = await client.pollJob(second, (j) => j.phase === "waiting" || j.status !== "running");
      expect(waiting, JSON.stringify(waiting)).toMatchObject({ status: "running", phase: "waiting" });
      expect((waiting as Job & { waitingFor?: string }).waitingFor).toContain(limitedId);
      const queue = await client.ok<{ pending: number; waitingForSlot: number }>("GET", "/v1/queue");
      expect(queue.waitingForSlot).toBe(1);
      expect(queue.pending).toBeGreaterThanOrEqual(1);
      expect((await client.ok<Job>("GET", `/v1/jobs/${first}`)).status).toBe("running");
    } finally {
      await lock.release();
      await repo.close();
    }
    const a = await finished(first!);
    const b = await finished(second!);
    expect(a.status, JSON.stringify(a)).toBe("completed");
    expect(b.status, JSON.stringify(b)).toBe("completed");
    // The backup's first step was scheduled only after the prune's step had ended.
    type Steps = Job & { steps: { name: string; startedAt: string; finishedAt: string }[] };
    const pruned = (a as Steps).steps.find((s) => s.name === "prune")!;
    const prepared = (b as Steps).steps.find((s) => s.name === "prepare")!;
    expect(Date.parse(prepared.startedAt)).toBeGreaterThanOrEqual(Date.parse(pruned.finishedAt));
    expect((await client.ok<{ lines: { message: string }[] }>("GET", `/v1/jobs/${second!}/logs`)).lines.map((l) => l.message)).toContain(`got a slot of cairn-slots-repository-${limitedId}`);
  }, 300_000);
});

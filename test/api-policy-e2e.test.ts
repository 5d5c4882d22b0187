import { randomBytes } from "node:crypto";
import diagnostics from "node:diagnostics_channel";
import { chmodSync, chownSync, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import * as path from "node:path";
import { type Client, WorkflowFailedError } from "@temporalio/client";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiServer } from "../api/server.js";
import { loadSecretBox } from "../engine/secret-box.js";
import { loadPolicy } from "../policy/policy.js";
import { PERMANENT_FAILURES, TASK_QUEUE, WORKFLOW_TYPES, type BackupInput, type RestoreResult } from "../workflows/messages.js";
import { apiClient, type Job } from "./api-client.js";
import { PASSWORD, cairnOk, tempDir } from "./helpers.js";
import { startStack, type Stack } from "./stack.js";
import { digestTree } from "./tree-fixtures.js";

interface Problem {
  title: string;
  status: number;
  detail: string;
  errors?: { in: string; path: string; message: string }[];
}

/**
 * The execution policy as a deployment meets it: the API and a worker (over a
 * Temporal dev server) share a policy that allows backing up `allowed/`,
 * restoring into `restores/` and keeping repositories in `repos/`, with the
 * worker's data directory (secret key, catalog) inside the allowed root.
 * Everything else is refused with a 403 that names the rule, and
 * a workflow started in Temporal by hand is refused by the worker too.
 */
describe("execution policy (API + Temporal dev server + worker)", () => {
  const tmp = tempDir("cairn-policy-e2e-");
  const at = (...p: string[]) => path.join(tmp.dir, ...p);
  const allowed = at("allowed");
  const restores = at("restores");
  const repos = at("repos");
  const outside = at("outside");
  const dataDir = path.join(allowed, ".cairn");
  const sentinel = `sentinel-${randomBytes(16).toString("hex")}`;
  const policyEnv = { CAIRN_SOURCE_ROOTS: allowed, CAIRN_RESTORE_ROOTS: restores, CAIRN_REPOSITORY_ROOTS: repos };
  const policy = loadPolicy({ env: policyEnv, dataDir });
  let stack: Stack;
  let api: ApiServer;
  let client: Client;
  let http: ReturnType<typeof apiClient>;
  let repositoryId: string;
  const repo = path.join(repos, "main");

  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger("WARN") });
    for (const dir of [allowed, restores, repos, outside]) mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(outside, "sentinel.txt"), sentinel);
    stack = await startStack({ policy, dataDir });
    api = stack.api;
    http = apiClient(api);
    client = stack.client;
    ({ id: repositoryId } = await http.ok<{ id: string }>("POST", "/v1/repositories", { name: "main", url: repo, password: PASSWORD }));
  });

  afterAll(async () => {
    await stack?.close();
    tmp.cleanup();
  });

  async function refused(method: string, url: string, body: unknown, field: string): Promise<Problem> {
    const res = await http.call<Problem>(method, url, body);
    expect(res.status, JSON.stringify(res.body)).toBe(403);
    expect(res.body.title).toBe("Refused by the execution policy");
    expect(res.body.errors?.map((e) => e.path)).toEqual([field]);
    return res.body;
  }

  /** Every file of every snapshot in the repository, restored with the CLI and read back as text. */
  async function everythingStored(): Promise<string> {
    const snapshots = JSON.parse((await cairnOk(["-r", repo, "snapshots", "--json"])).stdout) as { id: string }[];
    const texts: string[] = [];
    for (const { id } of snapshots) {
      const target = at("scan", id);
      await cairnOk(["-r", repo, "restore", id, "--target", target]);
      const walk = (dir: string) => {
        for (const e of readdirSync(dir, { withFileTypes: true })) {
          const full = path.join(dir, e.name);
          if (e.isDirectory()) walk(full);
          else if (e.isFile()) texts.push(readFileSync(full, "latin1"));
        }
      };
      walk(target);
    }
    return texts.join("\n");
  }

  it("refuses plan sources outside the roots, through .. and links, and the worker's own secrets, naming the rule", async () => {
    symlinkSync(outside, path.join(allowed, "escape"));
    const plan = (paths: string[]) => ({ name: `p-${randomBytes(3).toString("hex")}`, repositoryId, source: { type: "files", paths } });

    const etc = await refused("POST", "/v1/plans", plan(["/etc"]), "source.paths.0");
    expect(etc.detail).toBe(`source /etc is outside the allowed source roots (CAIRN_SOURCE_ROOTS=${allowed}); add it there to allow it`);
    await refused("POST", "/v1/plans", plan(["/root"]), "source.paths.0");
    await refused("POST", "/v1/plans", plan([allowed, `${allowed}/../outside`]), "source.paths.1");
    const key = await refused("POST", "/v1/plans", plan([path.join(dataDir, "secret.key")]), "source.paths.0");
    expect(key.detail).toMatch(/which no plan may read whatever the policy says/);
    // Links are followed on a worker: as written the path is inside the root, really it is not.
    const link = await refused("POST", "/v1/plans", plan([path.join(allowed, "escape")]), "source.paths.0");
    expect(link.detail).toMatch(new RegExp(`really ${outside}\\) is outside the allowed source roots`));
    await refused("POST", "/v1/plans", plan([path.join(allowed, "escape", "sentinel.txt")]), "source.paths.0");

    const { id } = await http.ok<{ id: string }>("POST", "/v1/plans", plan([path.join(allowed, "www")]));
    await refused("PATCH", `/v1/plans/${id}`, { source: { type: "files", paths: [path.join(allowed, "escape")] } }, "source.paths.0");
    const { plans } = await http.ok<{ plans: { id: string; source: { paths: string[] } }[] }>("GET", "/v1/plans");
    expect(plans.map((p) => p.source.paths)).toEqual([[path.join(allowed, "www")]]);
  });

  it("a backup started in Temporal by hand is refused by the worker before it reads anything", async () => {
    const box = await loadSecretBox(dataDir);
    for (const source of [outside, path.join(allowed, "escape")]) {
      const input: BackupInput = { planId: "by-hand", planName: "by hand", repository: { id: repositoryId, url: repo, sealedPassword: box.seal(PASSWORD) }, source: { type: "files", paths: [source] } };
      const err = await client.workflow.execute(WORKFLOW_TYPES.backup, { taskQueue: TASK_QUEUE, workflowId: `by-hand-${randomBytes(4).toString("hex")}`, args: [input] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const cause = (err as WorkflowFailedError).cause?.cause as { type?: string; message?: string };
      expect(cause.type).toBe(PERMANENT_FAILURES.policyRefused);
      expect(cause.message).toMatch(/outside the allowed source roots/);
    }
    expect(JSON.parse((await cairnOk(["-r", repo, "snapshots", "--json"])).stdout)).toEqual([]);
  });

  it("backs up a root holding a link out, a hard link to the secret key and the data directory, and stores none of them", async () => {
    const www = path.join(allowed, "www");
    mkdirSync(www);
    writeFileSync(path.join(www, "index.html"), "<h1>hello</h1>\n");
    symlinkSync(path.join(outside, "sentinel.txt"), path.join(www, "link-out"));
    linkSync(path.join(dataDir, "secret.key"), path.join(www, "key-twin"));
    const { id: planId } = await http.ok<{ id: string }>("POST", "/v1/plans", { name: "whole-root", repositoryId, source: { type: "files", paths: [allowed] } });
    const { jobId } = await http.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    const job = await http.pollJob(jobId, (j) => j.status !== "running");
    expect(job, JSON.stringify(job)).toMatchObject({ status: "completed" });
    const warnings = (job.result as { warnings: string[] }).warnings;
    expect(warnings).toEqual(
      expect.arrayContaining([
        expect.stringMatching(new RegExp(`cannot read ${dataDir}: refused by the execution policy`)),
        expect.stringMatching(/key-twin: refused by the execution policy: it is the platform secret key .* under another name/),
      ]),
    );

    const listing = (await cairnOk(["-r", repo, "ls", "latest"])).stdout;
    expect(listing).toContain("link-out");
    expect(listing).toContain("index.html");
    expect(listing).not.toContain(".cairn");
    expect(listing).not.toContain("key-twin");
    const stored = await everythingStored();
    expect(stored).toContain("<h1>hello</h1>");
    expect(stored).not.toContain(sentinel);
    expect(stored).not.toContain(readFileSync(path.join(dataDir, "secret.key"), "latin1").trim());
  });

  it("refuses restore targets outside the restore roots and links out of them, and writes nothing there", async () => {
    const before = digestTree(outside);
    symlinkSync(outside, path.join(restores, "escape"));
    const restore = (target: string) => ({ repositoryId, snapshotId: "latest", target });
    const cron = await refused("POST", "/v1/restores", restore("/etc/cron.d"), "target");
    expect(cron.detail).toBe(`restore target /etc/cron.d is outside the allowed restore roots (CAIRN_RESTORE_ROOTS=${restores}); restore under one of them, or add the directory there`);
    await refused("POST", "/v1/restores", restore(path.join(allowed, "www")), "target");
    await refused("POST", "/v1/restores", restore(`${restores}/../outside`), "target");
    const link = await refused("POST", "/v1/restores", restore(path.join(restores, "escape", "x")), "target");
    expect(link.detail).toMatch(new RegExp(`really ${outside}/x\\) is outside the allowed restore roots`));
    expect(digestTree(outside)).toEqual(before);
    expect(readdirSync(outside)).toEqual(["sentinel.txt"]);
  });

  describe("destinations", () => {
    let listener: Server;
    let port: number;
    const accepted: Socket[] = [];
    /** Every outgoing connection this process starts (the API and the worker run here), by address and port. */
    const attempts: string[] = [];
    const onSocket = (message: unknown) => (message as { socket: Socket }).socket.on("connectionAttempt", (ip: string, p: number) => attempts.push(`${ip}:${p}`));

    beforeAll(async () => {
      listener = createServer((s) => accepted.push(s.destroy()));
      await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
      port = (listener.address() as { port: number }).port;
      diagnostics.subscribe("net.client.socket", onSocket);
    });
    afterAll(async () => {
      diagnostics.unsubscribe("net.client.socket", onSocket);
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    });

    it("refuses metadata, link-local, private and loopback addresses before any connection is opened", async () => {
      const cases: [string, RegExp][] = [
        ["s3:http://169.254.169.254/bucket/repo", /169\.254\.169\.254 is a cloud metadata address/],
        ["s3:http://[fd00:ec2::254]/bucket/repo", /fd00:ec2::254 is a cloud metadata address/],
        ["s3:http://169.254.10.20:9000/bucket/repo", /a link-local address/],
        ["sftp:backup@10.20.30.40:22/srv/repo", /10\.20\.30\.40 is a private network address, refused .*CAIRN_ALLOW_PRIVATE_NETWORKS=true/],
        [`s3:http://127.0.0.1:${port}/bucket/repo`, /127\.0\.0\.1 is a loopback address, refused .*CAIRN_ALLOW_LOOPBACK=true/],
        [`s3:http://localhost:${port}/bucket/repo`, /destination localhost \((127\.0\.0\.1|::1)\) is a loopback address/],
        [`sftp://backup@localhost:${port}/srv/repo`, /destination localhost \((127\.0\.0\.1|::1)\) is a loopback address/],
        ["/etc/cron.d", /local repository \/etc\/cron\.d is outside the allowed repository roots/],
      ];
      for (const [url, message] of cases) {
        const body = await refused("POST", "/v1/repositories", { name: `r-${randomBytes(3).toString("hex")}`, url, password: PASSWORD, credentials: url.startsWith("s3:") ? { AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "b" } : undefined }, "url");
        expect(body.detail, url).toMatch(message);
      }
      const { repositories } = await http.ok<{ repositories: unknown[] }>("GET", "/v1/repositories");
      expect(repositories).toHaveLength(1);
      expect(accepted).toHaveLength(0);
      const apiPort = new URL(api.url).port;
      expect(attempts.filter((a) => !a.endsWith(`:${apiPort}`))).toEqual([]);
    });

    it("a workflow started in Temporal by hand with such a repository is refused by the worker, which connects nowhere", async () => {
      const box = await loadSecretBox(dataDir);
      mkdirSync(path.join(allowed, "docs"), { recursive: true });
      for (const url of [`s3:http://localhost:${port}/bucket/repo`, "s3:http://169.254.169.254/bucket/repo", "/etc/cron.d"]) {
        const credentials = url.startsWith("s3:") ? { sealedCredentials: box.seal(JSON.stringify({ AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "b" })) } : {};
        const input: BackupInput = {
          planId: "by-hand",
          planName: "by hand",
          repository: { id: "r", url, sealedPassword: box.seal(PASSWORD), ...credentials },
          source: { type: "files", paths: [path.join(allowed, "docs")] },
        };
        const err = await client.workflow.execute(WORKFLOW_TYPES.backup, { taskQueue: TASK_QUEUE, workflowId: `by-hand-${randomBytes(4).toString("hex")}`, args: [input] }).catch((e: unknown) => e);
        const cause = (err as WorkflowFailedError).cause?.cause as { type?: string; message?: string };
        expect(cause.type, url).toBe(PERMANENT_FAILURES.policyRefused);
      }
      expect(accepted).toHaveLength(0);
      expect(existsSync("/etc/cron.d/config")).toBe(false);
    });
  });

  it("a restore into a non-empty directory needs an overwrite mode, takes a safety snapshot first, and that snapshot restores the original bytes", async () => {
    // What the plan backs up: new content, a setuid program owned by someone else, and a link out of the tree.
    const site = path.join(allowed, "site");
    mkdirSync(path.join(site, "sub"), { recursive: true });
    writeFileSync(path.join(site, "index.html"), "new version\n");
    writeFileSync(path.join(site, "sub", "data.bin"), randomBytes(300_000));
    writeFileSync(path.join(site, "tool"), "#!/bin/sh\n");
    chmodSync(path.join(site, "tool"), 0o4755);
    chownSync(path.join(site, "tool"), 1234, 1234);
    const victim = path.join(outside, "sentinel.txt");
    chmodSync(victim, 0o600);
    const victimBefore = statSync(victim);
    symlinkSync(victim, path.join(site, "link-out"));
    const { id: planId } = await http.ok<{ id: string }>("POST", "/v1/plans", { name: "site", repositoryId, source: { type: "files", paths: [site] } });
    const backup = await http.pollJob((await http.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`)).jobId, (j) => j.status !== "running");
    expect(backup.status).toBe("completed");

    // What the target holds now, in no snapshot: the original.
    const target = path.join(restores, "site");
    mkdirSync(path.join(target, "sub"), { recursive: true });
    writeFileSync(path.join(target, "index.html"), "the original\n");
    writeFileSync(path.join(target, "sub", "data.bin"), randomBytes(200_000));
    writeFileSync(path.join(target, "tool"), "the original tool\n");
    writeFileSync(path.join(target, "link-out"), "the original link-out\n");
    const original = digestTree(target);

    const request = { repositoryId, snapshotId: backup.snapshotId, path: site, target };
    const busy = await http.call<Problem>("POST", "/v1/restores", request);
    expect(busy.status).toBe(409);
    expect(busy.body).toMatchObject({ title: "Target not empty", errors: [{ path: "overwrite" }] });
    expect(digestTree(target)).toEqual(original);

    const overwrite = await http.ok<{ jobId: string }>("POST", "/v1/restores", { ...request, overwrite: "always" });
    const done = await http.pollJob(overwrite.jobId, (j) => j.status !== "running");
    expect(done, JSON.stringify(done)).toMatchObject({ status: "completed" });
    const safety = (done.result as unknown as RestoreResult).safetySnapshot!;
    expect(safety).toMatchObject({ repositoryId, path: target });
    expect(readFileSync(path.join(target, "index.html"), "utf8")).toBe("new version\n");
    expect(readFileSync(path.join(target, "sub", "data.bin"))).toEqual(readFileSync(path.join(site, "sub", "data.bin")));
    // The default policy gives neither owners nor setuid bits; the link is data, its target untouched.
    const tool = lstatSync(path.join(target, "tool"));
    expect(tool.mode & 0o7777).toBe(0o755);
    expect(tool.uid).toBe(process.getuid!());
    expect(readlinkSync(path.join(target, "link-out"))).toBe(victim);
    const victimAfter = statSync(victim);
    expect([victimAfter.mode, victimAfter.mtimeMs, victimAfter.uid]).toEqual([victimBefore.mode, victimBefore.mtimeMs, victimBefore.uid]);
    expect(readFileSync(victim, "utf8")).toBe(sentinel);

    const back = await http.ok<{ jobId: string }>("POST", "/v1/restores", { repositoryId, snapshotId: safety.snapshotId, path: safety.path, target, overwrite: "always" });
    const undone: Job = await http.pollJob(back.jobId, (j) => j.status !== "running");
    expect(undone, JSON.stringify(undone)).toMatchObject({ status: "completed" });
    expect(digestTree(target)).toEqual(original);
  });
});

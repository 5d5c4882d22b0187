import { randomBytes } from "node:crypto";
import * as http_ from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import type { Client } from "@temporalio/client";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiClient } from "./api-client.js";
import { PASSWORD, tempDir } from "./helpers.js";
import { startMinio, type TestServer } from "./servers.js";
import { startStack, type Stack } from "./stack.js";
import { describeTree, makeOddTree, withoutSetid } from "./tree-fixtures.js";
import { testPolicy } from "./policy-fixtures.js";

/**
 * An s3: repository whose credentials exist only in the API's catalog: neither the
 * API nor the worker has any AWS_* variable, so every step that reaches MinIO
 * proves the sealed credentials travelled with the job.
 */
describe("repository credentials through the API (Temporal dev server + worker + MinIO)", () => {
  const tmp = tempDir("cairn-credentials-e2e-");
  const dataDir = path.join(tmp.dir, "data");
  const src = path.join(tmp.dir, "src");
  const ambient = Object.entries(process.env).filter(([name]) => name.startsWith("AWS_"));
  let minio: TestServer & { endpoint: string; accessKeyId: string; secretAccessKey: string };
  let stack: Stack;
  let client: Client;
  let http: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    for (const [name] of ambient) delete process.env[name];
    Runtime.install({ logger: new DefaultLogger("WARN") });
    makeOddTree(src);
    minio = await startMinio();
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir });
    client = stack.client;
    http = apiClient(stack.api);
  });

  afterAll(async () => {
    await stack?.close();
    await minio?.stop();
    for (const [name, value] of ambient) process.env[name] = value;
    tmp.cleanup();
  });

  /** Every payload of a job's workflow history (inputs, activity arguments and results), decoded to text. */
  async function historyText(jobId: string): Promise<string> {
    const history = await client.workflow.getHandle(jobId).fetchHistory();
    const payloads: string[] = [];
    const walk = (value: unknown): void => {
      if (value instanceof Uint8Array) payloads.push(Buffer.from(value).toString("utf8"));
      else if (value && typeof value === "object") Object.values(value).forEach(walk);
    };
    walk(history);
    return payloads.join("\n");
  }

  it("backs up to and restores from an s3: repository with stored credentials, which no history holds in clear", async () => {
    const bucket = (name: string) => `s3:${minio.endpoint}/cairn-${name}-${randomBytes(4).toString("hex")}/repo`;
    // Without them the API cannot reach MinIO: nothing in this process supplies credentials.
    const bare = await http.call<{ detail: string }>("POST", "/v1/repositories", { name: "bare", url: bucket("bare"), password: PASSWORD });
    expect(bare.status).toBe(422);
    expect(bare.body.detail).toMatch(/credentials/);

    const url = bucket("main");
    const { id: repositoryId, created } = await http.ok<{ id: string; created: boolean }>("POST", "/v1/repositories", {
      name: "minio",
      url,
      password: PASSWORD,
      credentials: { AWS_ACCESS_KEY_ID: minio.accessKeyId, AWS_SECRET_ACCESS_KEY: minio.secretAccessKey },
    });
    expect(created).toBe(true);
    const { id: planId } = await http.ok<{ id: string }>("POST", "/v1/plans", {
      name: "to-minio",
      repositoryId,
      source: { type: "files", paths: [src] },
      retention: { keepLast: 5 },
      verifySamplePercent: 100,
    });

    const { jobId } = await http.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    const backup = await http.pollJob(jobId, (j) => j.status !== "running");
    expect(backup, JSON.stringify(backup)).toMatchObject({ kind: "backup", status: "completed", phase: "done" });
    expect(backup.result?.warnings).toEqual([]);

    const target = path.join(tmp.dir, "restore");
    const restore = await http.ok<{ jobId: string }>("POST", "/v1/restores", { repositoryId, snapshotId: backup.snapshotId, target });
    expect(await http.pollJob(restore.jobId, (j) => j.status !== "running")).toMatchObject({ kind: "restore", status: "completed" });
    expect(describeTree(path.join(target, src))).toEqual(withoutSetid(describeTree(src)));

    for (const id of [jobId, restore.jobId]) {
      const text = await historyText(id);
      // The payloads were decoded (the repository's URL and its sealed credentials are there) ...
      expect(text).toContain(url);
      expect(text).toMatch(/"sealedCredentials":"[A-Za-z0-9+/=]{40,}"/);
      // ... and the secret is not.
      expect(text).not.toContain(minio.secretAccessKey);
    }
  });

  it("a job failed by a destination's raw answer says which kind of destination failed, and not its host or answer", async () => {
    // A loopback proxy in front of MinIO: it forwards while the repository is
    // registered, then answers every request with an S3 error of its own words.
    const SENTINEL = "garbage from internal-storage.corp.example:9443";
    let garbage = false;
    const proxy = http_.createServer((req, res) => {
      if (garbage) {
        req.resume();
        res.writeHead(400, { "content-type": "application/xml" }).end(`<?xml version="1.0"?><Error><Code>OddFailure</Code><Message>${SENTINEL}</Message></Error>`);
        return;
      }
      const upstream = http_.request(`${minio.endpoint}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      upstream.on("error", () => res.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const hostPort = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    try {
      const { id: repositoryId } = await http.ok<{ id: string }>("POST", "/v1/repositories", {
        name: "proxied",
        url: `s3:http://${hostPort}/cairn-proxied-${randomBytes(4).toString("hex")}/repo`,
        password: PASSWORD,
        credentials: { AWS_ACCESS_KEY_ID: minio.accessKeyId, AWS_SECRET_ACCESS_KEY: minio.secretAccessKey },
      });
      const { id: planId } = await http.ok<{ id: string }>("POST", "/v1/plans", { name: "via-proxy", repositoryId, source: { type: "files", paths: [src] }, retention: { keepLast: 5 } });
      garbage = true;
      const { jobId } = await http.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
      const job = await http.pollJob(jobId, (j) => j.status !== "running");
      expect(job, JSON.stringify(job)).toMatchObject({ kind: "backup", status: "failed" });
      const listed = (await http.listUntil(`planId=${planId}`, (jobs) => jobs.some((j) => j.id === jobId && j.status === "failed"))).find((j) => j.id === jobId);
      for (const error of [job.error, listed?.error]) {
        expect(error).toMatch(/the S3 destination refused the request.*worker's log/);
        expect(error).not.toContain(hostPort);
        expect(error).not.toMatch(/internal-storage|OddFailure|127\.0\.0\.1/);
      }
      // Nor does the workflow's history hold the destination's answer.
      expect(await historyText(jobId)).not.toContain("internal-storage");
    } finally {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });
});

import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiServer } from "../api/server.js";
import { openCatalog } from "../db/client.js";
import { auditSigningKeys, repositories } from "../db/schema.js";
import { SecretBox } from "../engine/secret-box.js";
import { apiClient } from "./api-client.js";
import { cairn, cairnOk, PASSWORD, tempDir } from "./helpers.js";
import { testPolicy } from "./policy-fixtures.js";
import { startStack, type Stack } from "./stack.js";

/**
 * `cairn platform rotate-key` on a platform in use: the API (embedded catalog,
 * stopped for the rotation as the README says), a worker that keeps running
 * through it, a repository registered with its password sealed.
 */
describe("platform key rotation", () => {
  const tmp = tempDir("cairn-rotate-");
  const dataDir = path.join(tmp.dir, "data");
  const repo = path.join(tmp.dir, "repo");
  let stack: Stack;
  let api: ApiServer;
  let repositoryId: string;

  const start = async () => {
    api = await stack.startApi({ adminToken: "rotate-admin" });
    return apiClient(api, "rotate-admin");
  };

  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger("WARN") });
    const src = path.join(tmp.dir, "src");
    mkdirSync(src);
    writeFileSync(path.join(src, "notes.txt"), "kept across the rotation");
    await cairnOk(["-r", repo, "init"]);
    await cairnOk(["-r", repo, "backup", src]);
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, api: false });
  });

  afterAll(async () => {
    await stack?.close();
    tmp.cleanup();
  });

  it("re-seals every sealed value with a new key, and the API and a running worker go on with it", async () => {
    const client = await start();
    ({ id: repositoryId } = await client.ok<{ id: string }>("POST", "/v1/repositories", { name: "kept", url: repo, password: PASSWORD }));
    const before = await client.ok<{ snapshots: { id: string }[] }>("GET", `/v1/snapshots?repositoryId=${repositoryId}`);
    await api.close();

    const rotated = await cairn(["platform", "rotate-key", "--json", "--data-dir", dataDir]);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(JSON.parse(rotated.stdout)).toMatchObject({ epoch: 1, resealed: 2, current: 0 }); // the repository password and the audit signing key
    const keyFile = path.join(dataDir, "secret.key");
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(keyFile, "utf8").trim().split("\n").map((l) => l.split(" ")[0])).toEqual(["1", "0"]);

    const catalog = await openCatalog({ dataDir });
    try {
      const [row] = await catalog.db.select().from(repositories);
      expect(SecretBox.sealedEpoch(row.sealedPassword)).toBe(1);
      const [key] = await catalog.db.select().from(auditSigningKeys);
      expect(SecretBox.sealedEpoch(key.sealedPrivateKey)).toBe(1);
    } finally {
      await catalog.close();
    }

    // The API unseals the signing key and the password with the new key; the worker, started before, reloads the keyring.
    const again = await start();
    expect((await again.ok<{ ok: boolean }>("POST", "/v1/audit/verify")).ok).toBe(true);
    expect(await again.ok("GET", `/v1/snapshots?repositoryId=${repositoryId}`)).toEqual(before);
    const { jobId } = await again.ok<{ jobId: string }>("POST", "/v1/restores", { repositoryId, snapshotId: "latest", target: path.join(tmp.dir, "restored"), dryRun: true });
    const job = await again.pollJob(jobId, (j) => j.status !== "running");
    expect(job.status, JSON.stringify(job)).toBe("completed");
  });

  it("refuses to rotate a key given by CAIRN_SECRET_KEY, which it cannot change", async () => {
    const r = await cairn(["platform", "rotate-key", "--data-dir", path.join(tmp.dir, "other")], { env: { CAIRN_SECRET_KEY: SecretBox.generateKey().toString("base64") } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/CAIRN_SECRET_KEY/);
  });
});

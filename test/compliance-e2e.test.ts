import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiServer } from "../api/server.js";
import { apiClient } from "./api-client.js";
import { cairnOk, PASSWORD, tempDir } from "./helpers.js";
import { testPolicy } from "./policy-fixtures.js";
import { startMinio } from "./servers.js";
import { startStack, type Stack } from "./stack.js";

interface Report {
  status: string;
  controls: { id: string; status: string; checks: { id: string; passed: boolean; evidence: string[]; remediation?: string }[] }[];
  failing: { control: string; check: string; remediation: string }[];
}

const minio = await startMinio();

/**
 * Compliance reports against a real platform: a local repository, an S3 bucket
 * with Object Lock and one without (MinIO), a plan backed up and restored by a
 * worker through Temporal; then immutability turned off and the restore
 * verification let go stale, each flipping its own control.
 */
describe("compliance report", () => {
  const tmp = tempDir("cairn-compliance-");
  const dataDir = path.join(tmp.dir, "data");
  const s3env = { AWS_ACCESS_KEY_ID: minio.accessKeyId, AWS_SECRET_ACCESS_KEY: minio.secretAccessKey, AWS_REGION: "us-east-1" };
  let stack: Stack;
  let api: ApiServer;
  let admin: ReturnType<typeof apiClient>;
  let planId: string;
  let unlockedId: string;

  const check = (report: Report, control: string, id: string) => report.controls.find((c) => c.id === control)!.checks.find((c) => c.id === id)!;
  const control = (report: Report, id: string) => report.controls.find((c) => c.id === id)!.status;

  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger("WARN") });
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, api: { adminToken: "compliance-admin" } });
    api = stack.api;
    admin = apiClient(api, "compliance-admin");

    const src = path.join(tmp.dir, "src");
    mkdirSync(src);
    writeFileSync(path.join(src, "patients.csv"), "id,name\n1,Ada\n".repeat(500));
    const bucket = (name: string) => `s3:${minio.endpoint}/cairn-${name}-${randomBytes(4).toString("hex")}/repo`;
    const locked = bucket("locked");
    const unlocked = bucket("plain");
    await cairnOk(["-r", locked, "init", "--object-lock-days", "1"], { env: s3env });
    await cairnOk(["-r", unlocked, "init"], { env: s3env });
    const register = async (name: string, url: string, credentials?: Record<string, string>) =>
      (await admin.ok<{ id: string }>("POST", "/v1/repositories", { name, url, password: PASSWORD, ...(credentials ? { credentials } : {}) })).id;
    const localId = await register("local", path.join(tmp.dir, "repo"));
    const lockedId = await register("locked", locked, s3env);
    unlockedId = await register("plain", unlocked, s3env);
    ({ id: planId } = await admin.ok<{ id: string }>("POST", "/v1/plans", {
      name: "records",
      repositoryId: localId,
      source: { type: "files", paths: [src] },
      retention: { keepDaily: 7 },
      secondaryRepositoryIds: [lockedId],
    }));
    const backup = await admin.pollJob((await admin.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`)).jobId, (j) => j.status !== "running");
    expect(backup.status, JSON.stringify(backup)).toBe("completed");
    const restore = await admin.ok<{ jobId: string }>("POST", "/v1/restores", { repositoryId: localId, snapshotId: "latest", target: path.join(tmp.dir, "restored") });
    expect((await admin.pollJob(restore.jobId, (j) => j.status !== "running")).status).toBe("completed");
  }, 300_000); // a backup and a restore: minutes when the 2 cores are shared

  afterAll(async () => {
    await stack?.close();
    await minio.stop();
    tmp.cleanup();
  });

  it("checks the configuration with evidence, and names each failing control with what to change", async () => {
    const report = await admin.ok<Report>("GET", "/v1/compliance/soc2");
    expect(check(report, "CC6.1", "encryption")).toMatchObject({ passed: true, evidence: expect.arrayContaining([expect.stringMatching(/locked .* encrypted with aes-256-gcm/)]) });
    expect(check(report, "A1.2", "immutable-copy")).toMatchObject({ passed: true, evidence: [expect.stringMatching(/plan records: immutable copy in locked \(Object Lock GOVERNANCE 1 days\)/)] });
    expect(check(report, "A1.2", "three-two-one").passed).toBe(true);
    expect(check(report, "A1.2", "retention").passed).toBe(true);
    expect(check(report, "A1.3", "restore-verification")).toMatchObject({ passed: true, evidence: [expect.stringMatching(/restore job restore-/)] });
    expect(control(report, "A1.2")).toBe("PASS");
    expect(control(report, "A1.3")).toBe("PASS");
    expect(check(report, "CC7.2", "audit-chain").passed).toBe(true);
    // MinIO here speaks plain HTTP, and CAIRN_API_TOKEN never expires: those fail, and say what to change.
    expect(report.status).toBe("NON_COMPLIANT");
    expect(report.failing).toEqual(
      expect.arrayContaining([
        { control: "CC6.7", check: "tls", remediation: expect.stringMatching(/https/) },
        { control: "CC6.1", check: "admin-tokens", remediation: expect.stringMatching(/expiresAt/) },
      ]),
    );
    expect(report.failing.map((f) => f.control)).not.toContain("A1.2");

    const page = await fetch(`${api.url}/v1/compliance/hipaa`, { headers: { Authorization: "Bearer compliance-admin", Accept: "text/html" } });
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
    const html = await page.text();
    expect(html).toMatch(/<p class="status NON_COMPLIANT">NON_COMPLIANT<\/p>/);
    expect(html).toContain("164.308(a)(7)(ii)(A)");
    expect(html).not.toMatch(/<script/);
  });

  it("flips the immutability control when the plan's only Object Lock copy is replaced by a plain one", async () => {
    await admin.ok("PATCH", `/v1/plans/${planId}`, { secondaryRepositoryIds: [unlockedId] });
    const report = await admin.ok<Report>("GET", "/v1/compliance/soc2");
    expect(check(report, "A1.2", "immutable-copy")).toMatchObject({ passed: false, evidence: ["plan records: none of its repositories has Object Lock"] });
    expect(check(report, "A1.2", "three-two-one").passed).toBe(true);
    expect(control(report, "A1.2")).toBe("FAIL");
    expect(control(report, "A1.3")).toBe("PASS");
    expect(report.failing).toContainEqual({ control: "A1.2", check: "immutable-copy", remediation: expect.stringMatching(/object-lock-days/) });
    const iso = await admin.ok<Report>("GET", "/v1/compliance/iso27001");
    expect(control(iso, "A.8.13")).toBe("FAIL");
    expect(control(iso, "A.8.24")).toBe("FAIL"); // TLS, as before
    expect(control(iso, "A.8.15")).toBe("PASS");
  });

  it("flips the restore verification control once the last restore is older than the window", async () => {
    // A window of two seconds: the restore made above is older than that once we wait.
    api = await stack.startApi({ adminToken: "compliance-admin", compliance: { verificationDays: 2 / 86_400 } });
    admin = apiClient(api, "compliance-admin");
    await new Promise((r) => setTimeout(r, 2500));
    const report = await admin.ok<Report>("GET", "/v1/compliance/hipaa");
    expect(check(report, "164.308(a)(7)(ii)(D)", "restore-verification")).toMatchObject({ passed: false, evidence: [expect.stringMatching(/repository local: no successful restore/)] });
    expect(control(report, "164.308(a)(7)(ii)(D)")).toBe("FAIL");
    expect(control(report, "164.312(b)")).toBe("PASS");
    expect(report.failing).toContainEqual({ control: "164.308(a)(7)(ii)(D)", check: "restore-verification", remediation: expect.stringMatching(/POST \/v1\/restores/) });
  });
});

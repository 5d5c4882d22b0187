import { createHmac } from "node:crypto";
import { rmSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { SMTPServer } from "smtp-server";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiServer } from "../api/server.js";
import { apiClient } from "./api-client.js";
import { PASSWORD, tempDir } from "./helpers.js";
import { testPolicy } from "./policy-fixtures.js";
import { startStack, type Stack } from "./stack.js";
import { makeOddTree } from "./tree-fixtures.js";

interface Summary {
  id: string;
  status: string;
  planId?: string;
  snapshotId?: string;
  error?: string;
  attempts?: number;
}

interface Alert {
  id: string;
  kind: string;
  severity: string;
  state: string;
  title: string;
  detail: string;
  planId: string | null;
  repositoryId: string | null;
  occurrences: number;
  acknowledgedBy: string | null;
  resolution: string | null;
}

interface Step {
  name: string;
  durationSeconds: number;
  attempts: number;
  outcome: string;
  error?: string;
}

/**
 * Operating the platform over HTTP (Temporal dev server, a worker, the API with
 * its PGlite catalog): job history recorded when jobs finish, with steps and logs;
 * alerts raised, sent, acknowledged and resolved; repository quotas.
 */
describe("operations (Temporal dev server + worker + API)", () => {
  const tmp = tempDir("cairn-ops-e2e-");
  const dataDir = path.join(tmp.dir, "data");
  const src = path.join(tmp.dir, "src");
  let stack: Stack;
  let api: ApiServer;
  let client: ReturnType<typeof apiClient>;
  let repositoryId: string;

  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger("WARN") });
    makeOddTree(src);
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, api: { historyIntervalMs: 300, alertIntervalMs: 500 } });
    api = stack.api;
    client = apiClient(api);
    ({ id: repositoryId } = await client.ok<{ id: string }>("POST", "/v1/repositories", { name: "main", url: path.join(tmp.dir, "repo"), password: PASSWORD }));
  });

  afterAll(async () => {
    await stack?.close();
    tmp.cleanup();
  });

  /** Lists jobs until one satisfies `until`: the listing shows catalog fields (snapshotId, attempts) only once the recorder wrote the job. */
  async function listedUntil(query: string, until: (job: Summary) => boolean): Promise<Summary> {
    for (let i = 0; i < 300; i++) {
      const { jobs } = await client.ok<{ jobs: Summary[] }>("GET", `/v1/jobs?${query}`);
      const found = jobs.find(until);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`GET /v1/jobs?${query} never showed the expected job`);
  }

  let scheduledPlan: string;
  let failingPlan: string;

  it("records a scheduled run when it finishes, before anyone reads it: the listing shows its snapshot, GET shows its steps, /logs its log", async () => {
    const { id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", {
      name: "scheduled",
      repositoryId,
      source: { type: "files", paths: [src] },
      schedule: { cron: "0 3 1 1 *", timezone: "UTC" },
    });
    scheduledPlan = planId;
    await client.ok("POST", `/v1/plans/${planId}/trigger`);
    // Never read through GET /v1/jobs/{id}: only the recorder can have put the snapshot id and attempts in the catalog.
    const listed = await listedUntil(`planId=${planId}`, (j) => j.status === "completed" && j.snapshotId !== undefined);
    expect(listed.snapshotId).toMatch(/^[0-9a-f]{64}$/);
    expect(listed.attempts).toBe(1);

    const job = await client.ok<{ steps: Step[]; snapshotId: string; phase: string }>("GET", `/v1/jobs/${listed.id}`);
    expect(job.snapshotId).toBe(listed.snapshotId);
    expect(job.steps.map((s) => s.name)).toEqual(["prepare", "snapshot", "verify", "record", "notify"]);
    for (const step of job.steps) {
      expect(step.outcome).toBe("completed");
      expect(step.attempts).toBe(1);
      expect(step.durationSeconds).toBeGreaterThanOrEqual(0);
    }

    const { lines, status } = await client.ok<{ status: string; lines: { level: string; message: string }[] }>("GET", `/v1/jobs/${listed.id}/logs`);
    expect(status).toBe("completed");
    const messages = lines.map((l) => l.message);
    expect(messages[0]).toBe("job started: backupWorkflow on task queue cairn");
    expect(messages).toContain("step snapshot scheduled");
    expect(messages.some((m) => /^step snapshot completed in \d+\.\d s$/.test(m))).toBe(true);
    expect(messages.at(-1)).toBe("job completed");
  });

  it("keeps a failed job with its cause, the step it failed in and its attempts: GET /v1/jobs?status=failed is the dead-letter view", async () => {
    const gone = path.join(tmp.dir, "gone");
    makeOddTree(gone);
    const { id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", { name: "source-gone", repositoryId, source: { type: "files", paths: [gone] } });
    rmSync(gone, { recursive: true });
    failingPlan = planId;
    const { jobId } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    const failed = await listedUntil("status=failed", (j) => j.id === jobId && j.attempts !== undefined);
    expect(failed.error).toContain(gone);
    expect(failed.attempts).toBe(1);
    const job = await client.ok<{ steps: Step[]; phase: string }>("GET", `/v1/jobs/${jobId}`);
    expect(job.phase).toBe("prepare");
    expect(job.steps).toEqual([expect.objectContaining({ name: "prepare", outcome: "failed", attempts: 1, error: failed.error })]);
    const { lines } = await client.ok<{ lines: { level: string; message: string }[] }>("GET", `/v1/jobs/${jobId}/logs`);
    expect(lines.filter((l) => l.level === "error").map((l) => l.message)).toEqual([`step prepare failed: ${failed.error}`, `job failed: ${failed.error}`]);

    // A viewer may not retry; an operator may, once the cause is fixed: the same input runs again as a new job.
    const viewer = apiClient(api, (await client.ok<{ token: string }>("POST", "/v1/tokens", { name: "watcher", role: "viewer" })).token);
    expect((await viewer.call("POST", `/v1/jobs/${jobId}/retry`)).status).toBe(403);
    makeOddTree(gone);
    const operator = apiClient(api, (await client.ok<{ token: string }>("POST", "/v1/tokens", { name: "on-call", role: "operator" })).token);
    const retried = await operator.ok<{ jobId: string; retryOf: string }>("POST", `/v1/jobs/${jobId}/retry`);
    expect(retried.retryOf).toBe(jobId);
    expect(retried.jobId).toMatch(new RegExp(`^backup-${planId}-`));
    expect((await client.pollJob(retried.jobId, (j) => j.status !== "running")).status).toBe("completed");
    expect((await operator.call<{ detail: string }>("POST", `/v1/jobs/${retried.jobId}/retry`)).status).toBe(409);
    rmSync(gone, { recursive: true });
  });

  it("answers analytics over the recorded jobs to a viewer: success rate, duration estimate, storage growth, risk with its factors, recommendations", async () => {
    for (let i = 0; i < 2; i++) {
      const { jobId } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${scheduledPlan}/run`);
      await listedUntil(`planId=${scheduledPlan}`, (j) => j.id === jobId && j.attempts !== undefined);
    }
    const { token } = await client.ok<{ token: string }>("POST", "/v1/tokens", { name: "analyst", role: "viewer" });
    const viewer = apiClient(api, token);
    const good = await viewer.ok<Record<string, any>>("GET", `/v1/analytics/plans/${scheduledPlan}?bytes=100000000000`);
    expect(good.successRate).toMatchObject({ windowDays: 7, runs: 3, successes: 3, failures: 0, rate: 1 });
    expect(good.duration).toMatchObject({ bytes: 100000000000, samples: 3 });
    expect(good.duration.throughputBytesPerSecond).toBeGreaterThan(0);
    expect(good.duration.seconds).toBeGreaterThan(0);
    expect(good.storage.samples).toBe(4); // the repository after each backup into it: the other plan's retried run too
    expect(good.anomalies).toEqual([]);
    const points = (a: Record<string, any>) => Object.fromEntries(a.risk.factors.map((f: { kind: string; points: number }) => [f.kind, f.points]));
    expect(points(good)).toEqual({ rpo: 0, destinations: 0, verification: 0, anomalies: 0, "restore-test": 15, quota: 0 });
    expect(good.risk).toMatchObject({ score: 15, level: "low" });
    expect(good.recommendations.map((r: { type: string }) => r.type)).toContain("restore-test");

    // The failing plan's last run (the retry) succeeded: one failure in two runs.
    const { jobId: failedAgain } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${failingPlan}/run`);
    await listedUntil("status=failed", (j) => j.id === failedAgain && j.attempts !== undefined);
    const bad = await viewer.ok<Record<string, any>>("GET", `/v1/analytics/plans/${failingPlan}?rpoHours=1`);
    expect(bad.successRate).toMatchObject({ runs: 3, successes: 1, failures: 2 });
    expect(points(bad)).toMatchObject({ rpo: 0, destinations: 25 });
    expect(bad.risk.factors.find((f: { kind: string }) => f.kind === "destinations").detail).toContain("the last backup failed");

    const overall = await viewer.ok<Record<string, any>>("GET", "/v1/analytics");
    expect(overall.plans).toBe(2);
    expect(overall.successRate).toMatchObject({ runs: 6, successes: 4, failures: 2 });
    expect(overall.risk.map((r: { planId: string }) => r.planId)).toEqual([failingPlan, scheduledPlan]);
    expect(overall.recommendations[0].planId).toBe(failingPlan);
    expect((await viewer.call("GET", "/v1/analytics/plans/0123456789abcdef")).status).toBe(404);
    expect((await viewer.call("GET", `/v1/analytics/plans/${scheduledPlan}?rpoHours=-1`)).status).toBe(400);
  });

  it("sends a plan's outcomes to a signed webhook, Slack and email (real receivers on loopback), retried, with no secret in any message", async () => {
    const secret = "whsec-0123456789abcdef-notify";
    const smtpPassword = "smtp-password-never-shown";
    const requests: { path: string; headers: IncomingHttpHeaders; body: string }[] = [];
    let flaky = 0;
    const http = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (d: Buffer) => chunks.push(d));
      req.on("end", () => {
        // The webhook answers 503 to its first call: the notify step must retry.
        if (req.url === "/hook" && flaky++ === 0) return res.writeHead(503).end();
        requests.push({ path: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() });
        res.writeHead(200).end("ok");
      });
    });
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    const mails: string[] = [];
    const smtp = new SMTPServer({
      authOptional: false,
      allowInsecureAuth: true,
      disabledCommands: ["STARTTLS"],
      onAuth: (auth, _session, cb) => (auth.username === "cairn" && auth.password === smtpPassword ? cb(null, { user: "cairn" }) : cb(new Error("bad login"))),
      onData: (stream, _session, cb) => {
        const chunks: Buffer[] = [];
        stream.on("data", (d: Buffer) => chunks.push(d));
        stream.on("end", () => {
          mails.push(Buffer.concat(chunks).toString());
          cb();
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(0, "127.0.0.1", r));
    process.env.CAIRN_SMTP_URL = `smtp://cairn:${smtpPassword}@127.0.0.1:${(smtp.server.address() as AddressInfo).port}`;
    process.env.CAIRN_SMTP_FROM = "cairn@example.test";
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    const slackUrl = `${base}/services/T0000/B0000/slack-token-never-shown`;
    try {
      const source = path.join(tmp.dir, "notified");
      makeOddTree(source);
      const { id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", {
        name: "notified",
        repositoryId,
        source: { type: "files", paths: [source] },
        notifications: [
          { type: "webhook", url: `${base}/hook`, secret, on: ["success", "failure"] },
          { type: "slack", url: slackUrl, on: ["success"] },
          { type: "email", to: ["ops@example.test"], on: ["success", "failure"] },
        ],
      });
      const plan = await client.ok<{ notifications: unknown[] }>("GET", `/v1/plans/${planId}`);
      expect(plan.notifications).toEqual([
        { type: "webhook", on: ["success", "failure"], url: `${base}/hook`, signed: true },
        { type: "slack", on: ["success"], host: new URL(base).host },
        { type: "email", on: ["success", "failure"], to: ["ops@example.test"] },
      ]);

      const { jobId } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
      const job = await client.pollJob(jobId, (j) => j.status !== "running");
      expect(job.status, JSON.stringify(job)).toBe("completed");
      const hook = requests.find((r) => r.path === "/hook")!;
      const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(hook.headers["x-cairn-signature"]))!;
      expect(v1).toBe(createHmac("sha256", secret).update(`${t}.${hook.body}`).digest("hex"));
      expect(JSON.parse(hook.body)).toMatchObject({ status: "succeeded", planId, planName: "notified", jobId, snapshotId: job.snapshotId });
      const slack = JSON.parse(requests.find((r) => r.path.startsWith("/services/"))!.body) as { text: string };
      expect(slack.text).toContain("backup of plan notified succeeded");
      expect(mails).toHaveLength(1);
      expect(mails[0]).toContain("Subject: [Cairn] backup of notified succeeded");
      const { lines } = await client.ok<{ lines: { message: string }[] }>("GET", `/v1/jobs/${jobId}/logs`);
      expect(lines.some((l) => /^step notify attempt 1 failed: .*503.*; retried$/.test(l.message)), JSON.stringify(lines)).toBe(true);

      rmSync(source, { recursive: true });
      const failed = await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
      expect((await client.pollJob(failed.jobId, (j) => j.status !== "running")).status).toBe("failed");
      for (let i = 0; i < 100 && (mails.length < 2 || requests.filter((r) => r.path === "/hook").length < 2); i++) await new Promise((r) => setTimeout(r, 200));
      const failure = requests.filter((r) => r.path === "/hook")[1];
      expect(JSON.parse(failure.body)).toMatchObject({ status: "failed", planId, jobId: failed.jobId });
      expect(JSON.parse(failure.body).error).toContain(source);
      expect(mails[1]).toContain("FAILED");
      expect(requests.filter((r) => r.path.startsWith("/services/"))).toHaveLength(1); // Slack only on success

      // What the receivers were sent (bodies and headers; the Slack URL's own path is where it was sent, not what), and what the API shows.
      const everything = JSON.stringify(requests.map((r) => ({ headers: r.headers, body: r.body }))) + mails.join("") + JSON.stringify(plan);
      for (const s of [secret, smtpPassword, "slack-token-never-shown", PASSWORD]) expect(everything).not.toContain(s);
    } finally {
      delete process.env.CAIRN_SMTP_URL;
      await new Promise<void>((r) => smtp.close(() => r()));
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    }
  });

  /** Reads GET /v1/alerts?query until one alert satisfies `until`. */
  async function alertUntil(query: string, until: (alert: Alert) => boolean): Promise<Alert> {
    for (let i = 0; i < 300; i++) {
      const { alerts } = await client.ok<{ alerts: Alert[] }>("GET", `/v1/alerts?${query}`);
      const found = alerts.find(until);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`GET /v1/alerts?${query} never showed the expected alert`);
  }

  it("raises a backup_failed alert, sends it to the plan's signed webhook, lets an operator acknowledge it, and resolves it on the next good backup", async () => {
    const secret = "whsec-alerts-0123456789abcdef";
    const received: { event: string; body: Record<string, any> }[] = [];
    const refused: string[] = [];
    const http = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (d: Buffer) => chunks.push(d));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString();
        const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(req.headers["x-cairn-signature"]));
        // The receiver trusts only bodies signed with the shared secret.
        if (!m || m[2] !== createHmac("sha256", secret).update(`${m[1]}.${body}`).digest("hex")) {
          refused.push(body);
          return res.writeHead(401).end();
        }
        received.push({ event: String(req.headers["x-cairn-event"]), body: JSON.parse(body) });
        res.writeHead(200).end("ok");
      });
    });
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    const hook = `http://127.0.0.1:${(http.address() as AddressInfo).port}/alerts`;
    const waitFor = async (what: string, until: () => boolean) => {
      for (let i = 0; i < 300 && !until(); i++) await new Promise((r) => setTimeout(r, 200));
      expect(until(), what).toBe(true);
    };
    try {
      const source = path.join(tmp.dir, "alerting");
      const { id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", {
        name: "alerting",
        repositoryId,
        source: { type: "files", paths: [source] },
        notifications: [{ type: "webhook", url: hook, secret, on: ["backup_failed"] }],
      });
      const { jobId: failedJob } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
      expect((await client.pollJob(failedJob, (j) => j.status !== "running")).status).toBe("failed");

      const open = await alertUntil("state=open&kind=backup_failed", (a) => a.planId === planId);
      expect(open).toMatchObject({ kind: "backup_failed", severity: "critical", title: "Backup of plan alerting failed", occurrences: 1 });
      expect(open.detail).toContain(failedJob);
      expect(open.detail).toContain(source);

      await waitFor("the webhook received the alert", () => received.some((r) => r.body.alertId === open.id));
      const sent = received.find((r) => r.body.alertId === open.id)!;
      expect(sent.event).toBe("alert.backup_failed.opened");
      expect(sent.body).toMatchObject({ type: "alert", kind: "backup_failed", state: "opened", planId, title: open.title });
      expect(refused).toEqual([]);

      // A second failure counts on the same alert instead of opening another.
      const { jobId: again } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
      await client.pollJob(again, (j) => j.status !== "running");
      expect((await alertUntil("state=open&kind=backup_failed", (a) => a.planId === planId && a.occurrences === 2)).id).toBe(open.id);

      // Viewers and auditors read alerts; only an operator (or admin) acknowledges, and the acknowledgement is audited.
      const viewer = apiClient(api, (await client.ok<{ token: string }>("POST", "/v1/tokens", { name: "alert-viewer", role: "viewer" })).token);
      const auditor = apiClient(api, (await client.ok<{ token: string }>("POST", "/v1/tokens", { name: "alert-auditor", role: "auditor" })).token);
      const operator = apiClient(api, (await client.ok<{ token: string }>("POST", "/v1/tokens", { name: "alert-operator", role: "operator" })).token);
      expect((await viewer.ok<{ alerts: Alert[] }>("GET", "/v1/alerts?state=open")).alerts.map((a) => a.id)).toContain(open.id);
      expect((await auditor.call("GET", "/v1/alerts")).status).toBe(200);
      expect((await viewer.call("POST", `/v1/alerts/${open.id}/ack`)).status).toBe(403);
      const acked = await operator.ok<Alert>("POST", `/v1/alerts/${open.id}/ack`);
      expect(acked).toMatchObject({ id: open.id, state: "acknowledged" });
      expect(acked.acknowledgedBy).toContain("alert-operator");
      expect((await operator.call("POST", `/v1/alerts/${open.id}/ack`)).status).toBe(409);
      expect((await client.ok<{ alerts: Alert[] }>("GET", "/v1/alerts?state=acknowledged")).alerts.map((a) => a.id)).toContain(open.id);
      const { events } = await client.ok<{ events: { action: string; outcome: string; actorName: string }[] }>("GET", "/v1/audit?action=acknowledgeAlert");
      expect(events).toContainEqual(expect.objectContaining({ action: "acknowledgeAlert", outcome: "succeeded", actorName: "alert-operator" }));

      // The cause fixed, the next backup succeeds: the alert resolves, and the webhook hears of it.
      makeOddTree(source);
      const { jobId: goodJob } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
      expect((await client.pollJob(goodJob, (j) => j.status !== "running")).status).toBe("completed");
      const resolved = await alertUntil("state=resolved&kind=backup_failed", (a) => a.id === open.id);
      expect(resolved.resolution).toBe(`backup job ${goodJob} succeeded`);
      expect((await client.ok<{ alerts: Alert[] }>("GET", "/v1/alerts?state=open")).alerts.filter((a) => a.planId === planId)).toEqual([]);
      await waitFor("the webhook received the resolution", () => received.some((r) => r.body.alertId === open.id && r.body.state === "resolved"));
      expect(received.find((r) => r.body.state === "resolved")!.event).toBe("alert.backup_failed.resolved");
      expect(JSON.stringify(received)).not.toContain(secret);
      expect(JSON.stringify(received)).not.toContain(PASSWORD);
    } finally {
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    }
  });

  it("fails a backup that would pass its repository's quota before uploading anything, and warns when the repository is nearly full", async () => {
    const quotaRepo = path.join(tmp.dir, "quota-repo");
    const { id: quotaRepositoryId } = await client.ok<{ id: string }>("POST", "/v1/repositories", { name: "small", url: quotaRepo, password: PASSWORD, quotaBytes: 1024 });
    expect(await client.ok("GET", `/v1/repositories/${quotaRepositoryId}`)).toMatchObject({ quotaBytes: 1024, usage: null });
    const source = path.join(tmp.dir, "quota-src");
    makeOddTree(source);
    const { id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", { name: "quota", repositoryId: quotaRepositoryId, source: { type: "files", paths: [source] } });

    const { jobId } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    const job = await client.pollJob(jobId, (j) => j.status !== "running");
    expect(job.status).toBe("failed");
    expect(job.phase).toBe("prepare");
    expect(job.error).toContain(`would pass repository ${quotaRepositoryId}'s quota of 1 KiB (1024 bytes)`);
    expect(job.error).toContain("the repository holds 0 B (0 bytes)");
    expect(job.error).toMatch(/Nothing was uploaded\. Raise the quota \(PATCH \/v1\/repositories\/[0-9a-f]+ .*\) or free space \(.*prune\)/);
    const { snapshots } = await client.ok<{ snapshots: unknown[] }>("GET", `/v1/snapshots?repositoryId=${quotaRepositoryId}`);
    expect(snapshots).toEqual([]);
    // The quota failure is a failed backup: it raises that alert, with the quota's words.
    expect((await alertUntil("state=open&kind=backup_failed", (a) => a.planId === planId)).detail).toContain("quota");

    // Without the quota the backup runs; the repository's usage is kept; a quota at that usage opens storage_nearly_full.
    const viewer = apiClient(api, (await client.ok<{ token: string }>("POST", "/v1/tokens", { name: "quota-viewer", role: "viewer" })).token);
    expect((await viewer.call("PATCH", `/v1/repositories/${quotaRepositoryId}`, { quotaBytes: null })).status).toBe(403);
    expect(await client.ok("PATCH", `/v1/repositories/${quotaRepositoryId}`, { quotaBytes: null })).toMatchObject({ quotaBytes: null });
    const { jobId: good } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    expect((await client.pollJob(good, (j) => j.status !== "running")).status).toBe("completed");
    await alertUntil("state=resolved&kind=backup_failed", (a) => a.planId === planId);
    let usage: { bytes: number } | null = null;
    for (let i = 0; i < 300 && !usage; i++) {
      ({ usage } = await client.ok<{ usage: { bytes: number } | null }>("GET", `/v1/repositories/${quotaRepositoryId}`));
      if (!usage) await new Promise((r) => setTimeout(r, 200));
    }
    expect(usage!.bytes).toBeGreaterThan(0);
    await client.ok("PATCH", `/v1/repositories/${quotaRepositoryId}`, { quotaBytes: Math.ceil(usage!.bytes / 0.9) });
    const full = await alertUntil("state=open&kind=storage_nearly_full", (a) => a.repositoryId === quotaRepositoryId);
    expect(full.severity).toBe("warning");
    expect(full.title).toBe("Repository small is nearly full (90% of its quota)");
    const overall = await viewer.ok<{ storage: { repositoryId: string; quotaBytes: number; usedBytes: number }[] }>("GET", "/v1/analytics");
    expect(overall.storage).toContainEqual(expect.objectContaining({ repositoryId: quotaRepositoryId, quotaBytes: Math.ceil(usage!.bytes / 0.9), usedBytes: usage!.bytes }));

    // The next backup adds about what the last one stored, which no longer fits: it fails before uploading, and leaves the snapshot count as it was.
    const before = (await client.ok<{ snapshots: unknown[] }>("GET", `/v1/snapshots?repositoryId=${quotaRepositoryId}`)).snapshots.length;
    const { jobId: over } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    const overJob = await client.pollJob(over, (j) => j.status !== "running");
    expect(overJob.status).toBe("failed");
    expect(overJob.error).toContain("what the plan's last backup stored");
    expect((await client.ok<{ snapshots: unknown[] }>("GET", `/v1/snapshots?repositoryId=${quotaRepositoryId}`)).snapshots).toHaveLength(before);
  });
});

import { request as httpRequest } from "node:http";
import * as path from "node:path";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PERMISSIONS, ROLE_NAMES, ROLES, type Permission, type Role } from "../api/permissions.js";
import type { ApiServer } from "../api/server.js";
import { apiClient } from "./api-client.js";
import { PASSWORD, tempDir } from "./helpers.js";
import { testPolicy } from "./policy-fixtures.js";
import { startStack, type Stack } from "./stack.js";

interface Operation {
  operationId: string;
  "x-cairn-permission": string;
  requestBody?: unknown;
  tags?: string[];
}

/** A request from a chosen loopback address (127.0.0.0/8 all reach this host), as another client machine would send it. */
function requestFrom(localAddress: string, url: string, token: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { localAddress, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end();
  });
}

/**
 * Tokens, roles and scopes over HTTP, against a real API (PGlite catalog), a
 * Temporal dev server and a worker: every route of /openapi.json with every role.
 */
describe("tokens, roles and scopes", () => {
  const tmp = tempDir("cairn-access-");
  const dataDir = path.join(tmp.dir, "data");
  let stack: Stack;
  let api: ApiServer;
  let admin: ReturnType<typeof apiClient>;
  const tokens = {} as Record<Role, string>;

  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger("WARN") });
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir });
    api = stack.api;
    admin = apiClient(api);
    for (const role of ROLE_NAMES) {
      const created = await admin.ok<{ id: string; token: string }>("POST", "/v1/tokens", { name: `${role}-token`, role });
      tokens[role] = created.token;
    }
  });

  afterAll(async () => {
    await stack?.close();
    tmp.cleanup();
  });

  /** Which roles a route lets through, for the routes whose rule the README states. */
  const EXPECTED: Record<string, Role[]> = {
    getSession: ["viewer", "operator", "admin", "auditor"],
    listPlans: ["viewer", "operator", "admin"],
    getPlan: ["viewer", "operator", "admin"],
    createPlan: ["admin"],
    getPolicy: ["admin"],
    // Only an editor of plans needs the preview (it creates and deletes a Temporal schedule per call).
    previewSchedule: ["admin"],
    updatePlan: ["admin"],
    deletePlan: ["admin"],
    runPlan: ["operator", "admin"],
    triggerPlan: ["operator", "admin"],
    listJobs: ["viewer", "operator", "admin"],
    cancelJob: ["operator", "admin"],
    getJobLogs: ["viewer", "operator", "admin"],
    retryJob: ["operator", "admin"],
    getQueue: ["viewer", "operator", "admin"],
    getAnalytics: ["viewer", "operator", "admin"],
    getPlanAnalytics: ["viewer", "operator", "admin"],
    listWorkers: ["viewer", "operator", "admin"],
    getBottlenecks: ["viewer", "operator", "admin"],
    listSnapshots: ["viewer", "operator", "admin"],
    getSnapshotTree: ["viewer", "operator", "admin"],
    diffSnapshots: ["viewer", "operator", "admin"],
    // Downloading hands out the backed-up bytes, as a restore does.
    downloadSnapshot: ["operator", "admin"],
    createRestore: ["operator", "admin"],
    createMysqlRestore: ["operator", "admin"],
    createMysqlRecovery: ["operator", "admin"],
    getRecoveryWindow: ["viewer", "operator", "admin"],
    // A standby restores a plan's cluster onto a worker and runs it: who may restore may start and stop one; whoever reads plans reads its lag.
    createStandby: ["operator", "admin"],
    deleteStandby: ["operator", "admin"],
    listStandbys: ["viewer", "operator", "admin"],
    getStandby: ["viewer", "operator", "admin"],
    // A continuous binary log archiver runs the plan's archiving for good: who may run plans may start and stop it; whoever reads plans reads its lag.
    startBinlogArchiver: ["operator", "admin"],
    stopBinlogArchiver: ["operator", "admin"],
    getBinlogArchiver: ["viewer", "operator", "admin"],
    checkRepository: ["operator", "admin"],
    verifySnapshot: ["operator", "admin"],
    pruneRepository: ["operator", "admin"],
    copySnapshot: ["operator", "admin"],
    listRepositories: ["viewer", "operator", "admin"],
    createRepository: ["admin"],
    createToken: ["admin"],
    listTokens: ["admin"],
    revokeToken: ["admin"],
    listSecurityEvents: ["admin", "auditor"],
    listAuditEvents: ["admin", "auditor"],
    verifyAuditLog: ["admin", "auditor"],
    getComplianceReport: ["admin", "auditor"],
    // Open and past alerts are evidence of monitoring (SOC 2 CC7, ISO 27001 A.8.16): auditors read them; only operators and admins acknowledge.
    listAlerts: ["viewer", "operator", "admin", "auditor"],
    acknowledgeAlert: ["operator", "admin"],
    // A failover stops one server and promotes another: admins only; its progress reads like a job's.
    createFailover: ["admin"],
    getFailover: ["viewer", "operator", "admin"],
  };

  it("walks every route of /openapi.json with every role: 401 without a token, 403 without the permission, through with it", async () => {
    const doc = (await (await fetch(`${api.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, Operation>> };
    let walked = 0;
    for (const [route, operations] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(operations)) {
        const where = `${method.toUpperCase()} ${route}`;
        const permission = op["x-cairn-permission"];
        if (permission === "public") {
          expect(route, "only health checks are open").toMatch(/^\/(healthz|readyz)$/);
          continue;
        }
        expect(PERMISSIONS, `${where} declares ${permission}`).toContain(permission);
        walked++;
        const url = route.replace(/\{\w+\}/g, "0123456789abcdef");
        const body = op.requestBody ? {} : undefined;
        const anonymous = await apiClient(api, "").call(method.toUpperCase(), url, body);
        expect(anonymous.status, `${where} without a token`).toBe(401);
        const through: Role[] = [];
        for (const role of ROLE_NAMES) {
          const res = await apiClient(api, tokens[role]).call<{ detail: string }>(method.toUpperCase(), url, body);
          if (ROLES[role].has(permission as Permission)) {
            expect([401, 403], `${where} as ${role}: ${JSON.stringify(res.body)}`).not.toContain(res.status);
            through.push(role);
          } else {
            expect(res.status, `${where} as ${role}`).toBe(403);
            expect(res.body.detail).toContain(permission);
          }
        }
        if (EXPECTED[op.operationId]) expect(through, where).toEqual(EXPECTED[op.operationId]);
        // The auditor reads the audit trail, the alerts (and who it is) and nothing else.
        if (!["audit", "security", "compliance", "session", "alerts"].some((tag) => op.tags?.includes(tag))) expect(through, where).not.toContain("auditor");
      }
    }
    expect(walked).toBeGreaterThanOrEqual(Object.keys(EXPECTED).length);
  });

  it("creates a token shown once, lists tokens without their secret, and revokes one at once", async () => {
    const { id, token } = await admin.ok<{ id: string; token: string }>("POST", "/v1/tokens", { name: "report", role: "viewer" });
    expect(token).toMatch(/^cairn_/);
    const viewer = apiClient(api, token);
    expect((await viewer.call("GET", "/v1/plans")).status).toBe(200);

    const listing = await admin.call<{ tokens: { id: string; name: string; role: string; lastUsedAt: string | null; revokedAt: string | null }[] }>("GET", "/v1/tokens");
    expect(JSON.stringify(listing.body)).not.toContain(token);
    const listed = listing.body.tokens.find((t) => t.id === id)!;
    expect(listed).toMatchObject({ name: "report", role: "viewer", revokedAt: null });
    expect(Date.parse(listed.lastUsedAt!)).toBeGreaterThan(Date.now() - 60_000);

    expect((await admin.call("DELETE", `/v1/tokens/${id}`)).status).toBe(204);
    const refused = await viewer.call<{ detail: string }>("GET", "/v1/plans");
    expect(refused.status).toBe(401);
    expect(refused.body.detail).toMatch(/revoked/);
    expect((await admin.call("DELETE", `/v1/tokens/${id}`)).status).toBe(404);
  });

  it("refuses a token once it has expired", async () => {
    const expiresAt = new Date(Date.now() + 1500).toISOString();
    const { token } = await admin.ok<{ token: string }>("POST", "/v1/tokens", { name: "short-lived", role: "operator", expiresAt });
    const short = apiClient(api, token);
    expect((await short.call("GET", "/v1/plans")).status).toBe(200);
    await new Promise((r) => setTimeout(r, Date.parse(expiresAt) - Date.now() + 100));
    const refused = await short.call<{ detail: string }>("GET", "/v1/plans");
    expect(refused.status).toBe(401);
    expect(refused.body.detail).toMatch(/expired at/);
  });

  it("checks what a token may be: role, expiry, scope", async () => {
    const bad = async (body: unknown, status: number, field: string) => {
      const res = await admin.call<{ errors?: { path: string }[] }>("POST", "/v1/tokens", body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.body.errors?.map((e) => e.path)).toContain(field);
    };
    await bad({ name: "x", role: "root" }, 400, "role");
    await bad({ name: "x", role: "viewer", expiresAt: "2001-01-01T00:00:00Z" }, 400, "expiresAt");
    await bad({ name: "x", role: "admin", scope: { planIds: ["0123456789abcdef"] } }, 400, "scope");
    await bad({ name: "x", role: "viewer", scope: {} }, 400, "scope");
    await bad({ name: "x", role: "viewer", scope: { planIds: ["0123456789abcdef"] } }, 404, "scope.planIds.0");
  });

  it("keeps the last admin token: revoking it would lock everyone out", async () => {
    const { tokens: all } = await admin.ok<{ tokens: { id: string; name: string; role: string; revokedAt: string | null }[] }>("GET", "/v1/tokens");
    const admins = all.filter((t) => t.role === "admin" && !t.revokedAt);
    expect(admins.length).toBe(2); // the first-start token and admin-token
    expect((await admin.call("DELETE", `/v1/tokens/${admins.find((t) => t.name === "admin-token")!.id}`)).status).toBe(204);
    const last = await admin.call<{ detail: string }>("DELETE", `/v1/tokens/${admins.find((t) => t.name === "admin")!.id}`);
    expect(last.status).toBe(409);
    expect(last.body.detail).toMatch(/create another admin token first/);
  });

  it("holds a scoped token to its plans and repositories", async () => {
    const repo = async (name: string) => (await admin.ok<{ id: string }>("POST", "/v1/repositories", { name, url: path.join(tmp.dir, name), password: PASSWORD })).id;
    const [repoA, repoB] = [await repo("scope-a"), await repo("scope-b")];
    const plan = async (name: string, repositoryId: string) => (await admin.ok<{ id: string }>("POST", "/v1/plans", { name, repositoryId, source: { type: "files", paths: [tmp.dir] } })).id;
    const [planA, planB] = [await plan("plan-a", repoA), await plan("plan-b", repoB)];

    const operatorA = apiClient(api, (await admin.ok<{ token: string }>("POST", "/v1/tokens", { name: "op-a", role: "operator", scope: { planIds: [planA] } })).token);
    const viewerB = apiClient(api, (await admin.ok<{ token: string }>("POST", "/v1/tokens", { name: "view-b", role: "viewer", scope: { repositoryIds: [repoB] } })).token);

    expect((await operatorA.ok<{ plans: { id: string }[] }>("GET", "/v1/plans")).plans.map((p) => p.id)).toEqual([planA]);
    expect((await operatorA.call("GET", `/v1/plans/${planB}`)).status).toBe(403);
    expect((await operatorA.call("POST", `/v1/plans/${planB}/run`)).status).toBe(403);
    const { jobId } = await operatorA.ok<{ jobId: string }>("POST", `/v1/plans/${planA}/run`);
    expect((await operatorA.call("GET", `/v1/jobs/${jobId}`)).status).toBe(200);
    expect((await viewerB.call("GET", `/v1/jobs/${jobId}`)).status).toBe(403);
    // A failover's id names its plan (failover-<planId>-<time>), so its progress is held to the scope like a job's: another plan's is refused, the token's own goes on to the handler (none runs here: 404).
    const failover = (planId: string) => `/v1/failovers/failover-${planId}-20261130T213000000Z`;
    expect((await viewerB.call("GET", failover(planA))).status).toBe(403);
    expect((await operatorA.call("GET", failover(planB))).status).toBe(403);
    expect((await viewerB.call("GET", failover(planB))).status).toBe(404);
    const jobs = await operatorA.listUntil("", (list) => list.some((j) => j.id === jobId));
    expect(jobs.every((j) => j.planId === planA)).toBe(true);
    // The plan-scoped token names no repository, so it may not restore from one (a repository holds other plans' snapshots too).
    const restore = await operatorA.call<{ errors: { path: string }[] }>("POST", "/v1/restores", { repositoryId: repoA, snapshotId: "latest", target: path.join(tmp.dir, "out") });
    expect(restore.status).toBe(403);
    expect(restore.body.errors[0].path).toBe("repositoryId");

    expect((await viewerB.ok<{ repositories: { id: string }[] }>("GET", "/v1/repositories")).repositories.map((r) => r.id)).toEqual([repoB]);
    expect((await viewerB.ok<{ plans: { id: string }[] }>("GET", "/v1/plans")).plans.map((p) => p.id)).toEqual([planB]);
    expect((await viewerB.call("GET", `/v1/snapshots?repositoryId=${repoA}`)).status).toBe(403);
    expect((await viewerB.call("GET", `/v1/snapshots?repositoryId=${repoB}`)).status).toBe(200);
    expect((await viewerB.call("GET", `/v1/repositories/${repoA}`)).status).toBe(403);
    expect((await viewerB.ok<{ jobs: unknown[]; query: string }>("GET", "/v1/jobs")).query).toContain(`WorkflowId STARTS_WITH 'restore-${repoB}-'`);
  });

  it("pages through a list with a cursor", async () => {
    for (let i = 0; i < 5; i++) await admin.ok("POST", "/v1/tokens", { name: `page-${i}`, role: "viewer" });
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { tokens: { id: string }[]; nextCursor: string | null } = await admin.ok("GET", `/v1/tokens?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.tokens.length).toBeLessThanOrEqual(2);
      seen.push(...page.tokens.map((t) => t.id));
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    const all = await admin.ok<{ tokens: { id: string }[]; nextCursor: string | null }>("GET", "/v1/tokens?limit=500");
    expect(all.nextCursor).toBeNull();
    expect(seen).toEqual(all.tokens.map((t) => t.id));
    expect(pages).toBe(Math.ceil(all.tokens.length / 2));
    const forged = await admin.call<{ errors: { path: string }[] }>("GET", "/v1/tokens?cursor=bm90LWEtY3Vyc29y");
    expect(forged.status).toBe(400);
    expect(forged.body.errors[0].path).toBe("cursor");
  });

  it("locks out an address after five failed logins, and a token presented five times, with 429 and a security event", async () => {
    const url = `${api.url}/v1/plans`;
    for (let i = 0; i < 5; i++) expect((await requestFrom("127.0.0.2", url, `wrong-${i}`)).status).toBe(401);
    // Now even the right token is refused from that address, and it says when to come back.
    const locked = await requestFrom("127.0.0.2", url, api.token!);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers["retry-after"])).toBeGreaterThan(500);
    expect(JSON.parse(locked.body).detail).toMatch(/wait \d+ s/);
    // Other addresses are not locked.
    expect((await requestFrom("127.0.0.3", url, api.token!)).status).toBe(200);

    // One token tried from five addresses is locked too, wherever it comes from next.
    for (let i = 0; i < 5; i++) expect((await requestFrom(`127.0.1.${i + 1}`, url, "stolen-token")).status).toBe(401);
    expect((await requestFrom("127.0.2.1", url, "stolen-token")).status).toBe(429);

    const { events } = await admin.ok<{ events: { kind: string; source: string; blocked: boolean; details: { locked: string } }[] }>("GET", "/v1/security/events?kind=auth-lockout");
    expect(events.map((e) => [e.source, e.details.locked])).toEqual(
      expect.arrayContaining([
        ["127.0.0.2", "address"],
        ["127.0.1.5", "token"],
      ]),
    );
  });
});

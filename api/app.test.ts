import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { Client, Connection } from "@temporalio/client";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCatalog, type OpenCatalog } from "../db/client.js";
import { alerts, jobs, plans, repositories, repositoryUsage } from "../db/schema.js";
import { SecretBox } from "../engine/secret-box.js";
import { tempDir } from "../test/helpers.js";
import { seedCatalog } from "../test/catalog-template.js";
import { inProcessWorkers, testPolicy } from "../test/policy-fixtures.js";
import { acknowledgeAlert, evaluateFinishedJobs, evaluatePeriodic, raiseAlert, resolveAlert } from "./alerts.js";
import { createApp } from "./app.js";
import { UPLOAD_PATH } from "./downloads.js";
import { ensureAdminToken } from "./auth.js";
import { WEB_SHELL_PATHS } from "./web.js";

// Nothing listens on port 1: these tests cover what the API decides without Temporal.
const ADMIN = "test-admin-token";
const PASSWORD = "correct horse battery staple";
const scratch = tempDir("cairn-api-");
let catalog: OpenCatalog;
let connection: Connection;
let app: ReturnType<typeof createApp>;
let secretBox: SecretBox;

beforeAll(async () => {
  await seedCatalog(scratch.dir);
  catalog = await openCatalog({ dataDir: scratch.dir });
  connection = Connection.lazy({ address: "127.0.0.1:1" });
  secretBox = new SecretBox(SecretBox.generateKey());
  // Plans name /srv and /var/www (they need not exist): the policy allows them besides the scratch directory.
  const policy = testPolicy(scratch.dir, path.join(scratch.dir, "data"), { CAIRN_SOURCE_ROOTS: "/srv:/var/www" });
  app = createApp({ catalog: catalog.db, temporal: new Client({ connection }), secretBox, adminToken: ADMIN, policy, workers: inProcessWorkers(secretBox, policy) });
});
afterAll(async () => {
  await connection?.close();
  await catalog?.close();
  scratch.cleanup();
});

function call(method: string, url: string, body?: unknown, init: { token?: string | null; raw?: string; type?: string } = {}) {
  const headers: Record<string, string> = {};
  const token = init.token === undefined ? ADMIN : init.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined || init.raw !== undefined) headers["Content-Type"] = init.type ?? "application/json";
  return app.request(url, { method, headers, body: init.raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
}

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: { in: string; path: string; message: string }[];
}

async function problem(res: Response, status: number): Promise<Problem> {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  const body = (await res.json()) as Problem;
  expect(body.status).toBe(status);
  expect(body.detail.length).toBeGreaterThan(20);
  return body;
}

async function registerRepository(name: string): Promise<string> {
  const res = await call("POST", "/v1/repositories", { name, url: path.join(scratch.dir, name), password: PASSWORD });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

describe("authentication", () => {
  it("refuses /v1 without a token or with a wrong one, and says how to get one", async () => {
    const missing = await problem(await call("GET", "/v1/plans", undefined, { token: null }), 401);
    expect(missing.detail).toMatch(/Authorization: Bearer/);
    const res = await call("GET", "/v1/plans", undefined, { token: "not-the-token" });
    expect(res.headers.get("www-authenticate")).toBe("Bearer");
    await problem(res, 401);
    await problem(await app.request("/v1/plans", { headers: { Authorization: `Basic ${ADMIN}` } }), 401);
    // A bad body without a token is still a 401: nothing is validated for strangers.
    await problem(await call("POST", "/v1/plans", { nonsense: true }, { token: null }), 401);
  });

  it("accepts the configured admin token and a generated one stored hashed in the catalog", async () => {
    expect((await call("GET", "/v1/plans")).status).toBe(200);
    const generated = await ensureAdminToken(catalog.db);
    expect(generated).toMatch(/^cairn_/);
    expect(await ensureAdminToken(catalog.db)).toBeUndefined(); // generated once, never shown again
    expect((await call("GET", "/v1/plans", undefined, { token: generated })).status).toBe(200);
    const stored = await catalog.db.execute("select token_hash from api_tokens");
    expect(JSON.stringify(stored)).not.toContain(generated!);
  });

  it("leaves the health checks and the OpenAPI document open", async () => {
    const health = await app.request("/healthz");
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });
    const ready = await app.request("/readyz");
    expect(ready.status).toBe(503); // no Temporal on port 1
    const body = (await ready.json()) as { status: string; checks: { catalog: string; temporal: string } };
    expect(body.status).toBe("not ready");
    expect(body.checks.catalog).toBe("ok");
    expect(body.checks.temporal).not.toBe("ok");
    expect((await app.request("/openapi.json")).status).toBe(200);
  });
});

describe("validation", () => {
  let repositoryId: string;
  beforeAll(async () => {
    repositoryId = await registerRepository("validation");
  });
  const plan = (extra: Record<string, unknown> = {}) => ({ name: "www", repositoryId, source: { type: "files", paths: ["/var/www"] }, ...extra });

  it("answers malformed JSON and non-JSON bodies with a problem, not a 500", async () => {
    const bad = await problem(await call("POST", "/v1/plans", undefined, { raw: '{"name": "www",' }), 400);
    expect(bad.detail).toMatch(/Malformed JSON/);
    await problem(await call("POST", "/v1/plans", undefined, { raw: "name=www", type: "text/plain" }), 415);
    const empty = await problem(await call("POST", "/v1/plans", undefined, { raw: "" , type: "application/json" }), 400);
    expect(empty.detail).toBeTruthy();
    const notObject = await problem(await call("POST", "/v1/plans", [1, 2]), 400);
    expect(notObject.errors?.[0].in).toBe("body");
  });

  it("names each wrong field: types, unknown fields, relative paths", async () => {
    const res = await problem(await call("POST", "/v1/plans", { name: 42, repositoryId, source: { type: "files", paths: "not-a-list" }, colour: "blue" }), 400);
    const paths = res.errors!.map((e) => e.path).sort();
    expect(paths).toEqual(["colour", "name", "source.paths"]);
    expect(res.errors!.every((e) => e.in === "body")).toBe(true);
    expect(res.errors!.find((e) => e.path === "colour")!.message).toMatch(/unknown field/);

    const relative = await problem(await call("POST", "/v1/plans", plan({ source: { type: "files", paths: ["var/www"] } })), 400);
    expect(relative.errors).toEqual([expect.objectContaining({ path: "source.paths.0", message: expect.stringMatching(/absolute path/) })]);
    const pattern = await problem(await call("POST", "/v1/plans", plan({ source: { type: "files", paths: ["/var/www"], exclude: ["*.tmp", "/var/www/cache/[ab"] } })), 400);
    expect(pattern.errors).toEqual([expect.objectContaining({ path: "source.exclude.1", message: expect.stringMatching(/a \[ is not closed/) })]);
    const otherSource = await problem(await call("POST", "/v1/plans", plan({ source: { type: "ftp", paths: ["/x"] } })), 400);
    expect(otherSource.errors![0].path).toBe("source.type");
    const noMode = await problem(await call("POST", "/v1/plans", plan({ source: { type: "postgres", paths: ["/x"] } })), 400);
    expect(noMode.errors![0].path).toBe("source.mode");
  });

  it("refuses NUL characters, which PostgreSQL cannot store, naming the field", async () => {
    const inName = await problem(await call("POST", "/v1/plans", plan({ name: "www\u0000x" })), 400);
    expect(inName.errors).toEqual([{ in: "body", path: "name", message: "contains a NUL character" }]);
    const inPath = await problem(await call("POST", "/v1/plans", plan({ source: { type: "files", paths: ["/var/www/\u0000"] } })), 400);
    expect(inPath.errors![0].path).toBe("source.paths.0");
    const inQuery = await problem(await call("GET", "/v1/plans?cursor=a%00b"), 400);
    expect(inQuery.errors![0]).toMatchObject({ in: "query", path: "cursor" });
  });

  it("refuses invalid cron expressions and time zones with a hint", async () => {
    for (const cron of ["61 * * * *", "0 3 * *", "every day", "0 3 * * MON-FOO", "*/0 * * * *", "5-1 * * * *"]) {
      const res = await problem(await call("POST", "/v1/plans", plan({ schedule: { cron, timezone: "UTC" } })), 400);
      expect(res.errors, cron).toEqual([expect.objectContaining({ path: "schedule.cron" })]);
    }
    for (const timezone of ["Mars/Olympus_Mons", "+02:00", "europe/paris", ""]) {
      const res = await problem(await call("POST", "/v1/plans", plan({ schedule: { cron: "0 3 * * *", timezone } })), 400);
      expect(res.errors, timezone).toEqual([expect.objectContaining({ path: "schedule.timezone", message: expect.stringMatching(/IANA/) })]);
    }
  });

  it("refuses retention policies that would keep nothing or cannot be read", async () => {
    const none = await problem(await call("POST", "/v1/plans", plan({ retention: {} })), 400);
    expect(none.errors![0].message).toMatch(/at least one/);
    const within = await problem(await call("POST", "/v1/plans", plan({ retention: { keepWithin: "a while" } })), 400);
    expect(within.errors![0].path).toBe("retention.keepWithin");
    const fraction = await problem(await call("POST", "/v1/plans", plan({ retention: { keepDaily: 1.5 }, verifySamplePercent: 150 })), 400);
    expect(fraction.errors!.map((e) => e.path).sort()).toEqual(["retention.keepDaily", "verifySamplePercent"]);
  });

  it("checks repositories, restores and job filters too", async () => {
    const repo = await problem(await call("POST", "/v1/repositories", { name: "x", url: "relative/dir" }), 400);
    expect(repo.errors!.map((e) => e.path).sort()).toEqual(["password", "url"]);
    const restore = await problem(await call("POST", "/v1/restores", { repositoryId, snapshotId: "xyz", target: "here" }), 400);
    expect(restore.errors!.map((e) => e.path).sort()).toEqual(["snapshotId", "target"]);
    const patterns = await problem(await call("POST", "/v1/restores", { repositoryId, snapshotId: "latest", target: "/tmp/r", include: ["inv_[z-a].txt"], exclude: ["ok\\"] }), 400);
    expect(patterns.errors!.map((e) => e.path).sort()).toEqual(["exclude.0", "include.0"]);
    const jobs = await problem(await call("GET", "/v1/jobs?status=sleeping&limit=0"), 400);
    expect(jobs.errors!.map((e) => `${e.in}:${e.path}`).sort()).toEqual(["query:limit", "query:status"]);
    const planFilter = await problem(await call("GET", "/v1/jobs?planId=x'%20OR%20'1'='1"), 400);
    expect(planFilter.errors![0].path).toBe("planId");
    const snapshots = await problem(await call("GET", "/v1/snapshots"), 400);
    expect(snapshots.errors![0]).toMatchObject({ in: "query", path: "repositoryId" });
  });
});

describe("unknown ids", () => {
  it("answers 404 with a hint for every resource", async () => {
    const cases: [string, string, unknown?][] = [
      ["GET", "/v1/plans/nope"],
      ["PATCH", "/v1/plans/nope", { name: "renamed" }],
      ["DELETE", "/v1/plans/nope"],
      ["POST", "/v1/plans/nope/run"],
      ["POST", "/v1/plans/nope/pause"],
      ["POST", "/v1/plans/nope/resume"],
      ["POST", "/v1/plans/nope/trigger"],
      ["GET", "/v1/repositories/nope"],
      ["GET", "/v1/snapshots?repositoryId=nope"],
      ["GET", "/v1/no-such-endpoint"],
    ];
    for (const [method, url, body] of cases) {
      const res = await problem(await call(method, url, body), 404);
      expect(res.detail, `${method} ${url}`).toMatch(/GET \/v1\/|openapi/);
    }
    const plan = await problem(await call("POST", "/v1/plans", { name: "orphan", repositoryId: "nope", source: { type: "files", paths: ["/srv"] } }), 404);
    expect(plan.errors).toEqual([{ in: "body", path: "repositoryId", message: "no such repository" }]);
    const restore = await problem(await call("POST", "/v1/restores", { repositoryId: "nope", snapshotId: "latest", target: "/tmp/x" }), 404);
    expect(restore.errors![0].path).toBe("repositoryId");
  });
});

describe("repositories", () => {
  it("creates a repository where none exists, stores its password sealed, and never returns it", async () => {
    const url = path.join(scratch.dir, "fresh");
    const res = await call("POST", "/v1/repositories", { name: "fresh", url, password: PASSWORD });
    expect(res.status).toBe(201);
    const { id, created } = (await res.json()) as { id: string; created: boolean };
    expect(created).toBe(true);
    expect(existsSync(path.join(url, "config"))).toBe(true);

    const [row] = await catalog.db.select().from(repositories).where(eq(repositories.id, id));
    expect(row.sealedPassword).not.toContain(PASSWORD);
    expect(secretBox.open(row.sealedPassword)).toBe(PASSWORD);

    const list = await call("GET", "/v1/repositories");
    const text = await list.text();
    expect(text).toContain(url);
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(row.sealedPassword);
  });

  it("opens an existing repository to check the password: wrong is a 422, right registers it", async () => {
    const url = path.join(scratch.dir, "fresh");
    await catalog.db.delete(repositories).where(eq(repositories.url, url));
    const wrong = await problem(await call("POST", "/v1/repositories", { name: "again", url, password: "wrong" }), 422);
    expect(wrong.detail).toMatch(/password/);
    const right = await call("POST", "/v1/repositories", { name: "again", url, password: PASSWORD });
    expect(right.status).toBe(201);
    expect(((await right.json()) as { created: boolean }).created).toBe(false);
  });

  it("refuses to create a repository among other files", async () => {
    const busy = path.join(scratch.dir, "busy");
    mkdirSync(busy);
    writeFileSync(path.join(busy, "notes.txt"), "mine");
    const res = await problem(await call("POST", "/v1/repositories", { name: "busy", url: busy, password: PASSWORD }), 422);
    expect(res.detail).toMatch(/new or empty directory/);
    expect(readdirSync(busy)).toEqual(["notes.txt"]);
    await problem(await call("POST", "/v1/repositories", { name: "file", url: path.join(busy, "notes.txt"), password: PASSWORD }), 422);
  });

  it("refuses a second registration of the same name or location", async () => {
    const url = path.join(scratch.dir, "fresh");
    const sameUrl = await problem(await call("POST", "/v1/repositories", { name: "third", url: `local:${url}/`, password: PASSWORD }), 409);
    expect(sameUrl.detail).toMatch(/url/);
    await problem(await call("POST", "/v1/repositories", { name: "again", url: path.join(scratch.dir, "other"), password: PASSWORD }), 409);
  });

  it("lists snapshots read from the repository itself", async () => {
    const id = await registerRepository("empty");
    const res = await call("GET", `/v1/snapshots?repositoryId=${id}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ snapshots: [], nextCursor: null });
    const restore = await problem(await call("POST", "/v1/restores", { repositoryId: id, snapshotId: "latest", target: path.join(scratch.dir, "restored") }), 404);
    expect(restore.errors![0].path).toBe("snapshotId");
  });
});

describe("plans without a schedule", () => {
  it("are created, read, changed and deleted without Temporal", async () => {
    const repositoryId = await registerRepository("plans");
    const created = await call("POST", "/v1/plans", { name: "docs", repositoryId, source: { type: "files", paths: ["/srv/docs"], exclude: ["*.tmp"] }, retention: { keepDaily: 7 } });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };

    const got = (await (await call("GET", `/v1/plans/${id}`)).json()) as Record<string, unknown>;
    expect(got).toMatchObject({ id, name: "docs", repositoryId, source: { type: "files", paths: ["/srv/docs"], exclude: ["*.tmp"] }, schedule: null, scheduleId: null, retention: { keepDaily: 7 }, paused: false });

    const dup = await problem(await call("POST", "/v1/plans", { name: "docs", repositoryId, source: { type: "files", paths: ["/srv"] } }), 409);
    expect(dup.detail).toMatch(/another name/);

    const patched = await call("PATCH", `/v1/plans/${id}`, { retention: null, verifySamplePercent: 5 });
    expect(await patched.json()).toMatchObject({ retention: null, verifySamplePercent: 5, name: "docs" });

    const pause = await problem(await call("POST", `/v1/plans/${id}/pause`), 409);
    expect(pause.detail).toMatch(/PATCH \/v1\/plans/);

    const listed = (await (await call("GET", "/v1/plans")).json()) as { plans: { id: string }[] };
    expect(listed.plans.map((p) => p.id)).toContain(id);

    expect((await call("DELETE", `/v1/plans/${id}`)).status).toBe(204);
    await problem(await call("GET", `/v1/plans/${id}`), 404);
  });
});

describe("alerts and quotas", () => {
  const spec = { kind: "drill_failed" as const, severity: "critical" as const, title: "Drill of plan www failed", detail: "restore did not start", dedupeKey: "drill_failed:plan:p0", planId: "p0" };

  it("deduplicates while unresolved, counts occurrences, and opens a new alert after resolution", async () => {
    const first = await raiseAlert(catalog.db, spec);
    expect(first.opened).toBe(true);
    const again = await raiseAlert(catalog.db, { ...spec, detail: "restore timed out" });
    expect(again.opened).toBe(false);
    expect(again.alert.id).toBe(first.alert.id);
    expect(again.alert.occurrences).toBe(2);
    expect(again.alert.detail).toBe("restore timed out");

    expect((await acknowledgeAlert(catalog.db, first.alert.id, "t1 (ops)"))?.state).toBe("acknowledged");
    expect(await acknowledgeAlert(catalog.db, first.alert.id, "t1 (ops)")).toBeUndefined();
    expect((await raiseAlert(catalog.db, spec)).alert.id).toBe(first.alert.id);

    expect(await resolveAlert(catalog.db, spec.dedupeKey, "drill passed")).toBe(true);
    expect(await resolveAlert(catalog.db, spec.dedupeKey, "drill passed")).toBe(false);
    const next = await raiseAlert(catalog.db, spec);
    expect(next.opened).toBe(true);
    expect(next.alert.id).not.toBe(first.alert.id);
  });

  it("evaluates each finished job once, in order: a failure opens backup_failed, a later success resolves it and keeps the usage", async () => {
    const db = catalog.db;
    await db.insert(repositories).values({ id: "alerts-r1", name: "alerts-main", url: "/srv/alerts-r1", sealedPassword: "x", quotaBytes: 1000 });
    await db.insert(plans).values({ id: "alerts-p1", name: "alerts-www", repositoryId: "alerts-r1", source: { type: "files", paths: ["/srv/www"] } });
    const job = (id: string, status: "failed" | "completed", at: string) => ({
      id,
      runId: "r",
      kind: "backup" as const,
      planId: "alerts-p1",
      status,
      phase: "done" as const,
      progress: { filesDone: 0, bytesDone: 0, bytesTotal: 0, bytesPerSecond: 0, etaSeconds: null },
      startedAt: new Date(at),
      finishedAt: new Date(at),
      error: status === "failed" ? "source unreadable" : null,
      result:
        status === "completed"
          ? { snapshotId: "s", filesNew: 1, filesChanged: 0, filesUnmodified: 0, bytesProcessed: 10, bytesAdded: 10, bytesStored: 10, durationSeconds: 1, warnings: [], snapshotsRemoved: 0, repositoryStats: { snapshots: 1, packs: 1, packBytes: 850 } }
          : null,
    });
    await db.insert(jobs).values(job("backup-alerts-p1-1", "failed", "2026-01-01T00:00:00Z"));
    expect(await evaluateFinishedJobs(db)).toBe(1);
    expect(await evaluateFinishedJobs(db)).toBe(0);
    const [failed] = await db.select().from(alerts).where(eq(alerts.dedupeKey, "backup_failed:plan:alerts-p1"));
    expect(failed).toMatchObject({ state: "open", kind: "backup_failed", planId: "alerts-p1" });
    expect(failed.detail).toContain("source unreadable");

    await db.insert(jobs).values(job("backup-alerts-p1-2", "completed", "2026-01-02T00:00:00Z"));
    expect(await evaluateFinishedJobs(db)).toBe(1);
    const [after] = await db.select().from(alerts).where(eq(alerts.id, failed.id));
    expect(after.state).toBe("resolved");
    expect(after.resolution).toContain("backup-alerts-p1-2");
    expect(await db.select({ bytes: repositoryUsage.bytes }).from(repositoryUsage).where(eq(repositoryUsage.repositoryId, "alerts-r1"))).toEqual([{ bytes: 850 }]);

    // 850 of 1000 bytes: nearly full; the quota raised to 2000: cleared.
    await evaluatePeriodic(db, new Date("2026-01-02T01:00:00Z"));
    const [full] = await db.select().from(alerts).where(eq(alerts.dedupeKey, "storage_nearly_full:repository:alerts-r1"));
    expect(full).toMatchObject({ state: "open", severity: "warning", repositoryId: "alerts-r1" });
    await db.update(repositories).set({ quotaBytes: 2000 }).where(eq(repositories.id, "alerts-r1"));
    await evaluatePeriodic(db, new Date("2026-01-02T01:00:00Z"));
    expect((await db.select().from(alerts).where(eq(alerts.id, full.id)))[0].state).toBe("resolved");
  });

  it("lists alerts by state, acknowledges an open one once, and refuses a resolved or unknown one", async () => {
    const { alert } = await raiseAlert(catalog.db, { kind: "drill_failed", severity: "critical", title: "Drill failed", detail: "the restore did not verify", dedupeKey: "drill_failed:app-test" });
    const open = (await (await call("GET", "/v1/alerts?state=open")).json()) as { alerts: { id: string; state: string }[] };
    expect(open.alerts).toContainEqual(expect.objectContaining({ id: alert.id, state: "open" }));
    const acked = await call("POST", `/v1/alerts/${alert.id}/ack`);
    expect(acked.status).toBe(200);
    expect(await acked.json()).toMatchObject({ id: alert.id, state: "acknowledged", acknowledgedBy: expect.stringContaining("CAIRN_API_TOKEN") });
    expect((await problem(await call("POST", `/v1/alerts/${alert.id}/ack`), 409)).detail).toContain("already acknowledged");
    await resolveAlert(catalog.db, "drill_failed:app-test", "the next drill passed");
    expect((await problem(await call("POST", `/v1/alerts/${alert.id}/ack`), 409)).detail).toContain("the next drill passed");
    await problem(await call("POST", "/v1/alerts/0123456789abcdef/ack"), 404);
    await problem(await call("GET", "/v1/alerts?state=closed"), 400);
  });

  it("sets, shows and removes a repository's quota; refuses a quota that is not a positive whole number", async () => {
    const id = await registerRepository("quota");
    const set = await call("PATCH", `/v1/repositories/${id}`, { quotaBytes: 1 << 30 });
    expect(set.status).toBe(200);
    expect(await set.json()).toMatchObject({ id, quotaBytes: 1 << 30, usage: null });
    expect((await problem(await call("PATCH", `/v1/repositories/${id}`, { quotaBytes: -5 }), 400)).errors?.[0].path).toBe("quotaBytes");
    expect(await (await call("PATCH", `/v1/repositories/${id}`, { quotaBytes: null })).json()).toMatchObject({ quotaBytes: null });
  });
});

describe("/openapi.json", () => {
  it("documents every route the app serves, with its security and error responses", async () => {
    const doc = (await (await app.request("/openapi.json")).json()) as {
      paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown> }>>;
      components: { securitySchemes: Record<string, unknown> };
    };
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
    // Besides the API, the app serves the dashboard's static shell (api/web.test.ts covers it) and
    // the one-time addresses workers stream downloads to (no token: a secret of the download's own,
    // not a route for clients; test/snapshot-browse-e2e covers it).
    const shell: readonly string[] = WEB_SHELL_PATHS;
    const served = app.routes
      .filter((r) => r.method !== "ALL" && r.path !== "/openapi.json" && !shell.includes(r.path) && r.path !== `${UPLOAD_PATH}/:secret`)
      .map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, "{$1}")}`);
    expect(new Set(documented)).toEqual(new Set(served));
    for (const route of [
      "POST /v1/repositories", "GET /v1/repositories", "POST /v1/plans", "GET /v1/plans/{id}", "PATCH /v1/plans/{id}", "DELETE /v1/plans/{id}",
      "POST /v1/plans/{id}/run", "POST /v1/plans/{id}/pause", "POST /v1/plans/{id}/resume", "POST /v1/plans/{id}/trigger",
      "GET /v1/jobs", "GET /v1/jobs/{id}", "POST /v1/jobs/{id}/cancel", "GET /v1/snapshots", "POST /v1/restores", "GET /healthz", "GET /readyz",
    ]) {
      expect(documented).toContain(route);
    }
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    for (const [p, ops] of Object.entries(doc.paths)) {
      for (const op of Object.values(ops)) {
        if (p.startsWith("/v1/") || p === "/metrics") {
          expect(op.security, p).toEqual([{ bearer: [] }, { session: [] }]);
          expect(op.responses, p).toHaveProperty("401");
        } else expect(op.security, p).toEqual([]);
      }
    }
  });
});

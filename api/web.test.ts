import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { Client, Connection } from "@temporalio/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCatalog, type OpenCatalog } from "../db/client.js";
import { apiTokens, auditEvents } from "../db/schema.js";
import { gt } from "drizzle-orm";
import { SecretBox } from "../engine/secret-box.js";
import { WEB_TYPES_FILE, webTypes } from "../scripts/web-types.js";
import { tempDir } from "../test/helpers.js";
import { seedCatalog } from "../test/catalog-template.js";
import { inProcessWorkers, testPolicy } from "../test/policy-fixtures.js";
import { createApp } from "./app.js";
import { hashToken } from "./auth.js";
import { ROLES } from "./permissions.js";
import { Sessions } from "./sessions.js";
import { DASHBOARD_CSP } from "./web.js";

// Nothing listens on port 1: the dashboard's files and GET /v1/session need no Temporal.
const ADMIN = "test-admin-token";
const scratch = tempDir("cairn-web-");
const webDir = path.join(scratch.dir, "web");
let catalog: OpenCatalog;
let connection: Connection;

function app(dir = webDir) {
  const policy = testPolicy(scratch.dir, path.join(scratch.dir, "data"));
  const secretBox = new SecretBox(SecretBox.generateKey());
  return createApp({ catalog: catalog.db, temporal: new Client({ connection }), secretBox, adminToken: ADMIN, policy, workers: inProcessWorkers(secretBox, policy), webDir: dir });
}

beforeAll(async () => {
  await seedCatalog(scratch.dir);
  catalog = await openCatalog({ dataDir: scratch.dir });
  connection = Connection.lazy({ address: "127.0.0.1:1" });
  mkdirSync(path.join(webDir, "assets"), { recursive: true });
  writeFileSync(path.join(webDir, "index.html"), "<!doctype html><title>Cairn</title>");
  writeFileSync(path.join(webDir, "assets", "app.js"), "console.log('cairn')");
  writeFileSync(path.join(webDir, "assets", "app.css"), "body{}");
  writeFileSync(path.join(webDir, "assets", "notes.txt"), "not a dashboard file type");
  writeFileSync(path.join(scratch.dir, "secret.txt"), "outside the web directory");
});
afterAll(async () => {
  await connection?.close();
  await catalog?.close();
  scratch.cleanup();
});

describe("the dashboard's static files", () => {
  it("serves the shell and its assets without a token, with their types and a strict Content-Security-Policy", async () => {
    const a = app();
    for (const [url, type, text] of [
      ["/", "text/html; charset=utf-8", "<title>Cairn</title>"],
      ["/assets/app.js", "text/javascript; charset=utf-8", "console.log"],
      ["/assets/app.css", "text/css; charset=utf-8", "body{}"],
    ] as const) {
      const res = await a.request(url);
      expect(res.status, url).toBe(200);
      expect(res.headers.get("content-type"), url).toBe(type);
      expect(await res.text(), url).toContain(text);
      expect(res.headers.get("content-security-policy"), url).toBe(DASHBOARD_CSP);
      expect(res.headers.get("x-content-type-options"), url).toBe("nosniff");
      expect(res.headers.get("x-frame-options"), url).toBe("DENY");
    }
    expect(DASHBOARD_CSP).toMatch(/script-src 'self'(;|$)/);
    expect(DASHBOARD_CSP).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
  });

  it("serves no file but those of the build: no traversal, no other type, no directory listing", async () => {
    const a = app();
    for (const url of ["/assets/../../secret.txt", "/assets/..%2f..%2fsecret.txt", "/assets/%2e%2e/secret.txt", "/assets/notes.txt", "/assets/", "/assets", "/index.html/../../secret.txt", "/secret.txt"]) {
      const res = await a.request(url);
      expect(res.status, url).toBe(404);
      expect(await res.text(), url).not.toContain("outside the web directory");
    }
  });

  it("says how to build the dashboard when its files are missing, and the API still works", async () => {
    const a = app(path.join(scratch.dir, "not-built"));
    const res = await a.request("/");
    expect(res.status).toBe(503);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/npm run build/);
    expect((await a.request("/healthz")).status).toBe(200);
  });
});

describe("the dashboard's API types", () => {
  it("are generated from this API's OpenAPI document and current (npm run build refreshes them; commit web/src/api-types.ts)", async () => {
    const doc = await (await app().request("/openapi.json")).json();
    expect(readFileSync(WEB_TYPES_FILE, "utf8")).toBe(webTypes(doc as Parameters<typeof webTypes>[0]));
  });
});

describe("GET /v1/session", () => {
  it("tells each role who it is and what it holds, and refuses no token", async () => {
    const a = app();
    expect((await a.request("/v1/session")).status).toBe(401);
    const env = await a.request("/v1/session", { headers: { Authorization: `Bearer ${ADMIN}` } });
    expect(await env.json()).toMatchObject({ tokenId: "env", role: "admin", scope: null, expiresAt: null });
    for (const role of ["viewer", "auditor"] as const) {
      const secret = `token-of-${role}`;
      await catalog.db.insert(apiTokens).values({ id: `id-${role}`, name: `${role}-token`, tokenHash: hashToken(secret), role, scope: role === "viewer" ? { planIds: ["p1"] } : null });
      const res = await a.request("/v1/session", { headers: { Authorization: `Bearer ${secret}` } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { name: string; role: string; permissions: string[]; scope: unknown };
      expect(body).toMatchObject({ name: `${role}-token`, role, scope: role === "viewer" ? { planIds: ["p1"] } : null });
      expect(body.permissions.sort()).toEqual([...ROLES[role]].sort());
    }
  });
});

describe("dashboard sessions (POST/DELETE /v1/session)", () => {
  const signIn = (a: ReturnType<typeof app>, token: string, headers: Record<string, string> = {}) =>
    a.request("/v1/session", { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify({ token }) });
  const cookieOf = (res: Response) => /^cairn_session=([^;]+)/.exec(res.headers.get("set-cookie") ?? "")?.[1];

  it("exchanges a token for an HttpOnly, SameSite=Strict cookie that is not the token, Secure over https", async () => {
    const a = app();
    const res = await signIn(a, ADMIN);
    expect(res.status).toBe(200);
    const set = res.headers.get("set-cookie")!;
    expect(set).toMatch(/^cairn_session=[\w-]{40,}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=28800$/);
    expect(set).not.toContain(ADMIN);
    expect(set).not.toContain(hashToken(ADMIN));
    const body = (await res.json()) as { role: string; session: { idleExpiresAt: string; expiresAt: string } };
    expect(body.role).toBe("admin");
    expect(Date.parse(body.session.expiresAt) - Date.parse(body.session.idleExpiresAt)).toBeGreaterThan(7 * 3600_000);
    // Over https (directly or through a proxy that says so) the cookie is Secure too.
    expect((await a.request("https://cairn.example/v1/session", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: ADMIN }) })).headers.get("set-cookie")).toMatch(/; Secure$/);
    expect((await signIn(a, ADMIN, { "X-Forwarded-Proto": "https" })).headers.get("set-cookie")).toMatch(/; Secure$/);
    // A wrong token gets no cookie, and the audit log keeps no token.
    const wrong = await signIn(a, "cairn_wrong");
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("set-cookie")).toBeNull();
  });

  it("authenticates requests by the cookie, wants the CSRF header and the same origin on changes, and ends on sign-out", async () => {
    const a = app();
    const cookie = `cairn_session=${cookieOf(await signIn(a, ADMIN))}`;
    const me = await a.request("/v1/session", { headers: { Cookie: cookie } });
    expect(me.status).toBe(200);
    expect(((await me.json()) as { session: unknown }).session).not.toBeNull();
    // A change without X-Cairn-CSRF, or from another origin, is refused before it runs.
    const noHeader = await a.request("/v1/tokens", { method: "POST", headers: { Cookie: cookie, "Content-Type": "application/json" }, body: JSON.stringify({ name: "x", role: "viewer" }) });
    expect(noHeader.status).toBe(403);
    expect(((await noHeader.json()) as { detail: string }).detail).toContain("X-Cairn-CSRF");
    const crossSite = await a.request("http://localhost/v1/tokens", { method: "POST", headers: { Cookie: cookie, Host: "localhost", Origin: "https://evil.example", "X-Cairn-CSRF": "1", "Content-Type": "application/json" }, body: JSON.stringify({ name: "x", role: "viewer" }) });
    expect(crossSite.status).toBe(403);
    const sameSite = await a.request("http://localhost/v1/tokens", { method: "POST", headers: { Cookie: cookie, Host: "localhost", Origin: "http://localhost", "X-Cairn-CSRF": "1", "Content-Type": "application/json" }, body: JSON.stringify({ name: "made-by-cookie", role: "viewer" }) });
    expect(sameSite.status).toBe(201);
    // A bearer token needs neither (other clients are unchanged).
    expect((await a.request("/v1/tokens", { method: "POST", headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" }, body: JSON.stringify({ name: "y", role: "viewer" }) })).status).toBe(201);

    const out = await a.request("/v1/session", { method: "DELETE", headers: { Cookie: cookie, "X-Cairn-CSRF": "1" } });
    expect(out.status).toBe(204);
    expect(out.headers.get("set-cookie")).toMatch(/^cairn_session=; Path=\/; HttpOnly; SameSite=Strict; Max-Age=0/);
    const after = await a.request("/v1/session", { headers: { Cookie: cookie } });
    expect(after.status).toBe(401);
    expect(((await after.json()) as { detail: string }).detail).toMatch(/session ended/);
    // Signing out needs a session: a bearer token is not one.
    expect((await a.request("/v1/session", { method: "DELETE", headers: { Authorization: `Bearer ${ADMIN}` } })).status).toBe(409);
  });

  it("audits sign-in, sign-out and a wrong token, but not the page load's probe of whether a session exists", async () => {
    const a = app();
    const events = async (after: number) => (await catalog.db.select().from(auditEvents).where(gt(auditEvents.seq, after)).orderBy(auditEvents.seq)).map((e) => `${e.action} ${e.resource} ${e.outcome}`);
    const last = async () => Math.max(0, ...(await catalog.db.select({ seq: auditEvents.seq }).from(auditEvents)).map((e) => e.seq));
    let mark = await last();
    // Ten page loads signed out: the probe is answered 401 each time and leaves nothing in the log.
    for (let i = 0; i < 10; i++) expect((await a.request("/v1/session")).status).toBe(401);
    expect(await events(mark)).toEqual([]);

    const cookie = `cairn_session=${cookieOf(await signIn(a, ADMIN))}`;
    expect(await events(mark)).toEqual(["signIn session attempted", "signIn session succeeded"]);
    mark = await last();
    expect((await a.request("/v1/session", { headers: { Cookie: cookie } })).status).toBe(200);
    expect((await a.request("/v1/session", { method: "DELETE", headers: { Cookie: cookie, "X-Cairn-CSRF": "1" } })).status).toBe(204);
    expect(await events(mark)).toEqual(["signOut session attempted", "signOut session succeeded"]);
    mark = await last();
    // The ended session's cookie on the next page load: no attempt either.
    expect((await a.request("/v1/session", { headers: { Cookie: cookie } })).status).toBe(401);
    expect(await events(mark)).toEqual([]);
    // A wrong bearer token is an attempt to authenticate, on this route as on any other.
    expect((await a.request("/v1/session", { headers: { Authorization: "Bearer cairn_wrong" } })).status).toBe(401);
    expect((await a.request("/v1/plans")).status).toBe(401);
    expect(await events(mark)).toEqual(["request session denied", "request plans denied"]);
  });

  it("ends the sessions of a revoked token, and a session idle too long or too old", async () => {
    const a = app();
    const secret = "token-of-a-revoked-operator";
    await catalog.db.insert(apiTokens).values({ id: "id-revoked", name: "soon-revoked", tokenHash: hashToken(secret), role: "operator" });
    const cookie = `cairn_session=${cookieOf(await signIn(a, secret))}`;
    expect((await a.request("/v1/plans", { headers: { Cookie: cookie } })).status).toBe(200);
    expect((await a.request("/v1/tokens/id-revoked", { method: "DELETE", headers: { Authorization: `Bearer ${ADMIN}` } })).status).toBe(204);
    const refused = await a.request("/v1/plans", { headers: { Cookie: cookie } });
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { detail: string }).detail).toContain("revoked");

    let now = 1_000_000;
    const sessions = new Sessions({ idleMs: 1000, maxMs: 5000, maxSessions: 2 }, () => now);
    const s1 = sessions.create("h1");
    now += 999;
    expect(sessions.touch(s1)).toBeDefined();
    now += 1000;
    expect(sessions.touch(s1)).toBeUndefined(); // idle 1000 ms
    const s2 = sessions.create("h2");
    for (let i = 0; i < 5; i++) {
      now += 900;
      expect(sessions.touch(s2), `after ${(i + 1) * 900} ms`).toBeDefined();
    }
    now += 500;
    expect(sessions.touch(s2)).toBeUndefined(); // 5000 ms since sign-in, however busy
    const [x, y, z] = [sessions.create("a"), sessions.create("b"), sessions.create("c")];
    expect([sessions.touch(x), sessions.touch(y), sessions.touch(z)].map(Boolean)).toEqual([false, true, true]); // at most 2 kept
  });
});

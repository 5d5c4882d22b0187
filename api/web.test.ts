import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { Client, Connection } from "@temporalio/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCatalog, type OpenCatalog } from "../db/client.js";
import { apiTokens } from "../db/schema.js";
import { SecretBox } from "../engine/secret-box.js";
import { tempDir } from "../test/helpers.js";
import { inProcessWorkers, testPolicy } from "../test/policy-fixtures.js";
import { createApp } from "./app.js";
import { hashToken } from "./auth.js";
import { ROLES } from "./permissions.js";
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

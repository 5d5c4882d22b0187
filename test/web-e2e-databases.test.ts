import * as path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildWeb } from "../scripts/build-web.js";
import { apiClient } from "./api-client.js";
import { launchChromium, openTab, screenshots, signIn as signInAt } from "./browser.js";
import { PASSWORD } from "./helpers.js";
import { BACKUP_PASSWORD, initMariaDb, mysqlTempDir, serverAt, type MariaDb } from "./mysql.js";
import { testPolicy } from "./policy-fixtures.js";
import { startStack, type Stack } from "./stack.js";


/**
 * The Databases page's binary log archiver controls in Chromium, against a real
 * stack (test/stack.ts) and a real MariaDB server (test/mysql.ts): an admin creates
 * a physical MySQL / MariaDB plan in the editor, starts its archiver from the
 * Databases page, watches it stream the server's
 * log with its lag, and stops it; a spool directory the execution policy refuses is
 * said in the form; a viewer sees its state but no Start or Stop, and the API
 * refuses them forged. Then the API restarts, which ends every dashboard session:
 * the open page returns to sign-in with the API's reason.
 */
describe("dashboard: MySQL / MariaDB binary log archiver, and a session that ended", () => {
  const tmp = mysqlTempDir("cairn-web-databases-");
  const dataDir = path.join(tmp.dir, "data");
  const spoolDir = path.join(tmp.dir, "spool");
  const { shot } = screenshots("web-e2e-databases");
  let stack: Stack;
  let db: MariaDb;
  let browser: Browser;
  let webDir: string;
  let adminToken: string;
  let admin: ReturnType<typeof apiClient>;
  let viewer: { id: string; token: string };
  let planId: string;

  beforeAll(async () => {
    db = await initMariaDb(tmp.dir);
    webDir = await buildWeb(path.join(tmp.dir, "web"));
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, api: { webDir } });
    adminToken = stack.api.token!;
    admin = apiClient(stack.api);
    await admin.ok<{ id: string }>("POST", "/v1/repositories", { name: "maria", url: path.join(tmp.dir, "repo"), password: PASSWORD });
    viewer = await admin.ok<{ id: string; token: string }>("POST", "/v1/tokens", { name: "wall-screen", role: "viewer" });
    browser = await launchChromium();
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    if (planId) await admin?.call("DELETE", `/v1/plans/${planId}/binlog-archiver`).catch(() => undefined);
    await stack?.close();
    await db?.destroy();
    tmp.cleanup();
  });

  const tab = (width?: number, height?: number) => openTab(browser, [401, 403, 404], width, height);
  const signIn = (page: Page, token: string, at = "/") => signInAt(page, token, `${stack.api.url}${at}`);

  it("creates a physical MariaDB plan in the editor, starts its archiver from the Databases page, shows it streaming with its lag, and stops it", async () => {
    const { page, problems } = await tab();
    // The plan, from the editor: a physical MySQL / MariaDB source with its password (sealed; the archiver connects with it).
    await signIn(page, adminToken, "/#/plans/new");
    await page.fill("#plan-name", "shop-maria");
    await page.selectOption("#plan-source", "mysql-physical");
    await page.fill("#plan-db-url", db.url);
    await page.fill("#plan-db-password", BACKUP_PASSWORD);
    await page.uncheck("#plan-scheduled");
    await shot(page, "00-plan-editor-mariadb");
    await page.click("#save-plan");
    await page.waitForURL(/#\/plans\/[0-9a-f]{16}$/);
    planId = new URL(page.url()).hash.replace("#/plans/", "");
    expect(await admin.ok<{ source: unknown }>("GET", `/v1/plans/${planId}`)).toMatchObject({ source: { type: "mysql", mode: "physical", url: db.url, passwordStored: true } });

    await page.click("nav >> text=Databases");
    const card = page.locator('section.database[data-plan="shop-maria"]');
    await card.locator(".archiver-none").waitFor();
    await shot(page, "01-archiver-not-running");

    // A spool directory outside the restore roots: the API's refusal, in place; nothing started.
    const form = card.locator("form.archiver-form");
    await form.locator(".archiver-spool").fill("/var/lib/cairn-elsewhere/spool");
    await form.locator("button[type=submit]").click();
    await card.locator(".archiver-part .problem", { hasText: "spoolDir" }).waitFor();
    expect((await admin.call("GET", `/v1/plans/${planId}/binlog-archiver`)).status).toBe(404);

    await form.locator(".archiver-spool").fill(spoolDir);
    await form.locator(".archiver-interval").fill("1");
    await form.locator("button[type=submit]").click();
    // The page follows the archiver (every 5 s) until it streams and holds what the server wrote.
    await db.sql("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); INSERT INTO app.t VALUES (1), (2), (3)");
    const written = await serverAt(db);
    await card.locator('.archiver-phase[data-phase="streaming"]').waitFor({ timeout: 120_000 });
    await card.locator(".archiver-archived", { hasText: `${written.file}:` }).waitFor({ timeout: 120_000 });
    const status = await admin.ok<{ running: boolean; serverFile: string; archivedFile: string; spoolDir: string; intervalSeconds: number }>("GET", `/v1/plans/${planId}/binlog-archiver`);
    expect(status).toMatchObject({ running: true, serverFile: written.file, archivedFile: written.file, spoolDir, intervalSeconds: 1 });
    await card.locator(".archiver-lag", { hasText: /behind by|none: the repository holds|lag not measured/ }).waitFor();
    expect(await card.locator("button.stop-archiver").isEnabled()).toBe(true);
    await shot(page, "02-archiver-streaming");

    await page.setViewportSize({ width: 390, height: 844 });
    await card.locator(".archiver-phase").waitFor();
    await shot(page, "03-archiver-phone");
    await page.setViewportSize({ width: 1280, height: 800 });

    await card.locator("button.stop-archiver").click();
    await card.locator('.archiver-phase[data-phase="stopped"]').waitFor({ timeout: 120_000 });
    expect((await admin.ok<{ running: boolean; phase: string }>("GET", `/v1/plans/${planId}/binlog-archiver`)).phase).toBe("stopped");
    // Stopped, the form offers a new start with the same spool directory.
    expect(await card.locator("form.archiver-form .archiver-spool").inputValue()).toBe(spoolDir);
    await shot(page, "04-archiver-stopped");
    expect(problems).toEqual([]);
    await page.context().close();
  }, 300_000);

  it("shows a viewer the archiver's state without Start or Stop, and the API refuses them forged", async () => {
    const { page, problems } = await tab();
    await signIn(page, viewer.token, "/#/databases");
    const card = page.locator('section.database[data-plan="shop-maria"]');
    await card.locator('.archiver-phase[data-phase="stopped"]').waitFor();
    expect(await card.locator("form.archiver-form, button.stop-archiver").count()).toBe(0);
    await shot(page, "05-viewer-archiver");
    const forged = await page.evaluate(async ({ id, spool }) => {
      const send = async (method: string, body?: unknown) => {
        const res = await fetch(`/v1/plans/${id}/binlog-archiver`, { method, headers: { "X-Cairn-CSRF": "1", ...(body ? { "Content-Type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined });
        return { status: res.status, detail: ((await res.json()) as { detail: string }).detail };
      };
      return [await send("POST", { spoolDir: spool }), await send("DELETE")];
    }, { id: planId, spool: spoolDir });
    expect(forged.map((f) => f.status)).toEqual([403, 403]);
    expect(forged.every((f) => f.detail.includes("plans:run"))).toBe(true);
    expect(problems).toEqual([]);
    await page.context().close();
  }, 120_000);

  it("returns an open page to sign-in, with the API's reason, once its session has ended", async () => {
    const { page, problems } = await tab();
    await signIn(page, adminToken, "/#/jobs");
    await page.locator("#jobs").waitFor();
    // Sessions live in the API process: a restart ends them all, as expiry does (the same 401 and sentence).
    const port = Number(new URL(stack.api.url).port);
    await stack.startApi({ webDir, port });
    await page.click("nav >> text=Plans");
    await page.locator("#signin-message", { hasText: "session ended" }).waitFor();
    await shot(page, "06-session-ended");
    expect(await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie])).toEqual([0, 0, ""]);
    // Signing in again works on the same page.
    await page.fill("#token", adminToken);
    await page.click("form.signin button[type=submit]");
    await page.locator("#plans .plan-name", { hasText: "shop-maria" }).waitFor();
    expect(problems).toEqual([]);
    await page.context().close();
  }, 120_000);
});

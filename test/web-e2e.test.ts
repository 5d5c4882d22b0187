import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiServer } from "../api/server.js";
import { buildWeb } from "../scripts/build-web.js";
import { apiClient } from "./api-client.js";
import { launchChromium, openTab, screenshots, signIn } from "./browser.js";
import { PASSWORD, tempDir } from "./helpers.js";
import { testPolicy } from "./policy-fixtures.js";
import { startStack, type Stack } from "./stack.js";

/**
 * The dashboard in a real browser against a real stack (Temporal dev server,
 * worker, API serving the built dashboard): an admin signs in (a session cookie,
 * no token kept in the browser), runs a plan, watches the job finish, finds its
 * snapshot and restores it, signs out; a viewer is not offered what its role may
 * not do, and the API refuses it when forged.
 */
describe("web dashboard in Chromium", () => {
  const tmp = tempDir("cairn-web-e2e-");
  const dataDir = path.join(tmp.dir, "data");
  const src = path.join(tmp.dir, "docs");
  const { shot } = screenshots("web-e2e");
  let stack: Stack;
  let api: ApiServer;
  let browser: Browser;
  let admin: ReturnType<typeof apiClient>;
  let planId: string;
  let viewer: { id: string; token: string };

  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger("WARN") });
    mkdirSync(path.join(src, "sub"), { recursive: true });
    writeFileSync(path.join(src, "readme.txt"), "the dashboard restored me\n");
    writeFileSync(path.join(src, "sub", "data.bin"), Buffer.alloc(300_000, 7));
    const webDir = await buildWeb(path.join(tmp.dir, "web"));
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, api: { webDir } });
    api = stack.api;
    admin = apiClient(api);
    viewer = await admin.ok<{ id: string; token: string }>("POST", "/v1/tokens", { name: "wall-screen", role: "viewer" });
    browser = await launchChromium();
  }, 300_000); // building the dashboard and starting Chromium: minutes on a busy machine

  afterAll(async () => {
    await browser?.close();
    await stack?.close();
    tmp.cleanup();
  });

  /** A fresh tab at 1280x800; 401, 403 and 409 are the refusals these tests provoke. */
  const tab = () => openTab(browser, [401, 403, 409]);

  /** Waits for the job page to show a finished job (the page polls the API while the job runs); a screenshot shows where it stood if it never does. */
  async function jobFinished(page: Page, name: string): Promise<string> {
    const done = page.locator("#job-status", { hasText: /completed|failed|cancelled/ });
    await done.waitFor({ timeout: 180_000 }).finally(() => shot(page, name));
    return (await done.textContent()) ?? "";
  }

  it("serves the shell without a token, under a strict Content-Security-Policy", async () => {
    const res = await fetch(`${api.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("content-security-policy")).toMatch(/script-src 'self';/);
    expect(await res.text()).not.toMatch(/<script>|<script [^>]*>[^<]/);
  });

  it("signs an admin in, runs the plan, follows the job to its snapshot and restores it", async () => {
    const { page, problems, urls } = await tab();
    await page.goto(`${api.url}/`);
    await page.locator("#token").waitFor();
    await shot(page, "01-sign-in");

    await page.fill("#token", "cairn_not-a-real-token");
    await page.click("form.signin button[type=submit]");
    await page.locator("#signin-message", { hasText: "not known" }).waitFor();

    await signIn(page, api.token!);
    expect(await page.textContent("#who")).toContain("admin");
    await page.locator("#status", { hasText: "API ready" }).waitFor();

    // Register a repository (created, since the location is empty), with a quota of 1 GiB.
    await page.click("nav >> text=Repositories");
    await page.locator("#repositories .empty").waitFor();
    await page.fill("#repository-name", "local");
    await page.fill("#repository-url", path.join(tmp.dir, "repo"));
    await page.fill("#repository-password", PASSWORD);
    await page.fill("#repository-quota", "1");
    await page.click("#repository-form button[type=submit]");
    await page.locator('#repositories a.repository-name[data-repository="local"]').waitFor();
    expect(await page.inputValue("#repository-password")).toBe("");
    const [registered] = (await admin.ok<{ repositories: { id: string; name: string; quotaBytes: number }[] }>("GET", "/v1/repositories")).repositories;
    expect(registered).toMatchObject({ name: "local", quotaBytes: 1024 ** 3 });
    expect(existsSync(path.join(tmp.dir, "repo", "config"))).toBe(true);
    // Its limits, changed in place: two jobs at once, the quota kept.
    const limits = page.locator('form[data-repository="local"]');
    await page.click("details.repository-limits summary");
    expect(await limits.locator(".limit-quota").inputValue()).toBe("1");
    await limits.locator(".limit-jobs").fill("2");
    await limits.locator("button[type=submit]").click();
    await page.locator(".notices", { hasText: "Limits of local saved" }).waitFor();
    expect((await admin.ok<{ quotaBytes: number; maxConcurrentJobs: number }>("GET", `/v1/repositories/${registered.id}`))).toMatchObject({ quotaBytes: 1024 ** 3, maxConcurrentJobs: 2 });
    await page.locator("#repositories td", { hasText: /^2$/ }).waitFor();
    await shot(page, "02a-repositories");

    // Create the plan in the editor: the folder picked under the policy's source root, run on demand.
    await page.click("nav >> text=Plans");
    await page.click("#new-plan");
    await page.fill("#plan-name", "docs");
    await page.selectOption("#plan-repository", registered.id);
    await page.fill("#path-rest", "docs");
    await page.click("#add-path");
    await page.uncheck("#plan-scheduled");
    await page.click("#save-plan");
    await page.waitForURL(/#\/plans\/[0-9a-f]{16}$/);
    planId = new URL(page.url()).hash.replace("#/plans/", "");
    expect(await admin.ok<{ source: unknown; schedule: unknown }>("GET", `/v1/plans/${planId}`)).toMatchObject({ source: { type: "files", paths: [src] }, schedule: null });
    await page.click("nav >> text=Overview");
    await page.locator("#plan-health a", { hasText: "docs" }).waitFor();
    await shot(page, "02-overview");

    // Analytics before any backup: the duration chart has no point yet.
    await page.click("nav >> text=Analytics");
    await page.locator("p#chart-duration", { hasText: "no data yet" }).waitFor();

    await page.click("nav >> text=Plans");
    const run = page.locator('button.run-plan[data-plan="docs"]');
    expect(await run.isEnabled()).toBe(true);
    await shot(page, "03-plans");
    await run.click();
    await page.waitForURL(/#\/jobs\/backup-/);
    const jobId = decodeURIComponent(new URL(page.url()).hash.replace("#/jobs/", ""));
    expect(await jobFinished(page, "04-backup-job"), (await page.textContent("#job")) ?? "").toBe("completed");
    const job = await admin.ok<{ snapshotId: string; planId: string }>("GET", `/v1/jobs/${jobId}`);
    expect(job.planId).toBe(planId);
    expect(await page.textContent("#job-snapshot")).toBe(job.snapshotId.slice(0, 8));
    // The finished job's steps and log (kept in the catalog once it finished).
    await page.locator("#job-steps tbody tr").first().waitFor({ timeout: 30_000 });
    expect(await page.locator("#job-steps tbody tr", { hasText: "completed" }).count()).toBeGreaterThan(0);
    expect(await page.locator("#job-log li").count()).toBeGreaterThan(0);
    await shot(page, "04a-backup-job-steps-log");
    expect(await page.locator("#retry-job").count()).toBe(0);

    await page.click("nav >> text=Jobs");
    await page.locator("#jobs a", { hasText: jobId }).waitFor();
    await shot(page, "05-jobs");

    // The overview now has the plan's last backup, what it added, its snapshot, its repository against the quota, and today green.
    await page.click("nav >> text=Overview");
    const planRow = page.locator("#plan-health tr", { has: page.locator('a[data-plan="docs"]') });
    await planRow.locator(".last-backup .status-completed").waitFor();
    await planRow.locator('a.snapshot-count[data-count="1"]').waitFor({ timeout: 60_000 });
    expect(await planRow.locator(".last-added").textContent()).toMatch(/KiB|MiB/);
    expect(await planRow.locator(".storage").textContent()).toMatch(/of 1\.00 GiB \(0%\)$/);
    expect(await planRow.locator(".rpo-none").textContent()).toBe("none");
    expect(await planRow.locator(".outcome-strip .day").count()).toBe(30);
    expect(await planRow.locator(".outcome-strip .day").last().getAttribute("data-state")).toBe("ok");
    await shot(page, "05a-overview-after-backup");
    await page.goto(`${api.url}/#/jobs/${encodeURIComponent(jobId)}`);
    await page.locator("#job-snapshot").waitFor();

    await page.click("#job-snapshot");
    const row = page.locator("#snapshots tr", { has: page.locator(`.snapshot-id[title="${job.snapshotId}"]`) });
    await row.waitFor();
    await shot(page, "06-snapshots");

    const target = path.join(tmp.dir, "restored");
    await row.locator("button.restore-snapshot").click();
    await page.fill("#restore-target", target);
    await shot(page, "07-restore-form");
    await page.click("form.restore-form button[type=submit]");
    await page.waitForURL(/#\/jobs\/restore-/);
    expect(await jobFinished(page, "08-restore-job"), (await page.textContent("#job")) ?? "").toBe("completed");
    expect(readFileSync(path.join(target, src, "readme.txt"), "utf8")).toBe("the dashboard restored me\n");
    expect(readFileSync(path.join(target, src, "sub", "data.bin"))).toEqual(Buffer.alloc(300_000, 7));

    // The same target again is not empty now: the API wants an overwrite mode, and the form shows its sentence.
    await page.click("nav >> text=Snapshots");
    await row.locator("button.restore-snapshot").click();
    await page.fill("#restore-target", target);
    await page.click("form.restore-form button[type=submit]");
    await page.locator("form.restore-form .problem", { hasText: "overwrite" }).waitFor();
    await shot(page, "09-restore-needs-mode");

    // The duration chart gained the backup's point; recommendations and risk are listed.
    await page.click("nav >> text=Analytics");
    await page.locator("svg#chart-duration circle").first().waitFor();
    expect(await page.locator("svg#chart-duration circle").count()).toBe(1);
    expect(await page.locator("svg#chart-duration").getAttribute("aria-label")).toMatch(/^Duration per backup: 1 points/);
    await page.locator("#plan-risk").waitFor();
    await shot(page, "10-analytics");

    // Security: create a token (shown once), find it in the audit log, revoke it, verify the chain, read a compliance report.
    await page.click("nav >> text=Security");
    await page.fill("#token-name", "ci-reader");
    await page.selectOption("#token-role", "viewer");
    await page.click("#token-form button[type=submit]");
    const secret = await page.locator("#new-token").inputValue();
    expect(secret).toMatch(/^cairn_/);
    const reader = await fetch(`${api.url}/v1/session`, { headers: { Authorization: `Bearer ${secret}` } });
    expect(((await reader.json()) as { role: string }).role).toBe("viewer");
    await shot(page, "11-security-token-created");
    page.once("dialog", (d) => void d.accept());
    await page.click('button.revoke-token[data-token="ci-reader"]');
    await page.locator("#token-list tr", { hasText: "ci-reader" }).locator("text=revoked").waitFor();
    expect((await fetch(`${api.url}/v1/session`, { headers: { Authorization: `Bearer ${secret}` } })).status).toBe(401);
    await page.fill("#audit-action", "revokeToken");
    await page.click("#audit-filters button[type=submit]");
    await page.locator("#audit-events td", { hasText: "revokeToken" }).first().waitFor();
    expect(await page.locator("#audit-events tbody tr").count()).toBe(2); // attempted, succeeded
    await page.click("#audit-verify");
    await page.locator("#audit-verdict", { hasText: "Chain intact" }).waitFor();
    await page.locator("#compliance-status").waitFor({ timeout: 60_000 });
    await shot(page, "12-security");

    // Readable on a phone too: the overview at 390 px wide, the plan still listed.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click("nav >> text=Overview");
    await page.locator("#plan-health a", { hasText: "docs" }).waitFor();
    await shot(page, "13-overview-phone");
    await page.click("nav >> text=Analytics");
    await page.locator("svg#chart-duration circle").first().waitFor();
    await shot(page, "14-analytics-phone");
    // Every other page at phone width, each once its content is in, to look at.
    const phonePages: [string, string][] = [
      ["Jobs", "#jobs tbody tr"],
      ["Plans", "#plans .plan-name"],
      ["Databases", "#databases"],
      ["Alerts", "#alerts"],
      ["Repositories", "#repositories a.repository-name"],
      ["Snapshots", "button.browse-snapshot"],
      ["Security", "#audit-events tbody tr"],
    ];
    for (const [nav, ready] of phonePages) {
      await page.click(`nav >> text=${nav}`);
      await page.locator(ready).first().waitFor({ timeout: 60_000 });
      await shot(page, `14-${nav.toLowerCase()}-phone`);
    }
    await page.goto(`${api.url}/#/jobs/${encodeURIComponent(jobId)}`);
    await page.locator("#job-log li").first().waitFor();
    await shot(page, "14-job-phone");

    // The token was exchanged for a session cookie: HttpOnly (no script reads it), SameSite=Strict, path /, not
    // Secure over plain http, holding a random id and not the token; no storage or URL holds the token.
    const [cookie, ...others] = await page.context().cookies();
    expect(others).toEqual([]);
    expect(cookie).toMatchObject({ name: "cairn_session", httpOnly: true, sameSite: "Strict", secure: false, path: "/" });
    expect(cookie.value).not.toContain(api.token!);
    expect(cookie.expires * 1000 - Date.now()).toBeLessThanOrEqual(8 * 3600_000);
    expect(await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie])).toEqual([0, 0, ""]);
    expect(urls.filter((u) => u.includes(api.token!))).toEqual([]);

    // Signing out ends the session on the server: the same cookie, replayed, is refused.
    await page.click("#sign-out");
    await page.locator("#signin-message", { hasText: "Signed out" }).waitFor();
    const replay = await fetch(`${api.url}/v1/session`, { headers: { Cookie: `cairn_session=${cookie.value}` } });
    expect(replay.status).toBe(401);
    await page.reload();
    await page.locator("#token").waitFor();
    expect(problems).toEqual([]);
    await page.context().close();
  }, 400_000);

  it("browses a snapshot folder by folder, downloads a file with its bytes, compares two snapshots and restores a ticked folder", async () => {
    const { page, problems } = await tab();
    await page.goto(`${api.url}/#/snapshots`);
    await signIn(page, api.token!);
    await page.locator("button.browse-snapshot").first().click();
    // Into the backed-up directory, one click per folder; the breadcrumbs follow.
    const parts = src.split("/").filter(Boolean);
    for (const part of parts) {
      await page.locator("#snapshot-tree button.open-dir", { hasText: `${part}/` }).click();
      await page.locator(".breadcrumbs .crumb").last().filter({ hasText: part }).waitFor();
    }
    await page.locator('#snapshot-tree .entry-name', { hasText: "readme.txt" }).waitFor();
    expect(await page.locator(".breadcrumbs .crumb").allTextContents()).toEqual([expect.any(String), ...parts]);
    await shot(page, "10a-snapshot-tree");

    const row = page.locator("#snapshot-tree tr", { has: page.locator(".entry-name", { hasText: "readme.txt" }) });
    const [file] = await Promise.all([page.waitForEvent("download"), row.locator("a.download").click()]);
    expect(file.suggestedFilename()).toBe("readme.txt");
    expect(readFileSync((await file.path())!)).toEqual(readFileSync(path.join(src, "readme.txt")));
    const subRow = page.locator("#snapshot-tree tr", { has: page.locator(".entry-name", { hasText: "sub/" }) });
    const [folder] = await Promise.all([page.waitForEvent("download"), subRow.locator("a.download").click()]);
    expect(folder.suggestedFilename()).toBe("sub.tar");
    // A tar holding sub/ and sub/data.bin: its file's 300000 bytes follow the two headers.
    const tar = readFileSync((await folder.path())!);
    expect(tar.subarray(1024, 1024 + 300_000)).toEqual(Buffer.alloc(300_000, 7));

    // Back up again with one file more, then compare the two snapshots.
    writeFileSync(path.join(src, "added.txt"), "new in the second snapshot\n");
    const { jobId } = await admin.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    await apiClient(api).pollJob(jobId, (j) => j.status !== "running");
    await page.click("nav >> text=Overview");
    await page.click("nav >> text=Snapshots");
    await page.locator("input.compare-snapshot").nth(1).waitFor();
    await page.locator("input.compare-snapshot").nth(0).check();
    await page.locator("input.compare-snapshot").nth(1).check();
    await page.click("#compare-snapshots");
    await page.locator("#diff-totals", { hasText: "1 added" }).waitFor();
    expect(await page.locator("#snapshot-diff tr", { hasText: `${src}/added.txt` }).textContent()).toContain("added");
    await shot(page, "10b-snapshot-diff");

    // Tick the folder sub/ in the tree and restore only it.
    await page.locator("button.browse-snapshot").first().click();
    for (const part of parts) await page.locator("#snapshot-tree button.open-dir", { hasText: `${part}/` }).click();
    await page.locator(`#snapshot-tree input.select-path[aria-label="Select ${src}/sub"]`).check();
    await page.click("#restore-selected");
    const target = path.join(tmp.dir, "restored-selection");
    await page.fill("#restore-target", target);
    expect(await page.textContent("#restore-include")).toContain(`${src}/sub`);
    await shot(page, "10c-restore-ticked");
    await page.click("form.restore-form button[type=submit]");
    await page.waitForURL(/#\/jobs\/restore-/);
    expect(await jobFinished(page, "10d-restore-ticked-job"), (await page.textContent("#job")) ?? "").toBe("completed");
    expect(readFileSync(path.join(target, src, "sub", "data.bin"))).toEqual(Buffer.alloc(300_000, 7));
    expect(existsSync(path.join(target, src, "readme.txt"))).toBe(false);
    expect(problems).toEqual([]);
    await page.context().close();
  }, 300_000); // downloads, a backup and a restore: minutes on a busy machine

  it("offers a viewer no Run and no Restore, refuses a forged run, and returns to sign-in once its token is revoked", async () => {
    const { page, problems } = await tab();
    await page.goto(`${api.url}/#/plans`);
    await signIn(page, viewer.token);
    expect(await page.textContent("#who")).toContain("viewer");
    expect(await page.locator("nav[aria-label=Sections] a").allTextContents()).toEqual(["Overview", "Jobs", "Plans", "Databases", "Alerts", "Repositories", "Snapshots", "Analytics"]);
    await page.locator("#plans .plan-name", { hasText: "docs" }).waitFor();
    const run = page.locator('button.run-plan[data-plan="docs"]');
    expect(await run.isDisabled()).toBe(true);
    expect(await run.getAttribute("title")).toContain("plans:run");
    await shot(page, "15-viewer-plans");

    // Forged from the page with the session cookie: refused for the role; without the CSRF header refused before that.
    const forged = await page.evaluate(async (id) => {
      const run = async (headers: Record<string, string>) => {
        const res = await fetch(`/v1/plans/${id}/run`, { method: "POST", headers });
        return { status: res.status, body: (await res.json()) as { detail: string } };
      };
      return [await run({ "X-Cairn-CSRF": "1" }), await run({})];
    }, planId);
    expect(forged[0].status).toBe(403);
    expect(forged[0].body.detail).toContain("plans:run");
    expect(forged[1].status).toBe(403);
    expect(forged[1].body.detail).toContain("X-Cairn-CSRF");

    await page.click("nav >> text=Snapshots");
    const restore = page.locator("button.restore-snapshot").first();
    await restore.waitFor();
    expect(await restore.isDisabled()).toBe(true);
    await shot(page, "16-viewer-snapshots");
    // A viewer browses a snapshot's names and sizes, but is offered no download and nothing to tick for a restore.
    await page.locator("button.browse-snapshot").first().click();
    await page.locator("#snapshot-tree button.open-dir").first().waitFor();
    expect(await page.locator("a.download, input.select-path, #restore-selected").count()).toBe(0);
    await shot(page, "16a-viewer-snapshot-tree");

    // An auditor is offered the alerts and the security pages only, and no token management.
    const auditor = await admin.ok<{ token: string }>("POST", "/v1/tokens", { name: "inspector", role: "auditor" });
    const second = await tab();
    await second.page.goto(`${api.url}/`);
    await signIn(second.page, auditor.token);
    expect(await second.page.locator("nav[aria-label=Sections] a").allTextContents()).toEqual(["Alerts", "Security"]);
    await second.page.locator("#alerts").waitFor();
    await second.page.click("nav >> text=Security");
    await second.page.locator("#audit-events tbody tr").first().waitFor();
    expect(await second.page.locator("#tokens, #token-form").count()).toBe(0);
    await shot(second.page, "17-auditor-security");
    expect(second.problems).toEqual([]);
    await second.page.context().close();

    expect((await admin.call("DELETE", `/v1/tokens/${viewer.id}`)).status).toBe(204);
    await page.click("nav >> text=Jobs");
    await page.locator("#signin-message", { hasText: "revoked" }).waitFor();
    expect(await page.evaluate(() => [localStorage.length, sessionStorage.length])).toEqual([0, 0]);
    await shot(page, "18-signed-out");
    expect(problems).toEqual([]);
    await page.context().close();
  });
});

import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildWeb } from "../scripts/build-web.js";
import { apiClient } from "./api-client.js";
import { launchChromium, openTab, screenshots, signIn as signInAt } from "./browser.js";
import { PASSWORD, tempDir } from "./helpers.js";
import { testPolicy } from "./policy-fixtures.js";
import { startStack, type Stack } from "./stack.js";

const TEMPORAL_UI = "http://127.0.0.1:8233";

interface PlanView {
  id: string;
  name: string;
  paused: boolean;
  schedule: { cron: string; timezone: string; overlap?: string } | null;
  retention: Record<string, unknown> | null;
  secondaryRepositoryIds: string[];
  notifications: { type: string; url?: string; on: string[] }[];
  drill: { cron?: string; timezone: string } | null;
  source: { type: string; paths?: string[] };
}

/** A time as a wall clock in a zone: "Wed 04:30". */
function wallClock(iso: string, timeZone: string): string {
  const parts = new Intl.DateTimeFormat("en-GB", { timeZone, weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).formatToParts(new Date(iso));
  const get = (type: string) => parts.find((p) => p.type === type)!.value;
  return `${get("weekday")} ${get("hour")}:${get("minute")}`;
}

/**
 * The dashboard's plan editor, plan page, alerts and databases pages in Chromium
 * against a real stack (test/stack.ts: Temporal namespace, worker, API serving
 * the built dashboard): an admin creates a plan with the cron builder and sees
 * the next runs Temporal computed, edits, pauses and backfills it, follows a
 * job to its workflow in the Temporal Web UI, acknowledges an alert, and reads a
 * physical plan's recovery window; a viewer is offered none of those changes and
 * the API refuses them when forged.
 */
describe("dashboard pages: plan editor, alerts, databases", () => {
  const tmp = tempDir("cairn-web-pages-");
  const dataDir = path.join(tmp.dir, "data");
  const src = path.join(tmp.dir, "docs");
  const doomed = path.join(tmp.dir, "doomed");
  const { shot } = screenshots("web-pages-e2e");
  let stack: Stack;
  let browser: Browser;
  let admin: ReturnType<typeof apiClient>;
  let viewer: { id: string; token: string };
  let repositoryId: string;
  let offsiteId: string;
  let physicalId: string;
  let mysqlId: string;
  let doomedId: string;
  let createdId: string;

  beforeAll(async () => {
    mkdirSync(src, { recursive: true });
    mkdirSync(doomed, { recursive: true });
    writeFileSync(path.join(src, "readme.txt"), "planned by the editor\n");
    writeFileSync(path.join(doomed, "gone.txt"), "removed before its backup\n");
    const webDir = await buildWeb(path.join(tmp.dir, "web"));
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, api: { webDir, temporalUiUrl: TEMPORAL_UI } });
    admin = apiClient(stack.api);
    ({ id: repositoryId } = await admin.ok<{ id: string }>("POST", "/v1/repositories", { name: "local", url: path.join(tmp.dir, "repo"), password: PASSWORD }));
    ({ id: offsiteId } = await admin.ok<{ id: string }>("POST", "/v1/repositories", { name: "offsite", url: path.join(tmp.dir, "offsite"), password: PASSWORD }));
    ({ id: physicalId } = await admin.ok<{ id: string }>("POST", "/v1/plans", { name: "orders-db", repositoryId, source: { type: "postgres", mode: "physical", url: "postgresql://backup@127.0.0.1:5432/postgres" } }));
    ({ id: mysqlId } = await admin.ok<{ id: string }>("POST", "/v1/plans", { name: "shop-mysql", repositoryId, source: { type: "mysql", mode: "physical", url: "mysql://backup@127.0.0.1:3306" } }));
    ({ id: doomedId } = await admin.ok<{ id: string }>("POST", "/v1/plans", { name: "doomed", repositoryId, source: { type: "files", paths: [doomed] } }));
    viewer = await admin.ok<{ id: string; token: string }>("POST", "/v1/tokens", { name: "wall-screen", role: "viewer" });
    browser = await launchChromium();
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.close();
    tmp.cleanup();
  });

  const tab = (width?: number, height?: number) => openTab(browser, [400, 401, 403, 404, 409], width, height);
  const signIn = (page: Page, token: string, at = "/") => signInAt(page, token, `${stack.api.url}${at}`);

  it("creates a plan with the cron builder and shows Temporal's next runs, edits it, refuses a bad cron in place, pauses, resumes and backfills it", async () => {
    const { page, problems } = await tab();
    await signIn(page, stack.api.token!, "/#/plans");
    await page.click("#new-plan");
    await page.locator("#plan-form").waitFor();
    await page.fill("#plan-name", "nightly-docs");
    await page.selectOption("#plan-repository", repositoryId);
    // The path picker offers the execution policy's source roots (GET /v1/policy) and appends under the chosen one.
    expect(await page.locator("#path-root option").allTextContents()).toEqual([tmp.dir]);
    await page.fill("#path-rest", "docs");
    await page.click("#add-path");
    expect(await page.inputValue("#plan-paths")).toBe(src);
    // Cron builder: every Wednesday at 04:30 in Paris writes the five fields.
    expect(await page.isChecked("#plan-scheduled")).toBe(true);
    await page.selectOption("#schedule-preset", "weekly");
    await page.selectOption("#schedule-day", "3");
    await page.fill("#schedule-time", "04:30");
    await page.fill("#plan-timezone", "Europe/Paris");
    expect(await page.inputValue("#schedule-cron")).toBe("30 4 * * 3");
    await page.locator("#schedule-words", { hasText: "every Wednesday at 04:30 (Europe/Paris)" }).waitFor();
    // Before saving, the editor lists the next runs as Temporal computes them (POST /v1/schedules/preview): each a Wednesday, 04:30 in Paris.
    await page.locator("#schedule-preview", { hasText: "Europe/Paris" }).locator("#preview-runs li").first().waitFor();
    const previewed = await page.locator("#preview-runs li").evaluateAll((items) => items.map((li) => li.getAttribute("data-time")!));
    expect(previewed.map((t) => wallClock(t, "Europe/Paris"))).toEqual(Array(5).fill("Wed 04:30"));
    expect((await admin.ok<{ plans: PlanView[] }>("GET", "/v1/plans?limit=500")).plans.map((p) => p.name)).not.toContain("nightly-docs");
    await page.fill("#plan-keepDaily", "7");
    await page.fill("#plan-keepWeekly", "4");
    // The plan's own repository is not offered as its secondary.
    expect(await page.locator('label[data-repository]:visible').allTextContents()).toEqual([" offsite"]);
    await page.check('input.plan-secondary[data-name="offsite"]');
    await page.click("#add-notification");
    await page.fill(".channel .channel-target", "http://127.0.0.1:9/cairn-hook");
    await page.check("#plan-drill");
    await shot(page, "01-plan-editor-new");
    await page.click("#save-plan");
    await page.waitForURL(/#\/plans\/[0-9a-f]{16}$/);
    createdId = new URL(page.url()).hash.replace("#/plans/", "");

    // The plan page lists the next runs as Temporal computed them: each a Wednesday, 04:30 in Paris.
    await page.locator("#next-runs li").first().waitFor();
    const weekly = await page.locator("#next-runs li").evaluateAll((items) => items.map((li) => li.getAttribute("data-time")!));
    expect(weekly.length).toBe(5);
    expect(weekly.map((t) => wallClock(t, "Europe/Paris"))).toEqual(Array(5).fill("Wed 04:30"));
    await shot(page, "02-plan-page");
    const created = await admin.ok<PlanView>("GET", `/v1/plans/${createdId}`);
    expect(created).toMatchObject({
      name: "nightly-docs",
      source: { type: "files", paths: [src] },
      schedule: { cron: "30 4 * * 3", timezone: "Europe/Paris", overlap: "skip" },
      retention: { keepDaily: 7, keepWeekly: 4 },
      secondaryRepositoryIds: [offsiteId],
      notifications: [{ type: "webhook", url: "http://127.0.0.1:9/cairn-hook", on: ["failure"] }],
      drill: { timezone: expect.any(String) },
    });
    expect(created.drill?.cron).toBeUndefined();

    // Edit: a raw cron the API refuses is shown in the form with the API's sentence, nothing saved.
    await page.click("#edit-plan");
    await page.locator("#plan-form").waitFor();
    expect(await page.inputValue("#schedule-cron")).toBe("30 4 * * 3");
    expect(await page.inputValue("#schedule-preset")).toBe("weekly");
    await page.locator("#plan-next-runs #next-runs li").first().waitFor();
    await page.fill("#schedule-cron", "61 * * * *");
    expect(await page.inputValue("#schedule-preset")).toBe("raw");
    // The preview says what is wrong as the cron is typed, in the API's words.
    await page.locator("#preview-problem", { hasText: "minute field" }).waitFor();
    await page.click("#save-plan");
    await page.locator("#plan-problem", { hasText: "minute field" }).waitFor();
    await shot(page, "03-plan-editor-refused");
    expect((await admin.ok<PlanView>("GET", `/v1/plans/${createdId}`)).schedule?.cron).toBe("30 4 * * 3");
    // Typing a preset's expression selects the preset; every day at 02:15 then.
    await page.fill("#schedule-cron", "15 2 * * *");
    expect(await page.inputValue("#schedule-preset")).toBe("daily");
    expect(await page.inputValue("#schedule-time")).toBe("02:15");
    // The preview follows the change, still unsaved: every day at 02:15 in Paris.
    await page.locator("#preview-runs li").first().waitFor();
    await expect.poll(async () => (await page.locator("#preview-runs li").evaluateAll((items) => items.map((li) => li.getAttribute("data-time")!))).map((t) => wallClock(t, "Europe/Paris").slice(4))).toEqual(Array(5).fill("02:15"));
    await page.fill("#plan-keepDaily", "14");
    await page.click("#save-plan");
    await page.waitForURL(new RegExp(`#/plans/${createdId}$`));
    await page.locator("#next-runs li").first().waitFor();
    const daily = await page.locator("#next-runs li").evaluateAll((items) => items.map((li) => li.getAttribute("data-time")!));
    expect(daily.map((t) => wallClock(t, "Europe/Paris").slice(4))).toEqual(Array(5).fill("02:15"));
    expect(new Set(daily.map((t) => wallClock(t, "Europe/Paris").slice(0, 3))).size).toBe(5);
    const edited = await admin.ok<PlanView>("GET", `/v1/plans/${createdId}`);
    expect(edited).toMatchObject({ schedule: { cron: "15 2 * * *", timezone: "Europe/Paris" }, retention: { keepDaily: 14, keepWeekly: 4 }, secondaryRepositoryIds: [offsiteId] });
    // Channels were not replaced (their secrets would have had to be given again).
    expect(edited.notifications).toHaveLength(1);

    // Pause and resume: the schedule's state follows, on the page and in the API.
    await page.click("#pause-plan");
    await page.locator("#plan-paused").waitFor();
    await page.locator("#plan-schedule", { hasText: "Paused" }).waitFor();
    expect((await admin.ok<PlanView>("GET", `/v1/plans/${createdId}`)).paused).toBe(true);
    await shot(page, "04-plan-paused");
    await page.click("#pause-plan");
    await page.locator("#pause-plan", { hasText: "Pause schedule" }).waitFor();
    expect((await admin.ok<PlanView>("GET", `/v1/plans/${createdId}`)).paused).toBe(false);

    // Backfill the last day: Temporal takes the missed 02:15 run, listed as the plan's job.
    await page.click("details.backfill summary");
    await page.click("#backfill-form button[type=submit]");
    await page.locator(".notices", { hasText: "Backfill requested" }).waitFor();
    let backfilled: { id: string }[] = [];
    for (let i = 0; i < 150 && !backfilled.length; i++) {
      ({ jobs: backfilled } = await admin.ok<{ jobs: { id: string }[] }>("GET", `/v1/jobs?planId=${createdId}&kind=backup`));
      if (!backfilled.length) await new Promise((r) => setTimeout(r, 200));
    }
    expect(backfilled.length).toBe(1);
    expect(problems).toEqual([]);
    await page.context().close();
  }, 300_000);

  it("links each job to its workflow in the Temporal Web UI", async () => {
    const { page, problems } = await tab();
    await signIn(page, stack.api.token!, `/#/plans/${createdId}`);
    await page.click("#run-plan");
    await page.waitForURL(/#\/jobs\/backup-/);
    const jobId = decodeURIComponent(new URL(page.url()).hash.replace("#/jobs/", ""));
    const link = page.locator("#job-workflow");
    await link.waitFor();
    expect(await link.getAttribute("href")).toBe(`${TEMPORAL_UI}/namespaces/${stack.namespace}/workflows/${jobId}`);
    expect(await link.getAttribute("target")).toBe("_blank");
    expect(await link.getAttribute("rel")).toBe("noopener noreferrer");
    await page.click("nav >> text=Jobs");
    await page.locator("#jobs a.temporal-link").first().waitFor();
    expect(await page.locator(`#jobs a.temporal-link[href$="/workflows/${jobId}"]`).count()).toBe(1);
    await shot(page, "05-jobs-temporal-links");
    expect(problems).toEqual([]);
    await page.context().close();
  }, 120_000);

  it("shows a failed backup's open alert on the overview and acknowledges it on the alerts page", async () => {
    rmSync(doomed, { recursive: true });
    const { jobId } = await admin.ok<{ jobId: string }>("POST", `/v1/plans/${doomedId}/run`);
    await admin.pollJob(jobId, (j) => j.status !== "running");
    let alerts: { id: string; state: string; acknowledgedBy: string | null }[] = [];
    for (let i = 0; i < 150 && !alerts.length; i++) {
      ({ alerts } = await admin.ok<{ alerts: typeof alerts }>("GET", `/v1/alerts?kind=backup_failed&state=open`));
      if (!alerts.length) await new Promise((r) => setTimeout(r, 200));
    }
    expect(alerts).toHaveLength(1);

    const { page, problems } = await tab();
    await signIn(page, stack.api.token!);
    await page.locator('#open-alert-count[data-count="1"]').waitFor();
    await page.locator("#plan-health .plan-risk").first().waitFor();
    // The failed plan's day is red on its 30-day strip; the scheduled plan says when it runs next, as Temporal computed it.
    const doomedRow = page.locator("#plan-health tr", { has: page.locator('a[data-plan="doomed"]') });
    expect(await doomedRow.locator(".last-backup .status-failed").count()).toBe(1);
    expect(await doomedRow.locator(".outcome-strip .day").last().getAttribute("data-state")).toBe("failed");
    const nightlyRow = page.locator("#plan-health tr", { has: page.locator('a[data-plan="nightly-docs"]') });
    expect(await nightlyRow.locator(".next-run").textContent()).toMatch(/^in \d+ (h|min)/);
    await shot(page, "06-overview-alerts-risk");
    await page.click("#open-alerts a[href='#/alerts']");
    const ack = page.locator(`button.ack-alert[data-alert="${alerts[0].id}"]`);
    await ack.waitFor();
    await shot(page, "07-alerts-open");
    await ack.click();
    await page.locator("#alerts", { hasText: "No open alert." }).waitFor();
    await page.selectOption("#alert-state", "acknowledged");
    await page.locator("#alerts .state-acknowledged").first().waitFor();
    await shot(page, "08-alerts-acknowledged");
    const [after] = (await admin.ok<{ alerts: typeof alerts }>("GET", `/v1/alerts?kind=backup_failed`)).alerts;
    expect(after.state).toBe("acknowledged");
    expect(after.acknowledgedBy).toMatch(/^admin \(/); // the token that signed the dashboard in

    // The failed jobs: each with its cause and Retry, which runs the job again as a new job; its steps and log say why it failed.
    await page.click("nav >> text=Jobs");
    await page.selectOption("#job-status", "failed");
    const failedRow = page.locator("#jobs tr", { has: page.locator(`a[href="#/jobs/${jobId}"]`) });
    await failedRow.locator(".job-cause").waitFor();
    expect(await failedRow.locator(".job-cause").textContent()).toContain(doomed);
    await shot(page, "08a-jobs-failed");
    await failedRow.locator("button.retry-job").click();
    await page.waitForURL((url) => url.hash.startsWith("#/jobs/backup-") && !url.hash.endsWith(jobId));
    await page.locator("#job-status", { hasText: "failed" }).waitFor({ timeout: 120_000 });
    await page.locator("#job-steps tbody tr", { hasText: "failed" }).first().waitFor({ timeout: 30_000 });
    await page.locator("#job-log li.log-error").first().waitFor();
    expect(await page.locator("#retry-job").isEnabled()).toBe(true);
    await shot(page, "08b-retried-job-failed");
    expect(problems).toEqual([]);
    await page.context().close();
  }, 180_000);

  it("shows a physical plan's recovery window (a worker's answer, then a window with a gap drawn) and posts a recovery from its form", async () => {
    const { page, problems } = await tab();
    await signIn(page, stack.api.token!, "/#/databases");
    const card = page.locator(`section.database[data-plan="orders-db"]`);
    // The real answer: the repository holds no base backup of this plan yet.
    await card.locator(".window-empty").waitFor({ timeout: 90_000 });
    await card.locator(".drills", { hasText: "No drill has finished yet" }).waitFor();
    await card.locator(".standby-none").waitFor(); // GET /v1/standbys: none for this plan
    expect(await card.locator("button.run-drill").count()).toBe(1);

    // A window with two base backups whose WAL chains leave a gap between them, as GET .../recovery-window reports one.
    const t = (h: number) => new Date(Date.UTC(2026, 10, 30, h)).toISOString();
    const window = {
      systemId: "7301234567890123456",
      baseBackups: 2,
      earliest: { time: t(1), lsn: "0/2000100", snapshotId: "a".repeat(64) },
      latest: { time: t(9), lsn: "0/9000000", timeline: 1 },
      backups: [
        { snapshotId: "a".repeat(64), endTime: t(1), endLsn: "0/2000100", until: { time: t(3), lsn: "0/4000000", timeline: 1 }, breaksAt: "000000010000000000000004" },
        { snapshotId: "b".repeat(64), endTime: t(5), endLsn: "0/6000100", until: { time: t(9), lsn: "0/9000000", timeline: 1 } },
      ],
    };
    await page.route(`**/v1/plans/${physicalId}/recovery-window`, (route) => route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(window) }));
    // And a warm standby of it replaying 16 KiB and 3 s behind, as GET /v1/standbys reports one.
    const standby = { planId: physicalId, workflowId: `standby-${physicalId}`, running: true, phase: "replaying", dataDir: path.join(tmp.dir, "standby"), port: 5498, startedAt: t(8), lagBytes: 16_384, lagSeconds: 3, lagSource: "heartbeat", lastCheckedAt: new Date().toISOString(), restarts: 0, warnings: [] };
    await page.route("**/v1/standbys", (route) => route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify({ standbys: [standby] }) }));
    await page.reload();
    const svg = card.locator(`svg#timeline-${physicalId}`);
    await svg.waitFor({ timeout: 60_000 });
    expect(await svg.getAttribute("data-backups")).toBe("2");
    expect(await svg.getAttribute("data-gaps")).toBe("1");
    expect(await svg.getAttribute("aria-label")).toMatch(/2 backups; 1 gap in the archived log$/);
    expect(await card.locator(".timeline-backup path").count()).toBe(2);
    expect(await card.locator(".timeline-wal rect").count()).toBe(2);
    expect(await card.locator(".timeline-gap rect title").textContent()).toContain("000000010000000000000004");
    await card.locator('.standby[data-phase="replaying"] .standby-lag', { hasText: "behind by 16.0 KiB, 3.0 s" }).waitFor();
    await shot(page, "09-databases-window");

    // Failover (admin): the standby is offered as the new primary; the button stays disabled until the plan's name is typed.
    const failover = card.locator(".failover-form");
    expect(await failover.locator(".failover-datadir").inputValue()).toBe(standby.dataDir);
    const go = failover.locator("button[type=submit]");
    await failover.locator(".failover-fence").fill(path.join(tmp.dir, "old-primary"));
    await failover.locator(".failover-reason").fill("web-pages-e2e dry run");
    await failover.locator(".failover-dry").check();
    await failover.locator(".failover-confirm").fill("orders");
    expect(await go.isDisabled()).toBe(true);
    await failover.locator(".failover-confirm").fill("orders-db");
    expect(await go.isEnabled()).toBe(true);
    expect(await go.textContent()).toBe("Check the failover (dry run)");
    await go.click();
    // It posts POST /v1/failovers, whose refusal is shown in place: this test's policy lets failovers act on no path.
    await failover.locator(".problem", { hasText: "CAIRN_FAILOVER_PATHS" }).waitFor();
    await shot(page, "09b-databases-failover");

    // The recovery form posts POST /v1/recoveries: a data directory outside the restore roots comes back refused, in the form.
    await card.locator('input.pitr-kind[value="position"]').check();
    await card.locator(".pitr-lsn").fill("0/5000000");
    await card.locator(".pitr-datadir").fill("/srv/not-a-restore-root/pg");
    await card.locator(".pitr-form button[type=submit]").click();
    await card.locator(".pitr-form .problem", { hasText: "restore roots" }).waitFor();
    await shot(page, "10-databases-pitr-refused");

    // A MySQL physical plan: its window (the newest backup, then the binary logs) drawn the same way, a missing
    // binary log said in words, and its form posts POST /v1/recoveries/mysql with a binary log position.
    const shop = page.locator(`section.database[data-plan="shop-mysql"]`);
    await shop.locator(".window-empty", { hasText: "No physical backup yet" }).waitFor({ timeout: 90_000 });
    const mysqlWindow = { server: "db:3306", physicalBackups: 1, archivedBinlogs: 3, earliest: { time: t(2), snapshotId: "c".repeat(64), binlogFile: "binlog.000002", binlogPosition: 154 }, latest: { time: t(6), binlogFile: "binlog.000004" }, missing: "binlog.000005" };
    await page.route(`**/v1/plans/${mysqlId}/recovery-window`, (route) => route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(mysqlWindow) }));
    await page.reload();
    const mysqlSvg = shop.locator(`svg#timeline-${mysqlId}`);
    await mysqlSvg.waitFor({ timeout: 60_000 });
    expect([await mysqlSvg.getAttribute("data-backups"), await mysqlSvg.getAttribute("data-gaps")]).toEqual(["1", "0"]);
    await shop.locator(".problem", { hasText: "binary log binlog.000005 is missing" }).waitFor();
    await shop.locator('input.pitr-kind[value="position"]').check();
    await shop.locator(".pitr-lsn").fill("binlog.000003:400");
    await shop.locator(".pitr-datadir").fill("/srv/not-a-restore-root/mysql");
    await shop.locator(".pitr-form button[type=submit]").click();
    await shop.locator(".pitr-form .problem", { hasText: "restore roots" }).waitFor();
    await shot(page, "10b-databases-mysql");

    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    await card.locator(`svg#timeline-${physicalId}`).waitFor({ timeout: 60_000 });
    await shot(page, "11-databases-phone");
    await page.goto(`${stack.api.url}/#/plans/${createdId}/edit`);
    await page.locator("#plan-form").waitFor();
    await shot(page, "12-plan-editor-phone");
    expect(problems).toEqual([]);
    await page.context().close();
  }, 240_000);

  it("offers a viewer no edit, pause, backfill, acknowledge, recovery or drill, and the API refuses them forged", async () => {
    const { page, problems } = await tab();
    await signIn(page, viewer.token, "/#/plans");
    expect(await page.locator("nav[aria-label=Sections] a").allTextContents()).toEqual(["Overview", "Jobs", "Plans", "Databases", "Alerts", "Repositories", "Snapshots", "Analytics"]);
    await page.locator("#plans .plan-name", { hasText: "nightly-docs" }).waitFor();
    expect(await page.locator("#new-plan, a.edit-plan").count()).toBe(0);
    await page.click("#plans .plan-name >> text=nightly-docs");
    await page.locator("#next-runs li").first().waitFor();
    expect(await page.locator("#edit-plan, #pause-plan, #run-plan, details.backfill").count()).toBe(0);
    await shot(page, "13-viewer-plan");
    await page.goto(`${stack.api.url}/#/plans/${createdId}/edit`);
    await page.locator("#page .problem", { hasText: "may not see this page" }).waitFor();
    expect(await page.locator("#plan-form").count()).toBe(0);
    await page.click("nav >> text=Alerts");
    await page.selectOption("#alert-state", "");
    await page.locator("#alerts .state-acknowledged").first().waitFor();
    expect(await page.locator("button.ack-alert").count()).toBe(0);
    await page.click("nav >> text=Databases");
    const card = page.locator(`section.database[data-plan="orders-db"]`);
    await card.locator(".window-empty").waitFor({ timeout: 90_000 });
    expect(await page.locator(".pitr-form, button.run-drill, .failover-form").count()).toBe(0);
    await shot(page, "14-viewer-databases");

    const [{ alerts }] = [await admin.ok<{ alerts: { id: string }[] }>("GET", "/v1/alerts")];
    const forged = await page.evaluate(
      async ({ planId, alertId }) => {
        const send = async (method: string, url: string, body?: unknown) => {
          const res = await fetch(url, { method, headers: { "X-Cairn-CSRF": "1", ...(body ? { "Content-Type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined });
          return { status: res.status, detail: ((await res.json()) as { detail: string }).detail };
        };
        return [
          await send("PATCH", `/v1/plans/${planId}`, { schedule: null }),
          await send("POST", `/v1/plans/${planId}/pause`),
          await send("POST", `/v1/alerts/${alertId}/ack`),
          await send("POST", "/v1/recoveries", { planId, target: { latest: true }, into: { dataDir: "/tmp/x", port: 5499 } }),
        ];
      },
      { planId: createdId, alertId: alerts[0].id },
    );
    expect(forged.map((f) => f.status)).toEqual([403, 403, 403, 403]);
    expect(forged.map((f) => /plans:write|alerts:ack|restores:create/.exec(f.detail)?.[0])).toEqual(["plans:write", "plans:write", "alerts:ack", "restores:create"]);
    expect((await admin.ok<PlanView>("GET", `/v1/plans/${createdId}`)).schedule?.cron).toBe("15 2 * * *");
    expect(problems).toEqual([]);
    await page.context().close();
  }, 180_000);
});

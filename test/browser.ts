import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";

/** Debian's Chromium (.ci/run installs it); CAIRN_CHROMIUM names another build. */
export const CHROMIUM = process.env.CAIRN_CHROMIUM ?? "/usr/bin/chromium";

/** Headless Chromium as root, with nothing reaching out to the network on its own. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
}

export interface Tab {
  page: Page;
  /** What would show a broken page: script errors, and console errors other than the expected refusals. */
  problems: string[];
  /** Every URL the page requested (to prove nothing left the machine). */
  urls: string[];
}

/**
 * A fresh browser tab (its own cookies) at the given size. `expected` are the HTTP
 * statuses the test provokes on purpose; the browser logs those as console errors,
 * and only those are not counted as problems.
 */
export async function openTab(browser: Browser, expected: number[], width = 1280, height = 800): Promise<Tab> {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const problems: string[] = [];
  const urls: string[] = [];
  const refusal = new RegExp(`Failed to load resource: the server responded with a status of (${expected.join("|")})`);
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && !refusal.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  page.on("request", (req) => urls.push(req.url()));
  return { page, problems, urls };
}

/** Signs in on the page's sign-in form (opening `url` first when given) and waits for the signed-in header. */
export async function signIn(page: Page, token: string, url?: string): Promise<void> {
  if (url) await page.goto(url);
  await page.fill("#token", token);
  await page.click("form.signin button[type=submit]");
  await page.locator("#who").waitFor();
}

/** A folder for a test file's screenshots, printed so a reader can look at them, and the function that fills it. */
export function screenshots(label: string): { dir: string; shot: (page: Page, name: string) => Promise<Buffer> } {
  const dir = mkdtempSync(path.join(tmpdir(), `cairn-${label}-screenshots-`));
  process.stdout.write(`${label} screenshots: ${dir}\n`);
  return { dir, shot: (page, name) => page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true }) };
}

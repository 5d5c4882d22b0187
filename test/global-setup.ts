/**
 * vitest globalSetup: one Temporal dev server for the whole run (headless, in
 * memory, on a free loopback port), stopped at teardown. Test files reach it
 * through test/stack.ts, each in a namespace of its own. And a directory for the
 * run's catalog template (test/catalog-template.ts), removed at teardown.
 *
 * It starts in the background: a run of unit tests only does not wait for it.
 * Without an installed CLI (nothing is built from here), test/stack.ts starts a
 * dev server per file as before, which provisions the CLI.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { TestProject } from "vitest/node";
import { freePort, installedTemporalCli, startDevServer, type DevServer } from "../scripts/temporal.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** host:port of the run's Temporal dev server; "" when none was started. */
    temporalAddress: string;
    /** Where the run's catalog template is built (test/catalog-template.ts). */
    catalogTemplateDir: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const catalogTemplateDir = mkdtempSync(path.join(tmpdir(), "cairn-catalog-template-"));
  project.provide("catalogTemplateDir", catalogTemplateDir);
  const removeTemplate = () => rmSync(catalogTemplateDir, { recursive: true, force: true });
  if (!installedTemporalCli(() => undefined)) {
    project.provide("temporalAddress", "");
    return async () => removeTemplate();
  }
  const port = await freePort();
  const starting: Promise<DevServer | undefined> = startDevServer({ port, headless: true, log: () => undefined }).catch((err: Error) => {
    process.stderr.write(`test/global-setup: the shared Temporal dev server did not start: ${err.message}\n`);
    return undefined;
  });
  project.provide("temporalAddress", `127.0.0.1:${port}`);
  return async () => {
    await (await starting)?.stop();
    removeTemplate();
  };
}

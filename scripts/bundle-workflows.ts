/**
 * `npm run build` (after tsc): bundles the compiled workflows (dist/workflows/index.js)
 * with the SDK's bundler into dist/workflow-bundle.js, which workers load at start
 * instead of bundling with webpack there (tens of seconds to minutes on a busy machine).
 *
 * The bundle's inputs (the compiled workflow modules and the SDK's version) are hashed
 * into dist/workflow-bundle.json: when they have not changed, the bundle is kept and
 * only touched, so it stays newer than the workflows tsc just wrote again.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, renameSync, utimesSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { bundleWorkflowCode } from "@temporalio/worker";

/** dist/ of this checkout: this script runs from dist/scripts/. */
function distDir(): string {
  return path.dirname(path.dirname(fileURLToPath(import.meta.url)));
}

/** What the bundle is made of: every compiled workflow module and the SDK packages that go into it. */
function inputsHash(dist: string): string {
  const hash = createHash("sha256");
  const dir = path.join(dist, "workflows");
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".js")).sort()) hash.update(f).update(readFileSync(path.join(dir, f)));
  const require = createRequire(import.meta.url);
  for (const pkg of ["@temporalio/workflow", "@temporalio/worker", "@temporalio/common"]) {
    hash.update(pkg).update((require(`${pkg}/package.json`) as { version: string }).version);
  }
  return hash.digest("hex");
}

/** Writes dist/workflow-bundle.js unless it already holds these inputs; returns its path and whether it was bundled. */
export async function bundleWorkflows(dist = distDir()): Promise<{ file: string; bundled: boolean }> {
  const entry = path.join(dist, "workflows", "index.js");
  if (!existsSync(entry)) throw new Error(`${entry} does not exist: compile first (tsc -p tsconfig.build.json)`);
  const file = path.join(dist, "workflow-bundle.js");
  const stamp = path.join(dist, "workflow-bundle.json");
  const inputs = inputsHash(dist);
  if (existsSync(file) && existsSync(stamp) && (JSON.parse(readFileSync(stamp, "utf8")) as { inputs?: string }).inputs === inputs) {
    const now = new Date();
    utimesSync(file, now, now);
    return { file, bundled: false };
  }
  const quiet = () => undefined;
  const { code } = await bundleWorkflowCode({ workflowsPath: entry, logger: { trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet, log: quiet } });
  // Written aside and renamed: a worker starting meanwhile never reads half a bundle.
  writeFileSync(`${file}.tmp`, code);
  renameSync(`${file}.tmp`, file);
  writeFileSync(stamp, JSON.stringify({ inputs }) + "\n");
  return { file, bundled: true };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  bundleWorkflows().then(
    ({ file, bundled }) => process.stdout.write(bundled ? `workflows bundled into ${file}\n` : `workflow bundle ${file} is up to date\n`),
    (err) => {
      process.stderr.write(`bundle-workflows: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}

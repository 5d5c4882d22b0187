/**
 * `npm start`: the whole stack on embedded defaults, for one machine.
 *
 * - a Temporal dev server keeping its state in `<dataDir>/temporal.db` (Web UI on :8233),
 * - a worker process polling the `cairn` task queue,
 * - the API on :8080 with its catalog in embedded PGlite under `<dataDir>/catalog`
 *   (PostgreSQL when DATABASE_URL is set).
 *
 * Ctrl-C stops all three; so does any single SIGINT, SIGTERM or SIGHUP a supervisor sends to
 * `npm start` (its script execs this process, so npm's forwarded signal reaches it), and so does
 * the death of whatever started it (a parent killed with SIGKILL cannot forward anything: this
 * process notices it was orphaned and stops the dev server and the worker it started).
 * Starting again finds the same jobs and schedules.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { startApiServer } from "../api/server.js";
import { describeSetting, loadPolicy } from "../policy/policy.js";
import { startDevServer } from "./temporal.js";

const here = path.dirname(fileURLToPath(import.meta.url));

function log(line: string): void {
  process.stderr.write(`[cairn] ${line}\n`);
}

async function main(): Promise<void> {
  const dataDir = path.resolve(process.env.CAIRN_DATA_DIR ?? ".cairn");
  mkdirSync(dataDir, { recursive: true });
  const temporalPort = Number(process.env.CAIRN_TEMPORAL_PORT ?? 7233);
  const uiPort = Number(process.env.CAIRN_TEMPORAL_UI_PORT ?? 8233);
  const apiPort = Number(process.env.CAIRN_API_PORT ?? 8080);

  log(`data directory: ${dataDir}`);
  // Read before anything starts: a policy that cannot be read stops here, naming the variable.
  const policy = loadPolicy({ dataDir });
  for (const setting of ["sourceRoots", "restoreRoots", "repositoryRoots"] as const) log(`execution policy: ${setting} ${describeSetting(policy, setting)}`);
  const temporal = await startDevServer({ dbFile: path.join(dataDir, "temporal.db"), port: temporalPort, uiPort, log });
  const stops: (() => Promise<void>)[] = [() => temporal.stop()];
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    log("stopping…");
    for (const stop of stops.reverse()) await stop().catch((err: Error) => log(`while stopping: ${err.message}`));
    process.exit(code);
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void stopAll(0));
  // Orphaned (the parent died without passing a signal on): nothing would ever stop the stack.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) {
      log(`the process that started this one (pid ${parent}) is gone`);
      void stopAll(0);
    }
  }, 1000).unref();

  try {
    const worker = startWorker(temporal.address, dataDir, () => void stopAll(1));
    stops.push(() => stopChild(worker));
    const api = await startApiServer({
      port: apiPort,
      dataDir,
      policy,
      databaseUrl: process.env.DATABASE_URL,
      temporalAddress: temporal.address,
      // Jobs on the dashboard link to their workflow in the dev server's Web UI.
      temporalUiUrl: process.env.CAIRN_TEMPORAL_UI_URL || temporal.uiUrl,
    });
    stops.push(() => api.close());
    log(`Temporal frontend: ${temporal.address}`);
    if (temporal.uiUrl) log(`Temporal Web UI:   ${temporal.uiUrl}`);
    log(`API:               ${api.url}  (OpenAPI: ${api.url}/openapi.json)`);
    log(`Dashboard:         ${api.url}/  (sign in with an API token)`);
    if (api.token) log(`admin API token (shown once; set CAIRN_API_TOKEN to choose your own): ${api.token}`);
    log("press Ctrl-C to stop");
  } catch (err) {
    log(`could not start: ${(err as Error).message}`);
    await stopAll(1);
  }
}

/** The worker runs in its own process, as in production, so it can be killed and restarted alone. */
function startWorker(address: string, dataDir: string, onUnexpectedExit: () => void): ChildProcess {
  const child = spawn(process.execPath, [path.join(here, "..", "worker.js")], {
    env: { ...process.env, TEMPORAL_ADDRESS: address, CAIRN_DATA_DIR: dataDir },
    stdio: ["ignore", "inherit", "inherit"],
  });
  child.on("exit", (code, signal) => {
    if (code !== 0 && signal !== "SIGTERM") {
      log(`the worker exited (${signal ?? code})`);
      onUnexpectedExit();
    }
  });
  return child;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

main().catch((err) => {
  log((err as Error).stack ?? String(err));
  process.exit(1);
});

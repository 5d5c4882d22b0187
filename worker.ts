/**
 * The worker process: connects to Temporal, registers Cairn's workflows and
 * activities on the task queue, and runs until SIGINT or SIGTERM.
 *
 *   TEMPORAL_ADDRESS=127.0.0.1:7233 TEMPORAL_NAMESPACE=default CAIRN_DATA_DIR=.cairn node dist/worker.js
 *
 * CAIRN_WORKER_CONCURRENCY sets how many activities run at once (default 4).
 * CAIRN_MAX_JOBS limits how many jobs (backups, restores, checks, prunes, copies,
 * verifications) work at once across all workers; the others wait for a slot. Give
 * every worker the same value.
 * CAIRN_WORKER_METRICS_ADDRESS (host:port) serves the Temporal SDK's worker metrics
 * (task slots available and used, polls, activity latencies) for Prometheus at
 * /metrics there, without authentication: bind it to loopback or a private network.
 * The execution policy comes from CAIRN_POLICY_FILE and the CAIRN_* policy variables.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { NativeConnection, Runtime, Worker, type WorkflowBundleOption } from "@temporalio/worker";
import { createActivities } from "./activities/index.js";
import { maxJobsFromEnvironment } from "./activities/slots.js";
import { loadSecretBox } from "./engine/secret-box.js";
import { loadPolicy, type ExecutionPolicy } from "./policy/policy.js";
import { TASK_QUEUE } from "./workflows/messages.js";

export interface CairnWorkerOptions {
  /** host:port of the Temporal frontend; ignored when `connection` is given. */
  address?: string;
  connection?: NativeConnection;
  namespace?: string;
  taskQueue?: string;
  /** Holds the platform secret key (`secret.key`) unless CAIRN_SECRET_KEY is set. */
  dataDir: string;
  /** What plans may read, restores write and repositories reach; read from the environment (loadPolicy) when absent. */
  policy?: ExecutionPolicy;
  /** Codec threads per open repository. */
  threads?: number;
  /** Activities run at once; each backup keeps its codec threads busy, so few is right for a small machine. */
  maxConcurrentActivityTaskExecutions?: number;
  /** A bundle (bundleWorkflowCode, or { codePath }); otherwise the one `npm run build` wrote when it is fresh (prebuiltWorkflowBundle), else the workflows are bundled at start. */
  workflowBundle?: WorkflowBundleOption;
  identity?: string;
  /** Jobs working at once across all workers; CAIRN_MAX_JOBS when absent, no limit when neither is set. */
  maxJobs?: number;
}

export interface CairnWorker {
  worker: Worker;
  /** Runs until shutdown() or a shutdown signal; then closes the connection if this worker opened it. */
  run(): Promise<void>;
  shutdown(): void;
}

/** The workflows' entry: the compiled module under dist/, or the TypeScript source when run from sources (vitest). */
export function workflowsPath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const compiled = path.join(here, "workflows", "index.js");
  return existsSync(compiled) ? compiled : path.join(here, "workflows", "index.ts");
}

/** The file `npm run build` writes the workflow bundle to (scripts/bundle-workflows.ts), under dist/. */
export const WORKFLOW_BUNDLE_FILE = "workflow-bundle.js";

/** dist/ of this checkout, whether this module runs compiled (from dist/) or from its sources (vitest). */
export function distDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return existsSync(path.join(here, "workflows", "index.js")) ? here : path.join(here, "dist");
}

/**
 * The workflow bundle `npm run build` wrote, when it is there and not older than
 * any module of the workflows this worker would otherwise bundle (the compiled ones,
 * or the sources when running from them); otherwise why it cannot be used.
 */
export function prebuiltWorkflowBundle(): { codePath: string } | { stale: string } {
  const codePath = path.join(distDir(), WORKFLOW_BUNDLE_FILE);
  if (!existsSync(codePath)) return { stale: `${codePath} does not exist` };
  const built = statSync(codePath).mtimeMs;
  const dir = path.dirname(workflowsPath());
  const newer = readdirSync(dir).filter((f) => /\.(js|ts)$/.test(f) && !f.endsWith(".test.ts") && !f.endsWith(".d.ts") && statSync(path.join(dir, f)).mtimeMs > built);
  if (newer.length) return { stale: `${codePath} is older than ${path.join(dir, newer[0])}` };
  return { codePath };
}

/** Builds a Worker for Cairn's task queue. Workers need no database: each activity's input names all it needs. */
export async function createCairnWorker(options: CairnWorkerOptions): Promise<CairnWorker> {
  const owned = options.connection ? undefined : await NativeConnection.connect({ address: options.address ?? "127.0.0.1:7233" });
  const connection = options.connection ?? owned!;
  try {
    const secretBox = await loadSecretBox(options.dataDir);
    const policy = options.policy ?? loadPolicy({ dataDir: options.dataDir });
    const workflows = workflowCode(options.workflowBundle);
    const worker = await Worker.create({
      connection,
      namespace: options.namespace ?? "default",
      taskQueue: options.taskQueue ?? TASK_QUEUE,
      activities: createActivities({ secretBox, policy, threads: options.threads, maxJobs: options.maxJobs ?? maxJobsFromEnvironment() }),
      ...workflows,
      maxConcurrentActivityTaskExecutions: options.maxConcurrentActivityTaskExecutions ?? 4,
      // Heartbeats reach the server at least this often (the SDK's default is 80% of the heartbeat
      // timeout): a cancellation arrives with a heartbeat's answer, and describe() shows fresh progress.
      maxHeartbeatThrottleInterval: "1 second",
      ...(options.identity ? { identity: options.identity } : {}),
    });
    return {
      worker,
      run: async () => {
        try {
          await worker.run();
        } finally {
          await owned?.close();
        }
      },
      shutdown: () => worker.shutdown(),
    };
  } catch (err) {
    await owned?.close();
    throw err;
  }
}

/** The given bundle, the prebuilt one, or the workflows' path to bundle at start (tens of seconds to minutes), saying which in the log. */
function workflowCode(given: WorkflowBundleOption | undefined): { workflowBundle: WorkflowBundleOption } | { workflowsPath: string } {
  if (given) return { workflowBundle: given };
  const logger = Runtime.instance().logger;
  const prebuilt = prebuiltWorkflowBundle();
  if ("codePath" in prebuilt) {
    logger.info(`cairn worker: loading the workflow bundle ${prebuilt.codePath}`);
    return { workflowBundle: prebuilt };
  }
  logger.warn(`cairn worker: bundling the workflows at start (${prebuilt.stale}; \`npm run build\` writes it)`);
  return { workflowsPath: workflowsPath() };
}

async function main(): Promise<void> {
  const address = process.env.TEMPORAL_ADDRESS || "127.0.0.1:7233";
  const namespace = process.env.TEMPORAL_NAMESPACE || "default";
  const dataDir = process.env.CAIRN_DATA_DIR || ".cairn";
  const concurrency = Number(process.env.CAIRN_WORKER_CONCURRENCY) || undefined;
  const metricsAddress = process.env.CAIRN_WORKER_METRICS_ADDRESS;
  // The runtime is installed once per process, before any connection: its metrics exporter comes with it.
  if (metricsAddress) Runtime.install({ telemetryOptions: { metrics: { prometheus: { bindAddress: metricsAddress, useSecondsForDurations: true } } } });
  const policy = loadPolicy({ dataDir });
  const cairn = await createCairnWorker({ address, namespace, dataDir, policy, maxConcurrentActivityTaskExecutions: concurrency }).catch((err: Error) => {
    throw new Error(`cannot start the worker against Temporal at ${address} (namespace ${namespace}): ${err.message}; start Temporal (npm start) or set TEMPORAL_ADDRESS`);
  });
  process.stderr.write(`cairn worker: polling task queue ${TASK_QUEUE} at ${address} (namespace ${namespace}) as ${cairn.worker.options.identity}\n`);
  // The SDK's runtime turns SIGINT / SIGTERM into a graceful shutdown: running activities are cancelled and run() returns.
  await cairn.run();
  process.stderr.write("cairn worker: stopped\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err) => {
    process.stderr.write(`cairn worker: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
}

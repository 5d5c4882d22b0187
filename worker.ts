/**
 * The worker process: connects to Temporal, registers Cairn's workflows and
 * activities on the task queue, and runs until SIGINT or SIGTERM.
 *
 *   TEMPORAL_ADDRESS=127.0.0.1:7233 TEMPORAL_NAMESPACE=default CAIRN_DATA_DIR=.cairn node dist/worker.js
 *
 * Activity slots are handed out by Temporal's resource-based tuner: the worker takes
 * another activity while the machine stays under CAIRN_WORKER_TARGET_CPU and
 * CAIRN_WORKER_TARGET_MEMORY (shares: 0.8 or 80%, default 0.8 each), up to 32 at once.
 * CAIRN_WORKER_CONCURRENCY=N gives a fixed number of slots instead.
 * Every CAIRN_WORKER_REPORT_INTERVAL_MS (15000) the worker reports the machine's CPU and
 * memory and its data directory's free disk to the workers' register (GET /v1/workers).
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
import { Client } from "@temporalio/client";
import { bundleWorkflowCode, NativeConnection, Runtime, Worker, type WorkerTuner, type WorkflowBundleOption } from "@temporalio/worker";
import { createActivities } from "./activities/index.js";
import { maxJobsFromEnvironment } from "./activities/slots.js";
import { reportIntervalFromEnvironment, startWorkerReports } from "./activities/worker-report.js";
import { loadSecretBox } from "./engine/secret-box.js";
import { loadPolicy, type ExecutionPolicy } from "./policy/policy.js";
import { SEARCH_ATTRIBUTES, TASK_QUEUE, WORKER_REGISTER_TASK_QUEUE, type WorkerSlots } from "./workflows/messages.js";

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
  /** A fixed number of activity slots (each backup keeps its codec threads busy, so few is right for a small machine); otherwise the resource-based tuner hands them out. */
  maxConcurrentActivityTaskExecutions?: number;
  /** The resource-based tuner's targets (shares of the machine, 0-1); CAIRN_WORKER_TARGET_CPU / _MEMORY when absent, else 0.8 each. Ignored with a fixed number of slots. */
  resourceTargets?: { cpu: number; memory: number };
  /** How often the worker reports to the workers' register; CAIRN_WORKER_REPORT_INTERVAL_MS when absent, else 15 s. */
  reportIntervalMs?: number;
  /** A bundle (bundleWorkflowCode, or { codePath }); otherwise the one `npm run build` wrote when it is fresh (prebuiltWorkflowBundle), else the workflows are bundled at start. */
  workflowBundle?: WorkflowBundleOption;
  identity?: string;
  /** Jobs working at once across all workers; CAIRN_MAX_JOBS when absent, no limit when neither is set. */
  maxJobs?: number;
}

export interface CairnWorker {
  worker: Worker;
  /** How it hands out activity slots, as it reports it. */
  slots: WorkerSlots;
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
    await checkSearchAttributes(connection, options.namespace ?? "default");
    const secretBox = await loadSecretBox(options.dataDir);
    const policy = options.policy ?? loadPolicy({ dataDir: options.dataDir });
    const workflows = await workflowCode(options.workflowBundle);
    const namespace = options.namespace ?? "default";
    const taskQueue = options.taskQueue ?? TASK_QUEUE;
    const reportIntervalMs = options.reportIntervalMs ?? reportIntervalFromEnvironment();
    const slots = activitySlots(options);
    const worker = await Worker.create({
      connection,
      namespace,
      taskQueue,
      activities: createActivities({ secretBox, policy, threads: options.threads, maxJobs: options.maxJobs ?? maxJobsFromEnvironment() }),
      ...workflows,
      ...(slots.tuner === "fixed" ? { maxConcurrentActivityTaskExecutions: slots.activities } : { tuner: resourceBasedTuner(slots) }),
      // Heartbeats reach the server at least this often (the SDK's default is 80% of the heartbeat
      // timeout): a cancellation arrives with a heartbeat's answer, and describe() shows fresh progress.
      maxHeartbeatThrottleInterval: "1 second",
      ...(options.identity ? { identity: options.identity } : {}),
    });
    // The workers' register runs on a queue of its own, so its tasks never count or wait among the jobs'.
    const register = await Worker.create({
      connection,
      namespace,
      taskQueue: WORKER_REGISTER_TASK_QUEUE,
      ...workflows,
      maxConcurrentWorkflowTaskExecutions: 2,
      maxCachedWorkflows: 2,
      identity: worker.options.identity,
    });
    const stop = (w: Worker) => {
      if (w.getState() === "RUNNING") w.shutdown();
    };
    return {
      worker,
      slots,
      run: async () => {
        const reports = startWorkerReports({
          client: new Client({ connection, namespace }),
          identity: worker.options.identity,
          taskQueue,
          dataDir: options.dataDir,
          intervalMs: reportIntervalMs,
          slots,
          activitiesRunning: () => worker.getStatus().numInFlightNonLocalActivities,
          onError: (err) => Runtime.instance().logger.warn(`cairn worker: could not report to the workers' register: ${err.message}`),
        });
        try {
          await Promise.all([worker.run().finally(() => stop(register)), register.run().finally(() => stop(worker))]);
        } finally {
          await reports.stop();
          await owned?.close();
        }
      },
      shutdown: () => {
        stop(worker);
        stop(register);
      },
    };
  } catch (err) {
    await owned?.close();
    throw err;
  }
}

/**
 * Refuses a namespace that lacks one of Cairn's search attributes: every job sets
 * them, and a workflow task that sets an unknown one fails again and again. A server
 * that does not let the worker list them (a hosted one) is trusted.
 */
async function checkSearchAttributes(connection: NativeConnection, namespace: string): Promise<void> {
  const listed = await connection.operatorService.listSearchAttributes({ namespace }).catch(() => undefined);
  if (!listed) return;
  const missing = Object.values(SEARCH_ATTRIBUTES).filter((name) => !listed.customAttributes?.[name]);
  if (missing.length) {
    throw new Error(
      `the Temporal namespace ${namespace} lacks Cairn's search attribute(s) ${missing.join(", ")}: register each with "temporal operator search-attribute create --namespace ${namespace} --name <name> --type Keyword" (npm start and docker-compose.yml register them)`,
    );
  }
}

/** The given bundle, the prebuilt one, or the workflows bundled at start (tens of seconds to minutes), saying which in the log. */
async function workflowCode(given: WorkflowBundleOption | undefined): Promise<{ workflowBundle: WorkflowBundleOption }> {
  if (given) return { workflowBundle: given };
  const logger = Runtime.instance().logger;
  const prebuilt = prebuiltWorkflowBundle();
  if ("codePath" in prebuilt) {
    logger.info(`cairn worker: loading the workflow bundle ${prebuilt.codePath}`);
    return { workflowBundle: prebuilt };
  }
  logger.warn(`cairn worker: bundling the workflows at start (${prebuilt.stale}; \`npm run build\` writes it)`);
  // Bundled once for both of the process's workers (the jobs' and the register's).
  return { workflowBundle: await bundleWorkflowCode({ workflowsPath: workflowsPath(), logger }) };
}

/** Activities a worker runs at most under the resource-based tuner, however idle the machine looks. */
const MAX_TUNED_ACTIVITIES = 32;

/** A fixed number of activity slots when one was given, else the resource-based tuner's targets. */
function activitySlots(options: CairnWorkerOptions): WorkerSlots {
  if (options.maxConcurrentActivityTaskExecutions !== undefined) return { tuner: "fixed", activities: options.maxConcurrentActivityTaskExecutions };
  const targets = options.resourceTargets ?? resourceTargetsFromEnvironment();
  return { tuner: "resource-based", targetCpu: targets.cpu, targetMemory: targets.memory, maxActivities: MAX_TUNED_ACTIVITIES };
}

function resourceBasedTuner(slots: Extract<WorkerSlots, { tuner: "resource-based" }>): WorkerTuner {
  return {
    tunerOptions: { targetCpuUsage: slots.targetCpu, targetMemoryUsage: slots.targetMemory },
    // A backup's CPU and memory rise over its first second: the next activity is taken only after that, so the tuner sees it.
    activityTaskSlotOptions: { minimumSlots: 1, maximumSlots: slots.maxActivities, rampThrottle: "1 second" },
  };
}

/** CAIRN_WORKER_TARGET_CPU and CAIRN_WORKER_TARGET_MEMORY: a share as 0.8 or 80%; 0.8 each when unset. */
export function resourceTargetsFromEnvironment(env: NodeJS.ProcessEnv = process.env): { cpu: number; memory: number } {
  return { cpu: share(env, "CAIRN_WORKER_TARGET_CPU"), memory: share(env, "CAIRN_WORKER_TARGET_MEMORY") };
}

function share(env: NodeJS.ProcessEnv, name: string, fallback = 0.8): number {
  const text = env[name]?.trim();
  if (!text) return fallback;
  const percent = text.endsWith("%");
  const n = Number(percent ? text.slice(0, -1) : text) / (percent ? 100 : 1);
  if (!Number.isFinite(n) || n <= 0 || n > 1) throw new Error(`${name}=${text} is not a share of the machine: give a number above 0 and at most 1 (0.8) or a percentage (80%), or leave it unset for ${fallback}`);
  return n;
}

/** CAIRN_WORKER_CONCURRENCY: a fixed number of activity slots; unset, the resource-based tuner. */
function fixedConcurrency(text: string | undefined): number | undefined {
  if (!text?.trim()) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`CAIRN_WORKER_CONCURRENCY=${text} is not a number of activities: give a whole number of 1 or more, or leave it unset to let the resource-based tuner decide`);
  return n;
}

async function main(): Promise<void> {
  const address = process.env.TEMPORAL_ADDRESS || "127.0.0.1:7233";
  const namespace = process.env.TEMPORAL_NAMESPACE || "default";
  const dataDir = process.env.CAIRN_DATA_DIR || ".cairn";
  const concurrency = fixedConcurrency(process.env.CAIRN_WORKER_CONCURRENCY);
  const metricsAddress = process.env.CAIRN_WORKER_METRICS_ADDRESS;
  // The runtime is installed once per process, before any connection: its metrics exporter comes with it.
  if (metricsAddress) Runtime.install({ telemetryOptions: { metrics: { prometheus: { bindAddress: metricsAddress, useSecondsForDurations: true } } } });
  const policy = loadPolicy({ dataDir });
  const cairn = await createCairnWorker({ address, namespace, dataDir, policy, maxConcurrentActivityTaskExecutions: concurrency }).catch((err: Error) => {
    throw new Error(`cannot start the worker against Temporal at ${address} (namespace ${namespace}): ${err.message}; start Temporal (npm start) or set TEMPORAL_ADDRESS`);
  });
  const slots = cairn.slots.tuner === "fixed" ? `${cairn.slots.activities} activity slots` : `activity slots tuned to ${cairn.slots.targetCpu * 100}% CPU and ${cairn.slots.targetMemory * 100}% memory`;
  process.stderr.write(`cairn worker: ${slots}\n`);
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

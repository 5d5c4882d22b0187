/**
 * What a worker reports of itself to the workers' register (workflows/workers.ts):
 * the machine's CPU and memory, the free space of its data directory's file system
 * and the activities it runs, every CAIRN_WORKER_REPORT_INTERVAL_MS. The API lists
 * the reports (GET /v1/workers) and the bottlenecks they show.
 */
import { statfs } from "node:fs/promises";
import { cpus, freemem, hostname, totalmem } from "node:os";
import type { Client } from "@temporalio/client";
import {
  WORKER_REGISTER_ID,
  WORKER_REGISTER_TASK_QUEUE,
  WORKER_REGISTER_WORKFLOW,
  workerGoneSignal,
  workerReportSignal,
  type WorkerReport,
  type WorkerSlots,
} from "../workflows/messages.js";

/** How often a worker reports when CAIRN_WORKER_REPORT_INTERVAL_MS is not set. */
export const DEFAULT_REPORT_INTERVAL_MS = 15_000;

/** CAIRN_WORKER_REPORT_INTERVAL_MS as milliseconds (at least 1000); the default when unset. */
export function reportIntervalFromEnvironment(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.CAIRN_WORKER_REPORT_INTERVAL_MS?.trim();
  if (!text) return DEFAULT_REPORT_INTERVAL_MS;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1000) throw new Error(`CAIRN_WORKER_REPORT_INTERVAL_MS=${text} is not an interval: give whole milliseconds, 1000 or more (default ${DEFAULT_REPORT_INTERVAL_MS})`);
  return n;
}

/** The machine's CPU time counters (ms), summed over its cores. */
export interface CpuTimes {
  idle: number;
  total: number;
}

export function cpuTimes(): CpuTimes {
  let idle = 0;
  let total = 0;
  for (const { times } of cpus()) {
    idle += times.idle;
    total += times.user + times.nice + times.sys + times.idle + times.irq;
  }
  return { idle, total };
}

/** The busy share (0-1) of the CPU time between two readings; 0 when no time passed. */
export function cpuBusy(before: CpuTimes, after: CpuTimes): number {
  const total = after.total - before.total;
  if (total <= 0) return 0;
  return Math.min(1, Math.max(0, 1 - (after.idle - before.idle) / total));
}

export interface WorkerReporterOptions {
  client: Client;
  identity: string;
  taskQueue: string;
  dataDir: string;
  intervalMs: number;
  slots: WorkerSlots;
  /** Activities the worker runs now. */
  activitiesRunning(): number;
  /** Called with a report that could not be sent (Temporal unreachable): the next one is tried at its time. */
  onError?(err: Error): void;
}

/** Measures the machine and the data directory's file system: one report. */
export async function measureWorker(o: Omit<WorkerReporterOptions, "client" | "onError">, cpu: number, now = new Date()): Promise<WorkerReport> {
  const fs = await statfs(o.dataDir);
  const total = totalmem();
  return {
    identity: o.identity,
    host: hostname(),
    taskQueue: o.taskQueue,
    at: now.toISOString(),
    intervalMs: o.intervalMs,
    cpu,
    // os.freemem() is the memory available to new processes (Linux: MemAvailable), page cache excluded.
    memory: { usedBytes: total - freemem(), totalBytes: total },
    disk: { path: o.dataDir, freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize },
    activitiesRunning: o.activitiesRunning(),
    slots: o.slots,
  };
}

/**
 * Sends a report one second after start (the first CPU reading needs an interval) and
 * then every intervalMs, by signal-with-start to the register; stop() ends the reports
 * and tells the register the worker is gone.
 */
export function startWorkerReports(o: WorkerReporterOptions): { stop(): Promise<void> } {
  let last = cpuTimes();
  let stopped = false;
  let sending: Promise<void> = Promise.resolve();
  const send = async () => {
    const now = cpuTimes();
    const report = await measureWorker(o, cpuBusy(last, now));
    last = now;
    await o.client.workflow.signalWithStart(WORKER_REGISTER_WORKFLOW, {
      workflowId: WORKER_REGISTER_ID,
      taskQueue: WORKER_REGISTER_TASK_QUEUE,
      args: [[]],
      signal: workerReportSignal,
      signalArgs: [report],
    });
  };
  const tick = () => {
    if (stopped) return;
    sending = send().catch((err: Error) => o.onError?.(err));
    void sending.then(() => {
      if (!stopped) timer = setTimeout(tick, o.intervalMs).unref();
    });
  };
  let timer: NodeJS.Timeout | undefined = setTimeout(tick, 1000).unref();
  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      await sending;
      await o.client.workflow
        .getHandle(WORKER_REGISTER_ID)
        .signal(workerGoneSignal, o.identity)
        .catch(() => undefined);
    },
  };
}

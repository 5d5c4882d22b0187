/**
 * Bottlenecks of the workers: a worker whose machine is busier than an operator
 * should let it run (CPU over 80%, memory over 85%, its data directory's disk over
 * 90% full), each with what to do. Reads the workers' own reports; a report older
 * than three of its intervals is stale and shows nothing (its worker is listed as such).
 */
import type { Priority, Recommendation } from "./recommendations.js";

/** What a worker measured, as it reports it (workflows/messages.ts WorkerReport). */
export interface WorkerLoad {
  identity: string;
  host: string;
  /** When it measured (ISO). */
  at: string;
  intervalMs: number;
  /** Busy share of the machine's CPU, 0-1. */
  cpu: number;
  memory: { usedBytes: number; totalBytes: number };
  disk: { path: string; freeBytes: number; totalBytes: number };
}

export type BottleneckResource = "cpu" | "memory" | "disk";

/** Above these shares of the machine (strictly), a resource is a bottleneck. */
export const BOTTLENECK_THRESHOLDS: Readonly<Record<BottleneckResource, number>> = { cpu: 0.8, memory: 0.85, disk: 0.9 };

export interface Bottleneck {
  identity: string;
  host: string;
  resource: BottleneckResource;
  /** The share in use (0-1) and the threshold it passed. */
  used: number;
  threshold: number;
  at: string;
  recommendation: Recommendation;
}

/** True when the worker's last report is older than three of its intervals: it stopped, or cannot reach Temporal. */
export function isStale(load: Pick<WorkerLoad, "at" | "intervalMs">, now: Date): boolean {
  return now.getTime() - Date.parse(load.at) > 3 * load.intervalMs;
}

/** The share of each resource a report shows in use. */
export function usage(load: WorkerLoad): Record<BottleneckResource, number> {
  return {
    cpu: load.cpu,
    memory: load.memory.totalBytes > 0 ? load.memory.usedBytes / load.memory.totalBytes : 0,
    disk: load.disk.totalBytes > 0 ? (load.disk.totalBytes - load.disk.freeBytes) / load.disk.totalBytes : 0,
  };
}

const ORDER: Record<Priority, number> = { critical: 0, high: 1, medium: 2, low: 3 };

/** The bottlenecks of fresh reports, most urgent first (then furthest past the threshold). */
export function findBottlenecks(loads: readonly WorkerLoad[], now: Date): Bottleneck[] {
  const found: Bottleneck[] = [];
  for (const load of loads) {
    if (isStale(load, now)) continue;
    const used = usage(load);
    for (const resource of ["cpu", "memory", "disk"] as const) {
      const threshold = BOTTLENECK_THRESHOLDS[resource];
      if (!(used[resource] > threshold)) continue;
      found.push({ identity: load.identity, host: load.host, resource, used: used[resource], threshold, at: load.at, recommendation: recommend(resource, load, used[resource]) });
    }
  }
  return found.sort((a, b) => ORDER[a.recommendation.priority] - ORDER[b.recommendation.priority] || b.used - b.threshold - (a.used - a.threshold));
}

const percent = (share: number) => `${Math.round(share * 100)}%`;
const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;

function recommend(resource: BottleneckResource, load: WorkerLoad, used: number): Recommendation {
  const who = `Worker ${load.identity} on ${load.host}`;
  const over = `${percent(used)}, over ${percent(BOTTLENECK_THRESHOLDS[resource])}`;
  switch (resource) {
    case "cpu":
      return {
        type: "performance",
        priority: "medium",
        title: `${who} is CPU-bound`,
        description: `Its machine's CPU is busy ${over}. Add a worker on another machine (they share the task queue), or give this one fewer codec threads per job (CAIRN_THREADS); if it runs other services, lower CAIRN_WORKER_TARGET_CPU so the tuner takes fewer activities at once.`,
        impact: "Backups and restores on it slow down while the CPU is saturated; RTO and backup windows stretch.",
      };
    case "memory":
      return {
        type: "performance",
        priority: "high",
        title: `${who} is short of memory`,
        description: `${over} of its machine's ${gib(load.memory.totalBytes)} memory is in use. Lower CAIRN_WORKER_TARGET_MEMORY so the tuner takes fewer activities at once, give it fewer codec threads (CAIRN_THREADS), or add memory.`,
        impact: "A worker out of memory is killed mid-step; its jobs retry elsewhere and start over from their last checkpoint.",
      };
    case "disk":
      return {
        type: "capacity",
        priority: used > 0.97 ? "critical" : "high",
        title: `${who}: the disk of ${load.disk.path} is nearly full`,
        description: `${over} of ${gib(load.disk.totalBytes)} is used; ${gib(load.disk.freeBytes)} is free. Free space on that file system, or move the worker's data directory (CAIRN_DATA_DIR) to a larger disk.`,
        impact: "Recovery drills restore into the data directory by default (CAIRN_DRILL_DIR is <data dir>/drills): they fail when it fills.",
      };
  }
}

import { describe, expect, it } from "vitest";
import { BOTTLENECK_THRESHOLDS, findBottlenecks, isStale, type WorkerLoad } from "./bottlenecks.js";

const now = new Date("2026-03-01T12:00:00.000Z");
const GiB = 2 ** 30;

/** A worker at the given shares of CPU, memory and disk, reported a second ago every 15 s. */
function load(cpu: number, memory: number, disk: number, extra: Partial<WorkerLoad> = {}): WorkerLoad {
  return {
    identity: "101@backup-1",
    host: "backup-1",
    at: new Date(now.getTime() - 1000).toISOString(),
    intervalMs: 15_000,
    cpu,
    memory: { usedBytes: memory * 16 * GiB, totalBytes: 16 * GiB },
    disk: { path: "/var/lib/cairn", freeBytes: (1 - disk) * 1000 * GiB, totalBytes: 1000 * GiB },
    ...extra,
  };
}

const resources = (loads: WorkerLoad[]) => findBottlenecks(loads, now).map((b) => b.resource);

describe("worker bottlenecks: CPU over 80%, memory over 85%, disk over 90%", () => {
  it("finds none at the thresholds themselves", () => {
    expect(BOTTLENECK_THRESHOLDS).toEqual({ cpu: 0.8, memory: 0.85, disk: 0.9 });
    expect(findBottlenecks([load(0.8, 0.85, 0.9)], now)).toEqual([]);
  });

  it("finds each resource just past its threshold, with a recommendation naming the worker and what to change", () => {
    expect(resources([load(0.81, 0.5, 0.5)])).toEqual(["cpu"]);
    expect(resources([load(0.5, 0.851, 0.5)])).toEqual(["memory"]);
    expect(resources([load(0.5, 0.5, 0.901)])).toEqual(["disk"]);
    const [cpu] = findBottlenecks([load(0.93, 0.5, 0.5)], now);
    expect(cpu).toMatchObject({ identity: "101@backup-1", host: "backup-1", resource: "cpu", used: 0.93, threshold: 0.8 });
    expect(cpu.recommendation).toMatchObject({ type: "performance", priority: "medium" });
    expect(cpu.recommendation.title).toContain("101@backup-1");
    expect(cpu.recommendation.description).toContain("93%, over 80%");
    expect(cpu.recommendation.description).toContain("CAIRN_WORKER_TARGET_CPU");
    const [memory] = findBottlenecks([load(0.5, 0.9, 0.5)], now);
    expect(memory.recommendation.description).toContain("CAIRN_WORKER_TARGET_MEMORY");
    const [disk] = findBottlenecks([load(0.5, 0.5, 0.95)], now);
    expect(disk.recommendation).toMatchObject({ type: "capacity", priority: "high" });
    expect(disk.recommendation.title).toContain("/var/lib/cairn");
    expect(disk.recommendation.description).toContain("50.0 GiB is free");
  });

  it("puts the most urgent first: a disk about to fill before memory, memory before CPU", () => {
    const found = findBottlenecks([load(0.99, 0.5, 0.5, { identity: "1@a" }), load(0.5, 0.9, 0.5, { identity: "2@b" }), load(0.5, 0.5, 0.98, { identity: "3@c" })], now);
    expect(found.map((b) => [b.identity, b.resource, b.recommendation.priority])).toEqual([
      ["3@c", "disk", "critical"],
      ["2@b", "memory", "high"],
      ["1@a", "cpu", "medium"],
    ]);
  });

  it("ignores a report older than three of its intervals: the worker is stale, its figures are not today's", () => {
    const old = load(0.99, 0.99, 0.99, { at: new Date(now.getTime() - 46_000).toISOString() });
    expect(isStale(old, now)).toBe(true);
    expect(findBottlenecks([old], now)).toEqual([]);
    expect(isStale(load(0.99, 0.99, 0.99, { at: new Date(now.getTime() - 44_000).toISOString() }), now)).toBe(false);
  });

  it("does not divide by zero on a report without totals", () => {
    expect(findBottlenecks([load(0.1, 0, 0, { memory: { usedBytes: 0, totalBytes: 0 }, disk: { path: "/", freeBytes: 0, totalBytes: 0 } })], now)).toEqual([]);
  });
});

import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { CairnError } from "./errors.js";
import { applyPolicy, type PolicySnapshot, type RetentionPolicy } from "./retention.js";

const GOLDEN = path.join(import.meta.dirname, "..", "test", "golden", "retention");

interface GoldenCase {
  description: string;
  policy: RetentionPolicy;
  /** Kept snapshot id -> reasons; every other snapshot must be removed. */
  keep: Record<string, string[]>;
}

const snapshots: PolicySnapshot[] = (JSON.parse(readFileSync(path.join(GOLDEN, "snapshots.json"), "utf8")) as { id: string; time: string; tags: string[] }[]).map(
  (s) => ({ ...s, host: "db1", paths: ["/srv"] }),
);
const cases = readdirSync(GOLDEN).filter((f) => f.endsWith(".json") && f !== "snapshots.json").sort();

describe("retention policy golden files", () => {
  it("has a fixed list of about 60 snapshots over two years", () => {
    expect(snapshots.length).toBe(60);
    expect(cases.length).toBeGreaterThanOrEqual(10);
  });

  for (const file of cases) {
    const golden = JSON.parse(readFileSync(path.join(GOLDEN, file), "utf8")) as GoldenCase;
    it(`${file}: ${golden.description}`, () => {
      const result = applyPolicy(snapshots, golden.policy);
      const kept = Object.fromEntries(result.keep.map((k) => [k.snapshot.id, k.reasons]));
      expect(kept).toEqual(golden.keep);
      expect(result.keep.map((k) => k.snapshot.id)).toEqual(Object.keys(golden.keep).sort().reverse());
      expect(result.remove.map((s) => s.id).sort()).toEqual(snapshots.map((s) => s.id).filter((id) => !(id in golden.keep)));
    });
  }

  it("does not depend on the order the snapshots come in", () => {
    const policy = { keepDaily: 7, keepWeekly: 4, keepMonthly: 6, keepYearly: 2, keepTags: ["release"] };
    const shuffled = [...snapshots].sort((a, b) => (a.id.split("").reverse().join("") < b.id.split("").reverse().join("") ? -1 : 1));
    expect(applyPolicy(shuffled, policy)).toEqual(applyPolicy(snapshots, policy));
  });
});

describe("applyPolicy", () => {
  const snap = (id: string, time: string, host = "web", paths = ["/var/www"], tags: string[] = []): PolicySnapshot => ({ id, time, host, paths, tags });

  it("refuses an empty policy instead of removing every snapshot", () => {
    for (const policy of [{}, { keepLast: 0, keepDaily: 0 }, { keepTags: [] }]) {
      expect(() => applyPolicy([snap("a", "2024-01-01T00:00:00Z")], policy)).toThrow(CairnError);
      expect(() => applyPolicy([snap("a", "2024-01-01T00:00:00Z")], policy)).toThrow(/no retention policy given/);
    }
  });

  it("refuses counts and durations it cannot read", () => {
    expect(() => applyPolicy([], { keepDaily: -1 })).toThrow(/--keep-daily must be a whole number/);
    expect(() => applyPolicy([], { keepLast: 1.5 })).toThrow(/--keep-last/);
    expect(() => applyPolicy([], { keepWithin: "30 days" })).toThrow(/cannot read the --keep-within duration/);
    expect(() => applyPolicy([], { keepWithin: "0d" })).toThrow(/--keep-within/);
  });

  it("keeps more than keepLast when another rule keeps an older snapshot too (the README's example)", () => {
    const march = Array.from({ length: 20 }, (_, i) => snap(`m${i + 1}`, `2026-03-${String(i + 1).padStart(2, "0")}T03:00:00Z`));
    const kept = applyPolicy(march, { keepLast: 3, keepWeekly: 2 }).keep.map((k) => [k.snapshot.id, k.reasons]);
    expect(kept).toEqual([["m20", ["last", "weekly"]], ["m19", ["last"]], ["m18", ["last"]], ["m15", ["weekly"]]]);
  });

  it("keeps everything with an unlimited count", () => {
    const list = [snap("a", "2024-01-01T00:00:00Z"), snap("b", "2024-01-02T00:00:00Z")];
    expect(applyPolicy(list, { keepLast: Infinity }).remove).toEqual([]);
  });

  it("applies the policy to each host and path set on its own by default", () => {
    const list = [
      snap("w1", "2024-01-01T00:00:00Z", "web"),
      snap("w2", "2024-01-02T00:00:00Z", "web"),
      snap("d1", "2024-01-01T00:00:00Z", "db", ["/srv"]),
      snap("d2", "2024-01-03T00:00:00Z", "db", ["/srv"]),
      snap("d3", "2024-01-04T00:00:00Z", "db", ["/etc"]),
    ];
    const byHostPaths = applyPolicy(list, { keepLast: 1 });
    expect(byHostPaths.keep.map((k) => k.snapshot.id)).toEqual(["d3", "d2", "w2"]);
    expect(byHostPaths.groups.map((g) => g.key)).toEqual([
      { host: "web", paths: ["/var/www"] },
      { host: "db", paths: ["/srv"] },
      { host: "db", paths: ["/etc"] },
    ]);

    const byHost = applyPolicy(list, { keepLast: 1 }, { host: true, paths: false, tags: false });
    expect(byHost.keep.map((k) => k.snapshot.id)).toEqual(["d3", "w2"]);

    const together = applyPolicy(list, { keepLast: 1 }, { host: false, paths: false, tags: false });
    expect(together.keep.map((k) => k.snapshot.id)).toEqual(["d3"]);
    // Equal times are ordered by id, so the result never depends on listing order.
    expect(together.remove.map((s) => s.id)).toEqual(["d2", "w2", "d1", "w1"]);
  });

  it("counts keep-within back from each group's latest snapshot, not from now", () => {
    const list = [snap("old", "2020-01-01T00:00:00Z"), snap("new", "2020-01-20T00:00:00Z"), snap("gone", "2019-12-01T00:00:00Z")];
    const result = applyPolicy(list, { keepWithin: 30 * 86_400_000 });
    expect(result.keep).toEqual([
      { snapshot: list[1], reasons: ["within 30d"] },
      { snapshot: list[0], reasons: ["within 30d"] },
    ]);
    expect(result.remove).toEqual([list[2]]);
  });

  it("uses UTC day boundaries whatever the local time zone", () => {
    // 23:30 UTC and 00:30 UTC the next day are two days, even where local time puts them on one.
    const list = [snap("late", "2024-03-01T23:30:00Z"), snap("early", "2024-03-02T00:30:00Z"), snap("earlier", "2024-03-01T22:00:00Z")];
    expect(applyPolicy(list, { keepDaily: 2 }).keep.map((k) => k.snapshot.id)).toEqual(["early", "late"]);
  });
});

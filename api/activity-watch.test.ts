import { describe, expect, it } from "vitest";
import { ActivityWatch, DEFAULT_ACTIVITY_LIMITS } from "./activity-watch.js";

describe("activity watch", () => {
  it("flags a token past 100 reads within an hour, once, and forgets after the hour", () => {
    let now = 0;
    const watch = new ActivityWatch({ ...DEFAULT_ACTIVITY_LIMITS, block: true }, () => now);
    for (let i = 0; i < 100; i++) expect(watch.count("t1", "read", 0)).toBeUndefined();
    expect(watch.count("t2", "read", 0)).toBeUndefined(); // another token has its own count
    expect(watch.count("t1", "read", 0)).toMatchObject({ count: 101, limit: "more than 100 reads an hour" });
    expect(watch.count("t1", "read", 0)).toBeUndefined(); // raised once
    expect(watch.blockedFor("t1", "read")).toBe(3600);
    expect(watch.blockedFor("t1", "restore")).toBeUndefined();
    now = 60 * 60_000 + 1;
    expect(watch.blockedFor("t1", "read")).toBeUndefined();
    expect(watch.count("t1", "read", 0)).toBeUndefined();
  });

  it("counts restored bytes as well as restores, and blocks only when the policy says so", () => {
    let now = 0;
    const watch = new ActivityWatch({ ...DEFAULT_ACTIVITY_LIMITS, restoresPerHour: 5, restoreBytesPerHour: 1000 }, () => now);
    expect(watch.count("t1", "restore", 600)).toBeUndefined();
    now += 1000;
    expect(watch.count("t1", "restore", 600)).toMatchObject({ count: 2, bytes: 1200, limit: "more than 1000 bytes restored an hour" });
    expect(watch.blockedFor("t1", "restore")).toBeUndefined();
  });
});

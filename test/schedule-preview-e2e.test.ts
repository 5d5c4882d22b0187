import * as path from "node:path";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiClient } from "./api-client.js";
import { tempDir } from "./helpers.js";
import { testPolicy } from "./policy-fixtures.js";
import { startStack, type Stack } from "./stack.js";

/** A time as a wall clock in a zone: "Wed 04:30". */
function wallClock(iso: string, timeZone: string): string {
  const parts = new Intl.DateTimeFormat("en-GB", { timeZone, weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).formatToParts(new Date(iso));
  const get = (type: string) => parts.find((p) => p.type === type)!.value;
  return `${get("weekday")} ${get("hour")}:${get("minute")}`;
}

interface Problem {
  detail: string;
  errors?: { path: string; message: string }[];
}

/**
 * POST /v1/schedules/preview against a real API and the run's Temporal dev server:
 * Temporal computes the next runs of a cron, zone and blackout windows before
 * any plan exists, and the short-lived schedule it uses is gone afterwards.
 */
describe("schedule preview", () => {
  const tmp = tempDir("cairn-preview-");
  const dataDir = path.join(tmp.dir, "data");
  let stack: Stack;
  let admin: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger("WARN") });
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, worker: false });
    admin = apiClient(stack.api);
  });

  afterAll(async () => {
    await stack?.close();
    tmp.cleanup();
  });

  /** The preview- schedules Temporal lists; its list lags deletes a little, so a leftover must still be there after a while to count. */
  const leftovers = async () => {
    let ids: string[] = [];
    for (const deadline = Date.now() + 30_000; ; await new Promise((r) => setTimeout(r, 500))) {
      ids = [];
      for await (const s of stack.client.schedule.list()) if (s.scheduleId.startsWith("preview-")) ids.push(s.scheduleId);
      if (!ids.length || Date.now() > deadline) return ids;
    }
  };

  it("lists Wednesdays at 04:30 in Paris, as Temporal computes them, and leaves no schedule behind", async () => {
    const { nextRuns } = await admin.ok<{ nextRuns: string[] }>("POST", "/v1/schedules/preview", { cron: "30 4 * * 3", timezone: "Europe/Paris", count: 5 });
    expect(nextRuns).toHaveLength(5);
    expect(nextRuns.map((t) => wallClock(t, "Europe/Paris"))).toEqual(Array(5).fill("Wed 04:30"));
    expect(new Date(nextRuns[0]).getTime()).toBeGreaterThan(Date.now());
    // A week apart, in order.
    for (let i = 1; i < nextRuns.length; i++) expect(new Date(nextRuns[i]).getTime()).toBeGreaterThan(new Date(nextRuns[i - 1]).getTime());
    expect(await leftovers()).toEqual([]);
  });

  it("lists up to 20 runs (past the ten one describe gives), and no more", async () => {
    const { nextRuns } = await admin.ok<{ nextRuns: string[] }>("POST", "/v1/schedules/preview", { cron: "0 * * * *", timezone: "UTC", count: 20 });
    expect(nextRuns).toHaveLength(20);
    expect(new Set(nextRuns).size).toBe(20);
    for (let i = 1; i < 20; i++) expect(new Date(nextRuns[i]).getTime() - new Date(nextRuns[i - 1]).getTime()).toBe(3_600_000);
    const tooMany = await admin.call<Problem>("POST", "/v1/schedules/preview", { cron: "0 * * * *", count: 21 });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.errors?.map((e) => e.path)).toContain("count");
    expect(await leftovers()).toEqual([]);
  });

  it("leaves out the runs a blackout window covers", async () => {
    const body = { cron: "0 * * * *", timezone: "Europe/Paris", count: 20 };
    const all = (await admin.ok<{ nextRuns: string[] }>("POST", "/v1/schedules/preview", body)).nextRuns;
    const hourOf = (t: string) => Number(wallClock(t, "Europe/Paris").slice(4, 6));
    const blacked = (await admin.ok<{ nextRuns: string[] }>("POST", "/v1/schedules/preview", { ...body, blackouts: [{ from: "22:00", to: "06:00" }] })).nextRuns;
    expect(blacked).toHaveLength(20);
    // Every hourly run from 22:00 to 05:00 (Paris) is gone; every other hour is still there.
    expect(blacked.filter((t) => hourOf(t) >= 22 || hourOf(t) < 6)).toEqual([]);
    // Twenty hours in a row always reach into the window, so some were removed; up to the same time, the rest are the same runs.
    const inWindow = (t: string) => hourOf(t) >= 22 || hourOf(t) < 6;
    expect(all.filter(inWindow).length).toBeGreaterThan(0);
    // (From the second run on: the hour may turn between the two calls.)
    const [start, end] = [new Date(all[1]).getTime(), new Date(all[all.length - 1]).getTime()];
    const between = (t: string) => new Date(t).getTime() >= start && new Date(t).getTime() <= end;
    expect(blacked.filter(between)).toEqual(all.filter((t) => between(t) && !inWindow(t)));
    expect(await leftovers()).toEqual([]);
  });

  it("refuses a bad cron or zone with a 400 naming the field, in the plan's wording", async () => {
    const cron = await admin.call<Problem>("POST", "/v1/schedules/preview", { cron: "61 4 * * 3", timezone: "Europe/Paris" });
    expect(cron.status).toBe(400);
    expect(cron.body.errors?.[0].path).toBe("cron");
    expect(cron.body.detail).toContain('the minute field "61" is not valid');
    const zone = await admin.call<Problem>("POST", "/v1/schedules/preview", { cron: "30 4 * * 3", timezone: "Paris" });
    expect(zone.status).toBe(400);
    expect(zone.body.errors?.[0].path).toBe("timezone");
    expect(zone.body.detail).toContain("IANA time zone");
    const blackout = await admin.call<Problem>("POST", "/v1/schedules/preview", { cron: "30 4 * * 3", blackouts: [{ from: "25:00", to: "06:00" }] });
    expect(blackout.status).toBe(400);
    expect(await leftovers()).toEqual([]);
  });

  it("is for plan editors: a viewer and an operator get 403", async () => {
    for (const role of ["viewer", "operator"]) {
      const { token } = await admin.ok<{ token: string }>("POST", "/v1/tokens", { name: `${role}-preview`, role });
      const res = await apiClient(stack.api, token).call<Problem>("POST", "/v1/schedules/preview", { cron: "30 4 * * 3", timezone: "Europe/Paris" });
      expect(res.status, role).toBe(403);
      expect(res.body.detail).toContain("plans:write");
    }
  });
});

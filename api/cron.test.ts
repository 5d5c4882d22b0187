import { describe, expect, it } from "vitest";
import { cronProblem, isTimeZone } from "./cron.js";

describe("cron expressions", () => {
  it("accepts what Temporal Schedules read", () => {
    for (const cron of ["0 3 * * *", "*/15 * * * *", "0 0-6/2 1,15 * MON-FRI", "30 2 * JAN,JUL sun", "@daily", "@hourly", "0 12 1-7 * 1"]) {
      expect(cronProblem(cron), cron).toBeUndefined();
    }
  });

  it("names the field that is wrong", () => {
    expect(cronProblem("60 * * * *")).toMatch(/minute field "60"/);
    expect(cronProblem("0 24 * * *")).toMatch(/hour field/);
    expect(cronProblem("0 0 0 * *")).toMatch(/day of month/);
    expect(cronProblem("0 0 * 13 *")).toMatch(/month field/);
    expect(cronProblem("0 0 * * 7")).toMatch(/day of week/);
    expect(cronProblem("0 0 * * * *")).toMatch(/5 fields/);
    expect(cronProblem("@sometimes")).toMatch(/5 fields/);
    expect(cronProblem("0 0 ? * *")).toMatch(/day of month/);
  });
});

describe("time zones", () => {
  it("accepts IANA names and refuses offsets, wrong case and inventions", () => {
    for (const tz of ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "US/Pacific", "Etc/GMT+2"]) expect(isTimeZone(tz), tz).toBe(true);
    for (const tz of ["+02:00", "europe/paris", "Mars/Olympus_Mons", "", "Europe/Paris "]) expect(isTimeZone(tz), tz).toBe(false);
  });
});

import type { CalendarSpec, DayOfWeek } from "@temporalio/client";
import { describe, expect, it } from "vitest";
import { blackoutCalendars, blackoutProblem, inBlackout, WEEK, type Blackout } from "./blackouts.js";

const DAYS: DayOfWeek[] = ["SUNDAY", "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY"];

/** Whether a calendar field admits `value`, the way Temporal reads it (absent second/minute/hour mean 0). */
function admits<T>(field: CalendarSpec["hour"] | CalendarSpec["dayOfWeek"], value: T, absent: "*" | 0): boolean {
  const f = field ?? absent;
  if (f === "*") return true;
  const ranges = (Array.isArray(f) ? f : [f]) as unknown[];
  return ranges.some((r) => {
    if (typeof r !== "object" || r === null) return r === value;
    const { start, end } = r as { start: unknown; end?: unknown };
    if (typeof value === "string") {
      const [s, e, v] = [DAYS.indexOf(start as DayOfWeek), DAYS.indexOf((end ?? start) as DayOfWeek), DAYS.indexOf(value as DayOfWeek)];
      return v >= s && v <= e;
    }
    return (value as number) >= (start as number) && (value as number) <= ((end ?? start) as number);
  });
}

function skipped(specs: CalendarSpec[], day: number, minute: number, second = 0): boolean {
  return specs.some((s) => admits(s.dayOfWeek, DAYS[day], "*") && admits(s.hour, Math.floor(minute / 60), 0) && admits(s.minute, minute % 60, 0) && admits(s.second, second, 0));
}

/** Every minute of the week: the calendars skip exactly the minutes the windows cover. */
function agreeAllWeek(windows: Blackout[]): void {
  const specs = blackoutCalendars(windows);
  for (let day = 0; day < 7; day++) {
    for (let minute = 0; minute < 1440; minute++) {
      const want = inBlackout(windows, WEEK[day], minute);
      if (skipped(specs, day, minute) !== want || skipped(specs, day, minute, 37) !== want) {
        throw new Error(`${WEEK[day]} ${Math.floor(minute / 60)}:${minute % 60}: calendars say ${!want}, windows say ${want}`);
      }
    }
  }
}

describe("blackout windows", () => {
  it("skip exactly the minutes of business hours on weekdays", () => {
    const windows: Blackout[] = [{ days: ["mon", "tue", "wed", "thu", "fri"], from: "08:30", to: "18:15" }];
    agreeAllWeek(windows);
    expect(inBlackout(windows, "mon", 8 * 60 + 29)).toBe(false);
    expect(inBlackout(windows, "mon", 8 * 60 + 30)).toBe(true);
    expect(inBlackout(windows, "fri", 18 * 60 + 14)).toBe(true);
    expect(inBlackout(windows, "fri", 18 * 60 + 15)).toBe(false);
    expect(inBlackout(windows, "sat", 12 * 60)).toBe(false);
  });

  it("continue past midnight into the next day, Saturday night into Sunday", () => {
    const windows: Blackout[] = [{ days: ["sat"], from: "22:00", to: "02:30" }];
    agreeAllWeek(windows);
    expect(inBlackout(windows, "sun", 2 * 60 + 29)).toBe(true);
    expect(inBlackout(windows, "sun", 2 * 60 + 30)).toBe(false);
    expect(inBlackout(windows, "sat", 1 * 60)).toBe(false);
  });

  it("cover whole days and single hours, several windows at once", () => {
    agreeAllWeek([{ days: ["sun"], from: "00:00", to: "24:00" }, { from: "12:00", to: "13:00" }, { from: "23:59", to: "00:00" }]);
  });

  it("say what is wrong with a window", () => {
    expect(blackoutProblem({ from: "8:00", to: "18:00" })).toMatch(/HH:MM/);
    expect(blackoutProblem({ from: "08:00", to: "24:30" })).toMatch(/to "24:30"/);
    expect(blackoutProblem({ from: "09:00", to: "09:00" })).toMatch(/empty/);
    expect(blackoutProblem({ from: "22:00", to: "06:00" })).toBeUndefined();
  });
});

import type { CalendarSpec, DayOfWeek } from "@temporalio/client";

/**
 * Blackout windows: times of the week in which a plan's schedule starts no run (a batch
 * window, business hours, a maintenance slot). Written as days and a time-of-day range in
 * the schedule's own time zone; given to Temporal as the schedule's `skip` calendars, so
 * Temporal itself never takes an action inside them (and its next-run list leaves them out).
 */
export const WEEK = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;
export type WeekDay = (typeof WEEK)[number];

export interface Blackout {
  /** Days the window starts on; every day when absent. */
  days?: WeekDay[];
  /** "HH:MM", inclusive. */
  from: string;
  /** "HH:MM", exclusive; earlier than `from` for a window that runs past midnight; "24:00" for the end of the day. */
  to: string;
}

const TEMPORAL_DAYS: DayOfWeek[] = ["SUNDAY", "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY"];

/** Minutes since midnight of "HH:MM" (00:00 to 24:00), or undefined when it is not such a time. */
export function minuteOfDay(text: string): number | undefined {
  const m = /^(\d{2}):(\d{2})$/.exec(text);
  if (!m) return undefined;
  const [h, min] = [Number(m[1]), Number(m[2])];
  if (h > 24 || min > 59 || (h === 24 && min !== 0)) return undefined;
  return h * 60 + min;
}

/** Why a window cannot be used, or undefined. */
export function blackoutProblem(window: Blackout): string | undefined {
  const from = minuteOfDay(window.from);
  const to = minuteOfDay(window.to);
  if (from === undefined || from === 1440) return `from "${window.from}" is not a time of day; write HH:MM between 00:00 and 23:59, such as "08:00"`;
  if (to === undefined) return `to "${window.to}" is not a time of day; write HH:MM between 00:00 and 24:00, such as "18:00"`;
  if (from === to) return `from and to are both ${window.from}: the window would be empty; to black out whole days write from "00:00" to "24:00"`;
  return undefined;
}

/** The calendar specs of [from, to) minutes of the day on `days` (every second of each matched minute). */
function span(days: WeekDay[] | undefined, from: number, to: number): CalendarSpec[] {
  const dayOfWeek = days?.length ? days.map((d) => TEMPORAL_DAYS[WEEK.indexOf(d)]) : ("*" as const);
  const at = (hour: CalendarSpec["hour"], minute: CalendarSpec["minute"]): CalendarSpec => ({ second: "*", minute, hour, dayOfWeek, comment: "blackout window" });
  const [fromH, fromM, toH, toM] = [Math.floor(from / 60), from % 60, Math.floor(to / 60), to % 60];
  if (fromH === toH) return [at(fromH, { start: fromM, end: toM - 1 })];
  const specs: CalendarSpec[] = [];
  let fullFrom = fromH;
  if (fromM > 0) {
    specs.push(at(fromH, { start: fromM, end: 59 }));
    fullFrom++;
  }
  if (fullFrom <= toH - 1) specs.push(at({ start: fullFrom, end: toH - 1 }, "*"));
  if (toM > 0) specs.push(at(toH, { start: 0, end: toM - 1 }));
  return specs;
}

/** The skip calendars of the windows; a window past midnight continues on the next day. */
export function blackoutCalendars(windows: Blackout[]): CalendarSpec[] {
  const specs: CalendarSpec[] = [];
  for (const window of windows) {
    const from = minuteOfDay(window.from)!;
    const to = minuteOfDay(window.to)!;
    if (from < to) {
      specs.push(...span(window.days, from, to));
    } else {
      specs.push(...span(window.days, from, 1440));
      const nextDays = window.days?.map((d) => WEEK[(WEEK.indexOf(d) + 1) % 7]);
      if (to > 0) specs.push(...span(nextDays, 0, to));
    }
  }
  return specs;
}

/** Whether `minute` (of the day) on `day` falls in one of the windows: the same rule, for checks and tests. */
export function inBlackout(windows: Blackout[], day: WeekDay, minute: number): boolean {
  return windows.some((w) => {
    const from = minuteOfDay(w.from)!;
    const to = minuteOfDay(w.to)!;
    const on = (d: WeekDay) => !w.days?.length || w.days.includes(d);
    if (from < to) return on(day) && minute >= from && minute < to;
    const yesterday = WEEK[(WEEK.indexOf(day) + 6) % 7];
    return (on(day) && minute >= from) || (on(yesterday) && minute < to);
  });
}

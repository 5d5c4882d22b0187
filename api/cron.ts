/**
 * Checks schedule inputs before they reach Temporal, so a typo is a 400 naming
 * the field rather than a failed schedule. Accepts what Temporal Schedules read:
 * five fields (minute hour day-of-month month day-of-week) or @hourly, @daily,
 * @weekly, @monthly, @yearly.
 */

const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12, names: MONTHS, offset: 1 },
  { name: "day of week", min: 0, max: 6, names: DAYS, offset: 0 },
] as const;

const SHORTHANDS = new Set(["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually"]);

/** Returns why a cron expression is not valid, or undefined when it is. */
export function cronProblem(expression: string): string | undefined {
  const text = expression.trim();
  if (SHORTHANDS.has(text)) return undefined;
  const parts = text.split(/\s+/);
  if (parts.length !== 5) {
    return `a cron expression has 5 fields (minute hour day-of-month month day-of-week), such as "0 3 * * *" for 03:00 every day; got ${parts.length}`;
  }
  for (let i = 0; i < 5; i++) {
    const field = FIELDS[i];
    for (const item of parts[i].split(",")) {
      if (!validItem(item, field)) return `the ${field.name} field "${parts[i]}" is not valid: use *, a number from ${field.min} to ${field.max}${"names" in field ? " or a name such as " + field.names[0] : ""}, a range a-b, a step */n or a-b/n, or a list of those`;
    }
  }
  return undefined;
}

function validItem(item: string, field: (typeof FIELDS)[number]): boolean {
  const m = /^(\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:\/(\d+))?$/.exec(item);
  if (!m) return false;
  if (m[2] !== undefined && Number(m[2]) < 1) return false;
  if (m[1] === "*") return true;
  const bounds = m[1].split("-").map((v) => value(v, field));
  if (bounds.some((v) => v === undefined)) return false;
  return bounds.length === 1 || bounds[0]! <= bounds[1]!;
}

function value(text: string, field: (typeof FIELDS)[number]): number | undefined {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    return n >= field.min && n <= field.max ? n : undefined;
  }
  if (!("names" in field)) return undefined;
  const i = (field.names as readonly string[]).indexOf(text.toUpperCase());
  return i < 0 ? undefined : i + field.offset;
}

/**
 * True for an IANA time zone name the server can load ("Europe/Paris", "UTC").
 * Offsets such as "+02:00" and wrong-case names pass Intl but not Temporal's
 * zone lookup, so they are refused here.
 */
export function isTimeZone(name: string): boolean {
  if (!/^[A-Z][A-Za-z0-9_+-]*(\/[A-Z0-9][A-Za-z0-9_+-]*)*$/.test(name)) return false;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

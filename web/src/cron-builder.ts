/**
 * The plan editor's cron builder: presets (every hour at minute M, every day at
 * HH:MM, every week on a day at HH:MM) that write the five-field expression the
 * API takes, and the raw field for anything else. The expression is all the API
 * sees; the next runs it will take are Temporal's, read back from the API.
 */
import { h } from "./dom.js";
import { field } from "./form.js";

const DAYS: [string, string][] = [
  ["1", "Monday"],
  ["2", "Tuesday"],
  ["3", "Wednesday"],
  ["4", "Thursday"],
  ["5", "Friday"],
  ["6", "Saturday"],
  ["0", "Sunday"],
];

type Preset = { kind: "hourly"; minute: number } | { kind: "daily"; hour: number; minute: number } | { kind: "weekly"; day: number; hour: number; minute: number } | { kind: "raw" };

/** The preset a cron expression is, when it is one ("15 * * * *" is hourly at :15). */
export function presetOf(cron: string): Preset {
  const f = cron.trim().split(/\s+/);
  const n = (v: string, max: number) => (/^\d{1,2}$/.test(v) && Number(v) <= max ? Number(v) : undefined);
  if (f.length !== 5 || f[2] !== "*" || f[3] !== "*") return { kind: "raw" };
  const minute = n(f[0], 59);
  if (minute === undefined) return { kind: "raw" };
  if (f[1] === "*" && f[4] === "*") return { kind: "hourly", minute };
  const hour = n(f[1], 23);
  if (hour === undefined) return { kind: "raw" };
  if (f[4] === "*") return { kind: "daily", hour, minute };
  const day = n(f[4], 6);
  return day === undefined ? { kind: "raw" } : { kind: "weekly", day, hour, minute };
}

export function cronOf(p: Preset, raw: string): string {
  if (p.kind === "hourly") return `${p.minute} * * * *`;
  if (p.kind === "daily") return `${p.minute} ${p.hour} * * *`;
  if (p.kind === "weekly") return `${p.minute} ${p.hour} * * ${p.day}`;
  return raw.trim();
}

/** In words, for the sentence under the builder. */
export function describeCron(cron: string, timezone: string): string {
  const p = presetOf(cron);
  const at = (hour: number, minute: number) => `${String(hour).padStart(2, "0")}:${String(minute).padStart(2, "0")}`;
  if (p.kind === "hourly") return `every hour at minute ${p.minute}`;
  if (p.kind === "daily") return `every day at ${at(p.hour, p.minute)} (${timezone})`;
  if (p.kind === "weekly") return `every ${DAYS.find(([d]) => Number(d) === p.day)![1]} at ${at(p.hour, p.minute)} (${timezone})`;
  return `cron "${cron}" (${timezone})`;
}

export interface CronBuilder {
  element: HTMLElement;
  /** The expression as the builder shows it now. */
  value(): string;
}

/**
 * The builder: a preset select with its own fields, and the raw expression
 * (always shown, kept in step: a preset writes it, an edit of it picks the
 * preset it matches, or "custom"). `prefix` keeps ids unique on the page.
 */
export function cronBuilder(prefix: string, initial: string, onChange: () => void): CronBuilder {
  const kind = h("select", { id: `${prefix}-preset` }, [
    h("option", { value: "hourly" }, "Every hour"),
    h("option", { value: "daily" }, "Every day"),
    h("option", { value: "weekly" }, "Every week"),
    h("option", { value: "raw" }, "Custom (cron)"),
  ]);
  const time = h("input", { id: `${prefix}-time`, type: "time", value: "03:00", required: true });
  const minute = h("input", { id: `${prefix}-minute`, type: "number", min: 0, max: 59, value: 0, required: true });
  const day = h("select", { id: `${prefix}-day` }, DAYS.map(([v, name]) => h("option", { value: v }, name)));
  const raw = h("input", { id: `${prefix}-cron`, class: "mono", value: initial, required: true, spellcheck: "false", autocomplete: "off", size: 18 });
  const minuteField = field("At minute", minute);
  const dayField = field("On", day);
  const timeField = field("At", time);

  const current = (): Preset => {
    const [hh, mm] = time.value.split(":").map(Number);
    if (kind.value === "hourly") return { kind: "hourly", minute: Number(minute.value) || 0 };
    if (kind.value === "daily") return { kind: "daily", hour: hh || 0, minute: mm || 0 };
    if (kind.value === "weekly") return { kind: "weekly", day: Number(day.value), hour: hh || 0, minute: mm || 0 };
    return { kind: "raw" };
  };
  const show = () => {
    minuteField.hidden = kind.value !== "hourly";
    timeField.hidden = kind.value !== "daily" && kind.value !== "weekly";
    dayField.hidden = kind.value !== "weekly";
  };
  const fromPreset = () => {
    show();
    if (kind.value !== "raw") raw.value = cronOf(current(), raw.value);
    onChange();
  };
  const fromRaw = () => {
    load(raw.value);
    onChange();
  };
  const load = (cron: string) => {
    const p = presetOf(cron);
    kind.value = p.kind;
    if (p.kind === "hourly") minute.value = String(p.minute);
    if (p.kind === "daily" || p.kind === "weekly") time.value = `${String(p.hour).padStart(2, "0")}:${String(p.minute).padStart(2, "0")}`;
    if (p.kind === "weekly") day.value = String(p.day);
    show();
  };
  for (const el of [kind, time, minute, day]) el.addEventListener("change", fromPreset);
  raw.addEventListener("input", fromRaw);
  load(initial);
  const element = h(
    "div",
    { class: "cron-builder inline-form" },
    field("Runs", kind),
    minuteField,
    dayField,
    timeField,
    field("Cron expression", raw, "minute hour day-of-month month day-of-week, or @daily…"),
  );
  return { element, value: () => raw.value.trim() };
}

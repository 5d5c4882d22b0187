import { CairnError } from "./errors.js";

/**
 * Which snapshots `forget` keeps. Counts are "how many buckets", not "how many
 * snapshots": keepDaily 7 keeps the newest snapshot of each of the 7 most recent
 * days that have one. Bucket boundaries (hour, day, ISO week, month, year) are in UTC.
 * A snapshot kept by any rule is kept.
 */
export interface RetentionPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /**
   * Keep every snapshot newer than the group's latest snapshot minus this span:
   * milliseconds, or a calendar duration such as "30d", "1y6m", "2d12h"
   * (y years, m months, d days, h hours, as restic reads it).
   */
  keepWithin?: number | string;
  /** Keep every snapshot carrying any of these tags. */
  keepTags?: string[];
}

/** What snapshots are grouped by before the policy is applied to each group on its own. */
export interface GroupBy {
  host: boolean;
  paths: boolean;
  tags: boolean;
}

export const DEFAULT_GROUP_BY: GroupBy = { host: true, paths: true, tags: false };

/** The fields of a snapshot that the policy looks at. */
export interface PolicySnapshot {
  id: string;
  time: string;
  host: string;
  paths: string[];
  tags: string[];
}

export interface KeptSnapshot<S> {
  snapshot: S;
  /** Every rule that keeps it, e.g. ["last", "daily", "within 30d"]. */
  reasons: string[];
}

export interface PolicyGroup<S> {
  /** The values this group shares (only the fields grouped by). */
  key: { host?: string; paths?: string[]; tags?: string[] };
  keep: KeptSnapshot<S>[];
  remove: S[];
}

export interface PolicyResult<S> {
  /** Newest first. */
  keep: KeptSnapshot<S>[];
  /** Newest first. */
  remove: S[];
  groups: PolicyGroup<S>[];
}

const COUNTED = [
  ["keepLast", "last"],
  ["keepHourly", "hourly"],
  ["keepDaily", "daily"],
  ["keepWeekly", "weekly"],
  ["keepMonthly", "monthly"],
  ["keepYearly", "yearly"],
] as const;

type Bucket = (t: Date, position: number) => string;

const BUCKETS: Record<(typeof COUNTED)[number][1], Bucket> = {
  last: (_t, position) => String(position),
  hourly: (t) => t.toISOString().slice(0, 13),
  daily: (t) => t.toISOString().slice(0, 10),
  weekly: isoWeek,
  monthly: (t) => t.toISOString().slice(0, 7),
  yearly: (t) => t.toISOString().slice(0, 4),
};

/**
 * Decides which snapshots a retention policy keeps. Pure: the same snapshots and
 * policy always give the same answer, with no clock involved (keep-within counts
 * back from each group's latest snapshot, so a repository whose backups stopped
 * does not lose its history to the passing of time).
 *
 * For each counted rule the group is walked newest first, keeping the newest
 * snapshot of each distinct bucket until the count is reached. When a rule runs
 * out of snapshots before its count is reached, the group's oldest snapshot is kept
 * too ("oldest daily"), so the history reaches back as far as it can.
 *
 * Throws when the policy would keep nothing by rule (an empty policy): forgetting
 * every snapshot is never what someone who forgot a flag meant.
 */
export function applyPolicy<S extends PolicySnapshot>(snapshots: readonly S[], policy: RetentionPolicy, groupBy: GroupBy = DEFAULT_GROUP_BY): PolicyResult<S> {
  validatePolicy(policy);
  const groups = new Map<string, PolicyGroup<S>>();
  for (const s of snapshots) {
    const key = groupKey(s, groupBy);
    const name = JSON.stringify(key);
    let g = groups.get(name);
    if (!g) groups.set(name, (g = { key, keep: [], remove: [] }));
    g.remove.push(s);
  }
  const result: PolicyResult<S> = { keep: [], remove: [], groups: [...groups.values()] };
  for (const g of result.groups) {
    const decided = decideGroup(g.remove, policy);
    g.keep = decided.keep;
    g.remove = decided.remove;
    result.keep.push(...g.keep);
    result.remove.push(...g.remove);
  }
  result.keep.sort((a, b) => newestFirst(a.snapshot, b.snapshot));
  result.remove.sort(newestFirst);
  return result;
}

/** Refuses policies that keep nothing by rule, and counts that are not whole numbers. */
export function validatePolicy(policy: RetentionPolicy): void {
  let rules = 0;
  for (const [field, name] of COUNTED) {
    const n = policy[field];
    if (n === undefined || n === 0) continue;
    if (!(n === Infinity || (Number.isInteger(n) && n > 0))) {
      throw new CairnError(`--keep-${name} must be a whole number of at least 0 (or "unlimited"), got ${n}`);
    }
    rules++;
  }
  if (policy.keepWithin !== undefined) {
    withinBound(new Date(0), policy.keepWithin);
    rules++;
  }
  if (policy.keepTags?.length) rules++;
  if (rules === 0) {
    throw new CairnError(
      "no retention policy given, so every snapshot would be removed; give at least one --keep-* option such as --keep-daily 7 --keep-weekly 4",
    );
  }
}

function decideGroup<S extends PolicySnapshot>(group: S[], policy: RetentionPolicy): { keep: KeptSnapshot<S>[]; remove: S[] } {
  const list = [...group].sort(newestFirst);
  const reasons: string[][] = list.map(() => []);
  if (list.length === 0) return { keep: [], remove: [] };
  const times = list.map((s) => parseTime(s));

  for (const [field, name] of COUNTED) {
    let left = policy[field] ?? 0;
    if (left <= 0) continue;
    let last: string | undefined;
    for (let i = 0; i < list.length && left > 0; i++) {
      const bucket = BUCKETS[name](times[i], i);
      if (bucket === last) continue;
      last = bucket;
      reasons[i].push(name);
      left--;
    }
    const oldest = list.length - 1;
    if (left > 0 && !reasons[oldest].includes(name)) reasons[oldest].push(`oldest ${name}`);
  }

  if (policy.keepWithin !== undefined) {
    const bound = withinBound(times[0], policy.keepWithin);
    const label = `within ${formatWithin(policy.keepWithin)}`;
    times.forEach((t, i) => {
      if (t.getTime() > bound.getTime()) reasons[i].push(label);
    });
  }

  for (const tag of policy.keepTags ?? []) {
    list.forEach((s, i) => {
      if (s.tags.includes(tag)) reasons[i].push(`tag ${tag}`);
    });
  }

  const keep: KeptSnapshot<S>[] = [];
  const remove: S[] = [];
  list.forEach((s, i) => (reasons[i].length ? keep.push({ snapshot: s, reasons: reasons[i] }) : remove.push(s)));
  return { keep, remove };
}

function groupKey(s: PolicySnapshot, by: GroupBy): PolicyGroup<never>["key"] {
  return {
    ...(by.host ? { host: s.host } : {}),
    ...(by.paths ? { paths: [...s.paths].sort() } : {}),
    ...(by.tags ? { tags: [...s.tags].sort() } : {}),
  };
}

/** Newest first; equal times by id so the result does not depend on input order. */
function newestFirst(a: PolicySnapshot, b: PolicySnapshot): number {
  const d = parseTime(b).getTime() - parseTime(a).getTime();
  return d !== 0 ? d : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function parseTime(s: PolicySnapshot): Date {
  const t = new Date(s.time);
  if (Number.isNaN(t.getTime())) throw new CairnError(`snapshot ${s.id.slice(0, 8)} has an unreadable time "${s.time}"; run "cairn check"`);
  return t;
}

/** ISO 8601 week ("2023-W01"): weeks start on Monday; week 1 holds the year's first Thursday. */
function isoWeek(t: Date): string {
  const day = (t.getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  const thursday = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate() - day + 3));
  const year = thursday.getUTCFullYear();
  const week = 1 + Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * 86_400_000));
  return `${year}-W${String(week).padStart(2, "0")}`;
}

const CALENDAR = /^(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)d)?(?:(\d+)h)?$/;

/** The moment `within` before `latest`; calendar durations count months and years on the UTC calendar. */
function withinBound(latest: Date, within: number | string): Date {
  if (typeof within === "number") {
    if (!(within > 0) || !Number.isFinite(within)) throw new CairnError(`--keep-within must be a positive duration, got ${within}`);
    return new Date(latest.getTime() - within);
  }
  const m = CALENDAR.exec(within.trim());
  if (!m || m.slice(1).every((v) => !v || Number(v) === 0)) {
    throw new CairnError(`cannot read the --keep-within duration "${within}": use years, months, days and hours such as 30d, 6m, 1y6m or 2d12h (m means months here)`);
  }
  const [y, mo, d, h] = m.slice(1).map((v) => Number(v ?? 0));
  return new Date(
    Date.UTC(latest.getUTCFullYear() - y, latest.getUTCMonth() - mo, latest.getUTCDate() - d, latest.getUTCHours() - h, latest.getUTCMinutes(), latest.getUTCSeconds(), latest.getUTCMilliseconds()),
  );
}

function formatWithin(within: number | string): string {
  if (typeof within === "string") return within.trim();
  for (const [unit, ms] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (within % ms === 0) return `${within / ms}${unit === "m" ? "min" : unit}`;
  }
  return `${within}ms`;
}

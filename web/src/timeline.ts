/**
 * A physical plan's recovery window as an SVG time line: each backup a mark at
 * its end, the stretch its archived WAL (or binary logs) reaches a bar, and every stretch
 * between the earliest and the latest recoverable point that no backup reaches
 * a red gap. Plain SVG, classes from app.css (the CSP allows no inline style).
 */
import { dateTicks } from "./chart.js";
import type { MysqlRecoveryWindow, RecoveryWindow } from "./types.js";

const NS = "http://www.w3.org/2000/svg";
const W = 640;
const H = 96;
const PAD = { left: 12, right: 12 };
const BAR = { y: 34, h: 16 };

function el<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, ...children: (SVGElement | string)[]): SVGElementTagNameMap[K] {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  for (const c of children) e.append(c);
  return e;
}

export interface Stretch {
  from: number;
  to: number;
}

/** The stretches between the window's ends that no backup's reach covers (ms since the epoch, oldest first). */
export function gapsOf(reach: Stretch[], earliest: number, latest: number): Stretch[] {
  const covered = [...reach].sort((a, b) => a.from - b.from);
  const gaps: Stretch[] = [];
  let at = earliest;
  for (const r of covered) {
    if (r.from > at) gaps.push({ from: at, to: Math.min(r.from, latest) });
    at = Math.max(at, r.to);
    if (at >= latest) break;
  }
  if (at < latest) gaps.push({ from: at, to: latest });
  return gaps.filter((g) => g.to > g.from);
}

const fmt = (ms: number) => new Date(ms).toLocaleString();

/** A recoverable window as the time line draws it, whatever the engine: positions are shown as written ("LSN 0/3000060", "binlog.000004:154"). */
export interface WindowSpan {
  earliest: { time: string; at: string };
  latest: { time: string; at: string };
  /** Each backup, oldest first: where it ends and how far its archived log reaches unbroken. */
  backups: { id: string; endTime: string; endAt: string; untilTime: string; untilAt: string; breaksAt?: string }[];
}

/** A PostgreSQL window (base backups and WAL); undefined without a base backup. */
export function postgresSpan(w: RecoveryWindow): WindowSpan | undefined {
  if (!w.earliest || !w.latest) return undefined;
  const latestTime = w.latest.time ?? w.earliest.time;
  const backups = w.backups ?? [{ snapshotId: w.earliest.snapshotId, endTime: w.earliest.time, endLsn: w.earliest.lsn, until: { time: latestTime, lsn: w.latest.lsn, timeline: w.latest.timeline } }];
  return {
    earliest: { time: w.earliest.time, at: `LSN ${w.earliest.lsn}` },
    latest: { time: latestTime, at: `LSN ${w.latest.lsn}, timeline ${w.latest.timeline}` },
    backups: backups.map((b) => ({ id: b.snapshotId, endTime: b.endTime, endAt: `LSN ${b.endLsn}`, untilTime: b.until.time, untilAt: `LSN ${b.until.lsn}, timeline ${b.until.timeline}`, ...(b.breaksAt ? { breaksAt: `WAL segment ${b.breaksAt}` } : {}) })),
  };
}

/** A MySQL / MariaDB window (the newest physical backup and the binary logs after it); undefined without a backup. */
export function mysqlSpan(w: MysqlRecoveryWindow): WindowSpan | undefined {
  if (!w.earliest || !w.latest) return undefined;
  const start = w.earliest.binlogFile ? `${w.earliest.binlogFile}:${w.earliest.binlogPosition ?? 0}` : "its end";
  const end = w.latest.binlogFile ?? "the backup's end";
  return {
    earliest: { time: w.earliest.time, at: start },
    latest: { time: w.latest.time, at: end },
    backups: [{ id: w.earliest.snapshotId, endTime: w.earliest.time, endAt: start, untilTime: w.latest.time, untilAt: end, ...(w.missing ? { breaksAt: `binary log ${w.missing}` } : {}) }],
  };
}

/** The time line, or undefined when the window has no backup. */
export function recoveryTimeline(id: string, span: WindowSpan | undefined): SVGSVGElement | undefined {
  if (!span) return undefined;
  const earliest = Date.parse(span.earliest.time);
  const latest = Date.parse(span.latest.time);
  const backups = span.backups;
  const reach = backups.map((b) => ({ from: Date.parse(b.endTime), to: Date.parse(b.untilTime) }));
  const gaps = gapsOf(reach, earliest, latest);
  let [x0, x1] = [Math.min(earliest, ...reach.map((r) => r.from)), Math.max(latest, ...reach.map((r) => r.to))];
  const margin = Math.max((x1 - x0) * 0.04, 60_000);
  [x0, x1] = [x0 - margin, x1 + margin];
  const sx = (t: number) => PAD.left + ((t - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);

  const label = `Recoverable from ${fmt(earliest)} (${span.earliest.at}) to ${fmt(latest)} (${span.latest.at}); ${backups.length} backup${backups.length === 1 ? "" : "s"}; ${gaps.length ? `${gaps.length} gap${gaps.length === 1 ? "" : "s"} in the archived log` : "no gap in the archived log"}`;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "timeline", role: "img", id, "aria-label": label, "data-gaps": gaps.length, "data-backups": backups.length });
  svg.append(el("title", {}, label));
  const grid = el("g", { class: "chart-grid" });
  dateTicks(x0, x1).forEach((t, i, all) => {
    grid.append(el("line", { x1: sx(t.at), x2: sx(t.at), y1: BAR.y - 14, y2: BAR.y + BAR.h + 8 }));
    grid.append(el("text", { x: sx(t.at), y: H - 8, "text-anchor": i === 0 ? "start" : i === all.length - 1 ? "end" : "middle", class: "chart-axis" }, t.text));
  });
  svg.append(grid);
  const bars = el("g", { class: "timeline-wal" });
  backups.forEach((b, i) => {
    const [from, to] = [sx(reach[i].from), sx(reach[i].to)];
    bars.append(el("rect", { x: from.toFixed(1), y: BAR.y, width: Math.max(to - from, 2).toFixed(1), height: BAR.h, rx: 2 }, el("title", {}, `Archived log from backup ${b.id.slice(0, 8)}: ${fmt(reach[i].from)} to ${fmt(reach[i].to)} (${b.endAt} to ${b.untilAt})`)));
  });
  svg.append(bars);
  const red = el("g", { class: "timeline-gap" });
  for (const g of gaps) {
    const breaks = backups.find((b) => Math.abs(Date.parse(b.untilTime) - g.from) < 1000)?.breaksAt;
    red.append(el("rect", { x: sx(g.from).toFixed(1), y: BAR.y - 4, width: Math.max(sx(g.to) - sx(g.from), 3).toFixed(1), height: BAR.h + 8 }, el("title", {}, `Gap: no point from ${fmt(g.from)} to ${fmt(g.to)} can be recovered${breaks ? ` (${breaks} is missing)` : ""}`)));
  }
  svg.append(red);
  const marks = el("g", { class: "timeline-backup" });
  backups.forEach((b, i) => {
    const x = sx(reach[i].from);
    marks.append(el("path", { d: `M${x.toFixed(1)} ${BAR.y - 12} l6 -8 h-12 z M${x.toFixed(1)} ${BAR.y - 12} V${BAR.y + BAR.h}` }, el("title", {}, `Backup ${b.id.slice(0, 8)} ended ${fmt(reach[i].from)} (${b.endAt})`)));
  });
  svg.append(marks);
  return svg;
}

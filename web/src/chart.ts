/**
 * Charts as plain SVG built here: no library, no inline style (the page's
 * Content-Security-Policy allows none), colours from app.css classes. A time
 * axis, a value axis, lines with their points, marked points (anomalies,
 * failures) and horizontal lines (a quota). Each point has a <title> (hover,
 * screen readers) and the chart an aria-label saying what it shows.
 */
const NS = "http://www.w3.org/2000/svg";

export interface Point {
  x: number; // ms since the epoch
  y: number;
  /** A marked point: drawn larger, in the mark's colour (chart-mark-anomaly, chart-mark-failure). */
  mark?: "anomaly" | "failure";
  label: string;
}

export interface Series {
  name: string;
  points: Point[];
  /** chart-line-main, chart-line-forecast (dashed), ... */
  cls: string;
  /** Draw the points without a line between them. */
  pointsOnly?: boolean;
}

export interface ChartSpec {
  id: string;
  label: string;
  series: Series[];
  yFormat: (v: number) => string;
  hLines?: { y: number; label: string; cls: string }[];
  /** Values the y axis includes whatever the data (0 and 1 for a rate). */
  yInclude?: number[];
}

const W = 640;
const H = 220;
const PAD = { left: 64, right: 12, top: 12, bottom: 28 };

function el<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, ...children: (SVGElement | string)[]): SVGElementTagNameMap[K] {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  for (const c of children) e.append(c);
  return e;
}

/** About `count` round steps between lo and hi. */
function ticks(lo: number, hi: number, count: number): number[] {
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export function dateTicks(lo: number, hi: number): { at: number; text: string }[] {
  const span = hi - lo;
  const fmt = span > 3 * 86_400_000 ? { month: "short", day: "numeric" } : span > 86_400_000 ? { weekday: "short", hour: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
  return Array.from({ length: 5 }, (_, i) => lo + (span * i) / 4).map((at) => ({ at, text: new Date(at).toLocaleString(undefined, fmt as Intl.DateTimeFormatOptions) }));
}

/** The chart, or a sentence when there is nothing to draw. */
export function chart(spec: ChartSpec): Element {
  const points = spec.series.flatMap((s) => s.points);
  if (points.length === 0) {
    const p = document.createElement("p");
    p.className = "empty";
    p.id = spec.id;
    p.textContent = `${spec.label}: no data yet (it appears after the first finished backups).`;
    return p;
  }
  const xs = points.map((p) => p.x);
  const ys = [...points.map((p) => p.y), ...(spec.hLines ?? []).map((l) => l.y), ...(spec.yInclude ?? [])];
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (x1 - x0 < 60_000) [x0, x1] = [x0 - 30 * 60_000, x1 + 30 * 60_000];
  let [y0, y1] = [Math.min(0, ...ys), Math.max(...ys)];
  if (y1 <= y0) y1 = y0 + 1;
  y1 += (y1 - y0) * 0.08;
  const yTicks = ticks(y0, y1, 4);
  // Room on the left for the longest value label, at the larger type a phone's style sheet uses ("293.0 KiB" needs more than "0 s").
  const left = Math.max(PAD.left, Math.max(...yTicks.map((v) => spec.yFormat(v).length)) * 9 + 12);
  const sx = (x: number) => left + ((x - x0) / (x1 - x0)) * (W - left - PAD.right);
  const sy = (y: number) => H - PAD.bottom - ((y - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);

  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", id: spec.id, "aria-label": describe(spec, points) });
  svg.append(el("title", {}, spec.label));
  const grid = el("g", { class: "chart-grid" });
  for (const v of yTicks) {
    grid.append(el("line", { x1: left, x2: W - PAD.right, y1: sy(v), y2: sy(v) }));
    grid.append(el("text", { x: left - 6, y: sy(v) + 4, "text-anchor": "end", class: "chart-axis" }, spec.yFormat(v)));
  }
  dateTicks(x0, x1).forEach((t, i, all) => grid.append(el("text", { x: sx(t.at), y: H - 8, "text-anchor": i === 0 ? "start" : i === all.length - 1 ? "end" : "middle", class: "chart-axis" }, t.text)));
  svg.append(grid);
  for (const line of spec.hLines ?? []) {
    svg.append(el("line", { x1: left, x2: W - PAD.right, y1: sy(line.y), y2: sy(line.y), class: line.cls }, el("title", {}, line.label)));
    svg.append(el("text", { x: W - PAD.right - 4, y: sy(line.y) - 4, "text-anchor": "end", class: `chart-axis ${line.cls}-text` }, line.label));
  }
  for (const s of spec.series) {
    const g = el("g", { class: s.cls, "data-series": s.name });
    if (!s.pointsOnly && s.points.length > 1) g.append(el("polyline", { points: s.points.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" "), fill: "none" }));
    for (const p of s.points) {
      g.append(el("circle", { cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1), r: p.mark ? 5 : 3, class: p.mark ? `chart-mark-${p.mark}` : "chart-point" }, el("title", {}, p.label)));
    }
    svg.append(g);
  }
  return svg;
}

function describe(spec: ChartSpec, points: Point[]): string {
  const marks = points.filter((p) => p.mark);
  const last = spec.series[0]?.points.at(-1);
  return `${spec.label}: ${spec.series[0]?.points.length ?? 0} points${last ? `, latest ${spec.yFormat(last.y)}` : ""}${marks.length ? `, ${marks.length} marked (${marks.map((m) => m.label).join("; ")})` : ""}`;
}

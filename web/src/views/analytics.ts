import { api } from "../api.js";
import { chart, type Point } from "../chart.js";
import { h, replace, type Child } from "../dom.js";
import { bytes, duration, time } from "../format.js";
import type { OverallAnalytics, Plan, PlanAnalytics } from "../types.js";
import { section, table, type PageContext } from "../ui.js";

const DAY = 86_400_000;
const pct = (v: number | null | undefined) => (v === null || v === undefined ? "–" : `${Math.round(v * 100)}%`);

type Recommendation = OverallAnalytics["recommendations"][number] | PlanAnalytics["recommendations"][number];

function recommendations(list: Recommendation[], planName?: (id: string) => string): Child {
  if (!list.length) return h("p", { class: "empty" }, "No recommendations: nothing to change.");
  return h(
    "ul",
    { class: "recommendations" },
    list.map((r) =>
      h(
        "li",
        { class: `priority-${r.priority}` },
        h("span", { class: "badge" }, r.priority),
        " ",
        h("strong", {}, r.title),
        "planId" in r && planName ? ` (${planName(r.planId)})` : "",
        h("br", {}),
        r.description,
        " ",
        h("span", { class: "hint" }, r.impact),
      ),
    ),
  );
}

/** Success rate and forecast over all plans, plans by risk, recommendations; one plan's charts with anomalies marked. */
export async function analyticsPage(root: HTMLElement, ctx: PageContext, planParam?: string): Promise<void> {
  const overall = h("section", { id: "analytics-overall" });
  const perPlan = h("section", { id: "analytics-plan" });
  const picker = h("select", { id: "analytics-plan-select", "aria-label": "Plan" });
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Analytics"), h("label", { class: "field" }, h("span", {}, "Plan"), picker)), overall, perPlan);

  let plans: Plan[] = [];
  const planName = (id: string) => plans.find((p) => p.id === id)?.name ?? id;
  await section(overall, async () => {
    const [all, list] = await Promise.all([api<OverallAnalytics>("GET", "/v1/analytics"), api<{ plans: Plan[] }>("GET", "/v1/plans?limit=500")]);
    plans = list.plans;
    replace(picker, plans.map((p) => h("option", { value: p.id }, p.name)));
    return [
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Success rate (7 days)"),
        h("dd", { id: "overall-success" }, `${pct(all.successRate.rate)} of ${all.successRate.runs} backups`),
        h("dt", {}, "Forecast in 7 days"),
        h("dd", {}, all.forecast.rate === null ? "not enough days with runs yet" : `${pct(all.forecast.rate)} (${all.forecast.trend})`),
        h("dt", {}, "Anomalies"),
        h("dd", {}, String(all.anomalies)),
      ),
      h("h2", {}, "Plans by risk"),
      table(
        ["Plan", "Risk score", "Level"],
        all.risk.map((r) => [h("a", { href: `#/analytics/${encodeURIComponent(r.planId)}` }, planName(r.planId)), String(r.score), h("span", { class: `risk-${r.level}` }, r.level)]),
        { "aria-label": "Plans by risk, highest first" },
      ),
      h("h2", {}, "Recommendations"),
      recommendations(all.recommendations, planName),
    ];
  });
  const chosen = planParam && plans.some((p) => p.id === planParam) ? planParam : plans[0]?.id;
  if (!chosen) {
    picker.parentElement!.hidden = true;
    replace(perPlan, h("p", { class: "empty" }, "No plans yet: create one, run it, and its charts appear here."));
    return;
  }
  picker.value = chosen;
  picker.addEventListener("change", () => (location.hash = `#/analytics/${encodeURIComponent(picker.value)}`));
  const load = () => section(perPlan, async () => planView(await api<PlanAnalytics>("GET", `/v1/analytics/plans/${encodeURIComponent(chosen)}`), planName(chosen)));
  await load();
  // Analytics reads count as status (not against the read watch); a backup finishing shows up within a minute.
  ctx.every(60_000, load);
}

function planView(a: PlanAnalytics, name: string): Child[] {
  const backups = a.series.backups;
  const flagged = new Map<string, Set<string>>();
  for (const an of a.anomalies) if (an.kind === "metric") flagged.set(`${an.metric}:${an.jobId}`, new Set());
  const point = (b: (typeof backups)[number], metric: "durationSeconds" | "bytesAdded", y: number, fmt: (v: number) => string): Point => {
    const anomaly = flagged.has(`${metric}:${b.jobId}`);
    return {
      x: Date.parse(b.at),
      y,
      ...(anomaly ? { mark: "anomaly" as const } : b.outcome === "failure" ? { mark: "failure" as const } : {}),
      label: `${time(b.at)}: ${fmt(y)}${b.outcome !== "success" ? ` (${b.outcome})` : ""}${anomaly ? " — anomaly" : ""}`,
    };
  };
  const durations = backups.map((b) => point(b, "durationSeconds", b.durationSeconds, duration));
  const added = backups.filter((b) => b.bytesAdded !== null).map((b) => point(b, "bytesAdded", b.bytesAdded!, bytes));

  // Success per day over the last 30 days, and the forecast 7 days on.
  const now = Date.parse(a.at);
  const days = new Map<number, { runs: number; ok: number }>();
  for (const b of backups) {
    const t = Date.parse(b.at);
    if (now - t > 30 * DAY || b.outcome === "cancelled") continue;
    const day = Math.floor(t / DAY) * DAY + DAY / 2;
    const d = days.get(day) ?? { runs: 0, ok: 0 };
    d.runs++;
    if (b.outcome === "success") d.ok++;
    days.set(day, d);
  }
  const daily: Point[] = [...days.entries()].sort(([x], [y]) => x - y).map(([day, d]) => ({ x: day, y: d.ok / d.runs, ...(d.ok < d.runs ? { mark: "failure" as const } : {}), label: `${new Date(day).toLocaleDateString()}: ${d.ok} of ${d.runs} succeeded` }));
  const forecast: Point[] =
    a.forecast.rate === null || daily.length === 0
      ? []
      : [daily.at(-1)!, { x: now + a.forecast.horizonDays * DAY, y: Math.max(0, Math.min(1, a.forecast.rate)), label: `forecast for ${new Date(now + a.forecast.horizonDays * DAY).toLocaleDateString()}: ${pct(a.forecast.rate)} (${a.forecast.trend})` }];

  const usage: Point[] = a.series.usage.map((u) => ({ x: Date.parse(u.at), y: u.bytes, label: `${time(u.at)}: ${bytes(u.bytes)}` }));
  const s = a.storage;
  const storageForecast: Point[] = s ? [{ x: Date.parse(s.measuredAt), y: s.currentBytes, label: `${time(s.measuredAt)}: ${bytes(s.currentBytes)}` }, { x: now + s.horizonDays * DAY, y: s.projectedBytes, label: `projected ${new Date(now + s.horizonDays * DAY).toLocaleDateString()}: ${bytes(s.projectedBytes)} (${bytes(s.growthBytesPerDay)}/day)` }] : [];

  const anomalyText = (an: PlanAnalytics["anomalies"][number]) =>
    an.kind === "metric"
      ? `${time(an.at)}: ${an.metric} ${an.direction} — ${an.metric === "durationSeconds" ? duration(an.value) : an.metric === "bytesAdded" ? bytes(an.value) : an.value} against a mean of ${an.metric === "durationSeconds" ? duration(an.mean) : an.metric === "bytesAdded" ? bytes(an.mean) : an.mean} (${an.sigmas.toFixed(1)} σ), job ${an.jobId}`
      : `${time(an.at)}: ${an.failures} of ${an.runs} backups failed in ${an.windowDays} days (${pct(an.rate)})`;

  return [
    h("h2", {}, `${name}`),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Risk"),
      h("dd", { id: "plan-risk" }, h("span", { class: `risk-${a.risk.level}` }, `${a.risk.score} (${a.risk.level})`), a.risk.factors.filter((f) => f.points > 0).length ? ` — ${a.risk.factors.filter((f) => f.points > 0).map((f) => f.detail).join("; ")}` : ""),
      h("dt", {}, "Success rate (7 days)"),
      h("dd", {}, `${pct(a.successRate.rate)} of ${a.successRate.runs} backups; forecast ${a.forecast.rate === null ? "–" : pct(a.forecast.rate)} in ${a.forecast.horizonDays} days`),
      h("dt", {}, "Next backup takes"),
      h("dd", {}, a.duration ? `about ${duration(a.duration.seconds)} for ${bytes(a.duration.bytes)}` : "known after 3 backups"),
      h("dt", {}, "Storage"),
      h("dd", {}, s ? `${bytes(s.currentBytes)}, growing ${bytes(s.growthBytesPerDay)}/day${s.quotaBytes ? `, ${pct(s.usedFraction)} of ${bytes(s.quotaBytes)}${s.fillsAt ? `, full ${time(s.fillsAt)}` : ""}` : ""}` : "forecast after 3 backups"),
    ),
    h(
      "div",
      { class: "charts" },
      h("figure", {}, h("figcaption", {}, "Duration per backup"), chart({ id: "chart-duration", label: "Duration per backup", series: [{ name: "duration", points: durations, cls: "chart-line-main" }], yFormat: duration })),
      h("figure", {}, h("figcaption", {}, "Bytes added per backup"), chart({ id: "chart-bytes", label: "Bytes added per backup", series: [{ name: "bytes added", points: added, cls: "chart-line-main" }], yFormat: bytes })),
      h(
        "figure",
        {},
        h("figcaption", {}, "Success rate per day, and its forecast (dashed)"),
        chart({
          id: "chart-success",
          label: "Success rate per day",
          series: [
            { name: "success rate", points: daily, cls: "chart-line-main" },
            { name: "forecast", points: forecast, cls: "chart-line-forecast" },
          ],
          yFormat: (v) => pct(v),
          yInclude: [0, 1],
        }),
      ),
      h(
        "figure",
        {},
        h("figcaption", {}, `Repository size, and its forecast (dashed)${s?.quotaBytes ? " against the quota" : ""}`),
        chart({
          id: "chart-storage",
          label: "Repository size",
          series: [
            { name: "size", points: usage, cls: "chart-line-main" },
            { name: "forecast", points: storageForecast, cls: "chart-line-forecast" },
          ],
          yFormat: bytes,
          hLines: s?.quotaBytes ? [{ y: s.quotaBytes, label: `quota ${bytes(s.quotaBytes)}`, cls: "chart-quota" }] : [],
        }),
      ),
    ),
    h("p", { class: "hint legend" }, h("span", { class: "legend-anomaly" }, "●"), " anomaly (3σ from the plan's own history) ", h("span", { class: "legend-failure" }, "●"), " failed backup or a day with failures"),
    h("h3", {}, "Anomalies"),
    a.anomalies.length ? h("ul", { id: "anomalies" }, a.anomalies.map((an) => h("li", {}, anomalyText(an)))) : h("p", { class: "empty", id: "anomalies" }, "None: every run is within the plan's usual range."),
    h("h3", {}, "Recommendations"),
    recommendations(a.recommendations),
  ];
}

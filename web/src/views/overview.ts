import { api, hasRoute } from "../api.js";
import { h, replace } from "../dom.js";
import { ago, between, time, shortId } from "../format.js";
import type { Alert, JobSummary, OverallAnalytics, Plan } from "../types.js";
import { can, missingRoute, section, statusBadge, table, type PageContext } from "../ui.js";
import { scheduleText } from "./plans.js";

interface Readiness {
  status: string;
  checks: Record<string, string>;
}

/** Status of the platform, open alerts, each plan's last run, last success and risk score, and the latest jobs. */
export async function overviewPage(root: HTMLElement, ctx: PageContext): Promise<void> {
  const status = h("section", { id: "status" });
  const plans = h("section", { id: "plan-health" });
  const recent = h("section", { id: "recent-jobs" });
  const alerts = h("section", { id: "open-alerts" });
  const refresh = h("button", { type: "button", onclick: () => void load() }, "Refresh");
  const showAlerts = can(ctx.session, "alerts:read");
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Overview"), refresh), status, showAlerts ? [h("h2", {}, "Open alerts"), alerts] : null, h("h2", {}, "Plans"), plans, h("h2", {}, "Recent jobs"), recent);

  async function load(): Promise<void> {
    await Promise.all([
      section(status, async () => {
        const res = await fetch("/readyz", { cache: "no-store" });
        const r = (await res.json()) as Readiness;
        return h("p", { class: `readiness ready-${r.status === "ready" ? "yes" : "no"}` }, `API ${r.status}`, " · ", Object.entries(r.checks).map(([k, v]) => `${k}: ${v}`).join(" · "));
      }),
      showAlerts
        ? section(alerts, async () => {
            const { alerts: open } = await api<{ alerts: Alert[] }>("GET", "/v1/alerts?state=open&limit=200");
            if (!open.length) return h("p", { class: "readiness ready-yes", id: "open-alert-count", "data-count": 0 }, "No open alert.");
            const count = (severity: string) => open.filter((a) => a.severity === severity).length;
            const newest = [...open].reverse().slice(0, 5);
            return [
              h("p", { id: "open-alert-count", "data-count": open.length }, h("a", { href: "#/alerts" }, `${open.length} open`), `: ${count("critical")} critical, ${count("warning")} warning, ${count("info")} info`),
              h("ul", { class: "alert-summary" }, newest.map((a) => h("li", {}, h("span", { class: `badge severity-${a.severity}` }, a.severity), " ", a.title, " ", h("span", { class: "hint" }, ago(a.openedAt))))),
            ];
          })
        : Promise.resolve(),
      section(plans, async () => {
        if (!(await hasRoute("GET /v1/plans"))) return missingRoute("GET /v1/plans", "plans");
        const [{ plans: list }, { jobs: backups }, { jobs: successes }, analytics] = await Promise.all([
          api<{ plans: Plan[] }>("GET", "/v1/plans?limit=500"),
          api<{ jobs: JobSummary[] }>("GET", "/v1/jobs?kind=backup&limit=200"),
          api<{ jobs: JobSummary[] }>("GET", "/v1/jobs?kind=backup&status=completed&limit=200"),
          can(ctx.session, "analytics:read") ? api<OverallAnalytics>("GET", "/v1/analytics").catch(() => undefined) : Promise.resolve(undefined),
        ]);
        const risk = (planId: string) => analytics?.risk.find((r) => r.planId === planId);
        const first = (jobs: JobSummary[], planId: string) => jobs.find((j) => j.planId === planId);
        return table(
          ["Plan", "Schedule", "Last run", "Took", "Last success", "Snapshot", "Risk"],
          list.map((p) => {
            const last = first(backups, p.id);
            const ok = first(successes, p.id);
            const r = risk(p.id);
            return [
              h("a", { href: `#/plans/${encodeURIComponent(p.id)}` }, p.name),
              h("span", { title: p.schedule ? `${p.schedule.cron} (${p.schedule.timezone ?? "UTC"})` : "" }, scheduleText(p)),
              last ? h("span", {}, statusBadge(last.status), " ", h("a", { href: `#/jobs/${encodeURIComponent(last.id)}` }, ago(last.startedAt))) : "never",
              last ? between(last.startedAt, last.finishedAt) : "–",
              ok ? h("span", { title: time(ok.finishedAt) }, ago(ok.finishedAt)) : h("span", { class: "warn" }, "never"),
              ok?.snapshotId ? h("a", { href: `#/snapshots/${encodeURIComponent(p.repositoryId)}`, class: "mono" }, shortId(ok.snapshotId)) : "–",
              r ? h("a", { href: `#/analytics/${encodeURIComponent(p.id)}`, class: `plan-risk risk-${r.level}`, title: "Risk score (0-100): see Analytics for its factors" }, `${r.score} ${r.level}`) : "–",
            ];
          }),
          { "aria-label": "Plans and their last backups" },
        );
      }),
      section(recent, async () => {
        const { jobs } = await api<{ jobs: JobSummary[] }>("GET", "/v1/jobs?limit=10");
        return table(
          ["Job", "Kind", "Status", "Started", "Took"],
          jobs.map((j) => [h("a", { href: `#/jobs/${encodeURIComponent(j.id)}`, class: "mono" }, j.id), j.kind, statusBadge(j.status), ago(j.startedAt), between(j.startedAt, j.finishedAt)]),
        );
      }),
    ]);
  }
  await load();
  // Each read counts against the token's hourly read watch (CAIRN_ALERT_READS_PER_HOUR): refresh seldom.
  ctx.every(60_000, load);
}

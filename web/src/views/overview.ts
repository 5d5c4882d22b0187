import { api, hasRoute } from "../api.js";
import { h, replace } from "../dom.js";
import { ago, between, time, shortId } from "../format.js";
import type { JobSummary, Plan } from "../types.js";
import { missingRoute, section, statusBadge, table, type PageContext } from "../ui.js";

interface Readiness {
  status: string;
  checks: Record<string, string>;
}

/** Status of the platform, each plan's last run and last success, and the latest jobs. */
export async function overviewPage(root: HTMLElement, ctx: PageContext): Promise<void> {
  const status = h("section", { id: "status" });
  const plans = h("section", { id: "plan-health" });
  const recent = h("section", { id: "recent-jobs" });
  const refresh = h("button", { type: "button", onclick: () => void load() }, "Refresh");
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Overview"), refresh), status, h("h2", {}, "Plans"), plans, h("h2", {}, "Recent jobs"), recent);

  async function load(): Promise<void> {
    await Promise.all([
      section(status, async () => {
        const res = await fetch("/readyz", { cache: "no-store" });
        const r = (await res.json()) as Readiness;
        return h("p", { class: `readiness ready-${r.status === "ready" ? "yes" : "no"}` }, `API ${r.status}`, " · ", Object.entries(r.checks).map(([k, v]) => `${k}: ${v}`).join(" · "));
      }),
      section(plans, async () => {
        if (!(await hasRoute("GET /v1/plans"))) return missingRoute("GET /v1/plans", "plans");
        const [{ plans: list }, { jobs: backups }, { jobs: successes }] = await Promise.all([
          api<{ plans: Plan[] }>("GET", "/v1/plans?limit=500"),
          api<{ jobs: JobSummary[] }>("GET", "/v1/jobs?kind=backup&limit=200"),
          api<{ jobs: JobSummary[] }>("GET", "/v1/jobs?kind=backup&status=completed&limit=200"),
        ]);
        const first = (jobs: JobSummary[], planId: string) => jobs.find((j) => j.planId === planId);
        return table(
          ["Plan", "Schedule", "Last run", "Took", "Last success", "Snapshot"],
          list.map((p) => {
            const last = first(backups, p.id);
            const ok = first(successes, p.id);
            return [
              h("a", { href: "#/plans" }, p.name),
              p.schedule ? `${p.schedule.cron}${p.schedule.timezone ? ` (${p.schedule.timezone})` : ""}${p.paused ? " · paused" : ""}` : "on demand",
              last ? h("span", {}, statusBadge(last.status), " ", h("a", { href: `#/jobs/${encodeURIComponent(last.id)}` }, ago(last.startedAt))) : "never",
              last ? between(last.startedAt, last.finishedAt) : "–",
              ok ? h("span", { title: time(ok.finishedAt) }, ago(ok.finishedAt)) : h("span", { class: "warn" }, "never"),
              ok?.snapshotId ? h("a", { href: `#/snapshots/${encodeURIComponent(p.repositoryId)}`, class: "mono" }, shortId(ok.snapshotId)) : "–",
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

import { api, hasRoute } from "../api.js";
import { h, replace } from "../dom.js";
import { ago, between, bytes, duration, time } from "../format.js";
import type { Alert, JobSummary, OverallAnalytics, Plan, PlanAnalytics, PlanScheduleState, Repository, Snapshot } from "../types.js";
import { can, missingRoute, section, statusBadge, table, type PageContext } from "../ui.js";
import { scheduleText } from "./plans.js";

interface Readiness {
  status: string;
  checks: Record<string, string>;
}

/**
 * Status of the platform, open alerts, and per plan: its last backup (outcome, when, how long, bytes added),
 * next run, RPO state, its repository's storage against the quota, its snapshot count, risk score and a
 * strip of its last 30 days; then the latest jobs.
 */
export async function overviewPage(root: HTMLElement, ctx: PageContext): Promise<void> {
  const status = h("section", { id: "status" });
  const plans = h("section", { id: "plan-health" });
  const recent = h("section", { id: "recent-jobs" });
  const alerts = h("section", { id: "open-alerts" });
  const refresh = h("button", { type: "button", onclick: () => void load() }, "Refresh");
  const showAlerts = can(ctx.session, "alerts:read");
  // Repositories and snapshot counts are read once per visit (they count against the hourly read watch; the rest are status routes).
  let repos: Promise<Repository[]> | undefined;
  const snapshotCounts = new Map<string, Promise<Snapshot[]>>();
  const snapshotCount = (p: Plan): HTMLElement => {
    const cell = h("a", { href: `#/snapshots/${encodeURIComponent(p.repositoryId)}?plan=${encodeURIComponent(p.id)}`, class: "snapshot-count", "data-plan": p.name }, "…");
    if (!can(ctx.session, "snapshots:read")) return h("span", {}, "–");
    let all = snapshotCounts.get(p.repositoryId);
    if (!all) snapshotCounts.set(p.repositoryId, (all = allSnapshots(p.repositoryId)));
    all.then(
      (list) => {
        const n = list.filter((s) => s.host === `plan-${p.id}`).length;
        cell.textContent = String(n);
        cell.setAttribute("data-count", String(n));
      },
      () => {
        cell.textContent = "?";
        cell.title = "The repository could not be read: see the Snapshots page";
      },
    );
    return cell;
  };
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
        const mayAnalyse = can(ctx.session, "analytics:read");
        const [{ plans: list }, { jobs: backups }, { jobs: successes }, analytics, repositories] = await Promise.all([
          api<{ plans: Plan[] }>("GET", "/v1/plans?limit=500"),
          api<{ jobs: JobSummary[] }>("GET", "/v1/jobs?kind=backup&limit=200"),
          api<{ jobs: JobSummary[] }>("GET", "/v1/jobs?kind=backup&status=completed&limit=200"),
          mayAnalyse ? api<OverallAnalytics>("GET", "/v1/analytics").catch(() => undefined) : Promise.resolve(undefined),
          (repos ??= can(ctx.session, "repositories:read") ? api<{ repositories: Repository[] }>("GET", "/v1/repositories?limit=500").then((r) => r.repositories, () => []) : Promise.resolve([])),
        ]);
        // Per plan: its backups as the analytics series holds them (outcome, duration, bytes added), and the next run Temporal will take.
        const [histories, schedules] = await Promise.all([
          Promise.all(list.map((p) => (mayAnalyse ? api<PlanAnalytics>("GET", `/v1/analytics/plans/${encodeURIComponent(p.id)}`).then((a) => a.series.backups, () => undefined) : Promise.resolve(undefined)))),
          Promise.all(list.map((p) => (p.schedule && !p.paused ? api<PlanScheduleState>("GET", `/v1/plans/${encodeURIComponent(p.id)}/schedule`).then((s) => s.nextRuns[0], () => undefined) : Promise.resolve(undefined)))),
        ]);
        const risk = (planId: string) => analytics?.risk.find((r) => r.planId === planId);
        const first = (jobs: JobSummary[], planId: string) => jobs.find((j) => j.planId === planId);
        return table(
          ["Plan", "Last backup", "Took", "Added", "Next run", "RPO", "Storage", "Snapshots", "Risk", "Last 30 days"],
          list.map((p, i) => {
            const last = first(backups, p.id);
            const ok = first(successes, p.id);
            const r = risk(p.id);
            const history = histories[i];
            const lastPoint = history?.at(-1);
            const repo = repositories.find((x) => x.id === p.repositoryId);
            return [
              h("a", { href: `#/plans/${encodeURIComponent(p.id)}`, "data-plan": p.name }, p.name),
              last ? h("span", { class: "last-backup" }, statusBadge(last.status), " ", h("a", { href: `#/jobs/${encodeURIComponent(last.id)}`, title: time(last.startedAt) }, ago(last.startedAt))) : "never",
              last ? between(last.startedAt, last.finishedAt) : "–",
              lastPoint && last && lastPoint.jobId === last.id ? h("span", { class: "last-added" }, bytes(lastPoint.bytesAdded)) : "–",
              h("span", { class: "next-run", title: p.schedule ? `${p.schedule.cron} (${p.schedule.timezone ?? "UTC"}): ${scheduleText(p)}` : "" }, p.paused ? "paused" : schedules[i] ? h("span", { title: time(schedules[i]) }, until(schedules[i]!)) : p.schedule ? "–" : "on demand"),
              rpoState(p, ok),
              storageCell(repo, analytics),
              snapshotCount(p),
              r ? h("a", { href: `#/analytics/${encodeURIComponent(p.id)}`, class: `plan-risk risk-${r.level}`, title: "Risk score (0-100): see Analytics for its factors" }, `${r.score} ${r.level}`) : "–",
              history ? outcomeStrip(p.name, history) : "–",
            ];
          }),
          { "aria-label": "Plans and their last backups", class: "cards-on-phone" },
        );
      }),
      section(recent, async () => {
        const { jobs } = await api<{ jobs: JobSummary[] }>("GET", "/v1/jobs?limit=10");
        return table(
          ["Job", "Kind", "Status", "Started", "Took"],
          jobs.map((j) => [h("a", { href: `#/jobs/${encodeURIComponent(j.id)}`, class: "mono" }, j.id), j.kind, statusBadge(j.status), ago(j.startedAt), between(j.startedAt, j.finishedAt)]),
          { "aria-label": "Recent jobs", class: "cards-on-phone" },
        );
      }),
    ]);
  }
  await load();
  // Each read counts against the token's hourly read watch (CAIRN_ALERT_READS_PER_HOUR): refresh seldom.
  ctx.every(60_000, load);
}

/** Every snapshot of a repository, a page of 500 at a time (ten pages at most). */
async function allSnapshots(repositoryId: string): Promise<Snapshot[]> {
  const all: Snapshot[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 10; page++) {
    const res: { snapshots: Snapshot[]; nextCursor: string | null } = await api("GET", `/v1/snapshots?repositoryId=${encodeURIComponent(repositoryId)}&limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    all.push(...res.snapshots);
    cursor = res.nextCursor;
    if (!cursor) break;
  }
  return all;
}

/** "in 3 h": how far off a coming time is. */
function until(iso: string, now = Date.now()): string {
  const s = (Date.parse(iso) - now) / 1000;
  return s <= 0 ? "due now" : `in ${duration(s).replace(/ \d+ s$/, "")}`;
}

/** Whether the last success is within the plan's RPO (the one the backup_overdue alert uses). */
function rpoState(p: Plan, lastSuccess: JobSummary | undefined): HTMLElement {
  const rpo = p.effectiveRpoMinutes;
  if (rpo === null) return h("span", { class: "rpo-none hint", title: "The plan has neither an RPO nor an active schedule" }, "none");
  const within = `RPO ${duration(rpo * 60)}`;
  if (!lastSuccess?.finishedAt) return h("span", { class: "rpo-state rpo-missed", "data-rpo": "missed", title: `${within}; no backup has succeeded yet` }, "missed");
  const age = (Date.now() - Date.parse(lastSuccess.finishedAt)) / 60_000;
  const met = age <= rpo;
  return h("span", { class: `rpo-state rpo-${met ? "met" : "missed"}`, "data-rpo": met ? "met" : "missed", title: `${within}; last success ${ago(lastSuccess.finishedAt)}` }, met ? "met" : "missed", h("span", { class: "hint" }, ` (${within.replace("RPO ", "")})`));
}

/** The plan's repository: its size after the last backup, against its quota when it has one. */
function storageCell(repo: Repository | undefined, analytics: OverallAnalytics | undefined): HTMLElement | string {
  if (!repo) return "–";
  const used = repo.usage?.bytes;
  if (used === undefined) return h("span", { class: "hint" }, "not measured yet");
  if (!repo.quotaBytes) return h("span", { class: "storage", title: `${repo.name}, measured ${time(repo.usage?.at)}` }, `${bytes(used)}, no quota`);
  const fills = analytics?.storage.find((s) => s.repositoryId === repo.id)?.fillsAt;
  const fraction = used / repo.quotaBytes;
  return h(
    "span",
    { class: "storage", title: `${repo.name}, measured ${time(repo.usage?.at)}${fills ? `; full ${time(fills)} at the current growth` : ""}` },
    h("meter", { min: 0, max: repo.quotaBytes, value: used, low: repo.quotaBytes * 0.8, high: repo.quotaBytes * 0.95, optimum: 0, "aria-label": `${repo.name} used against its quota` }),
    ` ${bytes(used)} of ${bytes(repo.quotaBytes)} (${Math.round(fraction * 100)}%)`,
  );
}

const DAY = 86_400_000;

/** The last 30 days, one square each (local days, oldest first): green when every backup succeeded, red when one failed, amber cancelled only, grey none. */
function outcomeStrip(name: string, backups: PlanAnalytics["series"]["backups"], now = new Date()): HTMLElement {
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
  const days = Array.from({ length: 30 }, (_, i) => today - (29 - i) * DAY);
  const cells = days.map((start) => {
    const day = backups.filter((b) => {
      const t = Date.parse(b.at);
      return t >= start && t < start + DAY;
    });
    const count = (o: string) => day.filter((b) => b.outcome === o).length;
    const [ok, failed, cancelled] = [count("success"), count("failure"), count("cancelled")];
    const state = failed ? "failed" : ok ? "ok" : cancelled ? "cancelled" : "none";
    const label = `${new Date(start).toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short" })}: ${day.length ? [ok && `${ok} succeeded`, failed && `${failed} failed`, cancelled && `${cancelled} cancelled`].filter(Boolean).join(", ") : "no backup"}`;
    return h("span", { class: `day day-${state}`, "data-state": state, title: label });
  });
  const failedDays = cells.filter((c) => c.dataset.state === "failed").length;
  const okDays = cells.filter((c) => c.dataset.state === "ok").length;
  return h("span", { class: "outcome-strip", role: "img", "data-plan": name, "aria-label": `${name}, last 30 days: ${okDays} days all backups succeeded, ${failedDays} with a failure` }, cells);
}

import { api, hasRoute } from "../api.js";
import { describeCron } from "../cron-builder.js";
import { h, replace, type Child } from "../dom.js";
import { ago, time } from "../format.js";
import { field, inlineForm, isoOf, localInput, select } from "../form.js";
import type { JobSummary, Plan, PlanScheduleState, Repository } from "../types.js";
import { actionButton, can, missingRoute, problemText, section, statusBadge, table, type PageContext } from "../ui.js";
import { drillsPart } from "./drills.js";

/** How a plan's source reads in a list. */
export function sourceText(p: Plan): string {
  const s = p.source;
  if (s.type === "files") return (s.paths ?? []).join(", ");
  return `${s.type === "postgres" ? "PostgreSQL" : "MySQL / MariaDB"} ${s.mode} · ${s.url}`;
}

export function scheduleText(p: Plan): string {
  if (!p.schedule) return "on demand";
  return `${describeCron(p.schedule.cron, p.schedule.timezone ?? "UTC")}${p.paused ? " · paused" : ""}`;
}

/** Plans with their source, schedule and repository; "Run now" starts a backup and opens its job; an admin creates and edits them. */
export async function plansPage(root: HTMLElement, ctx: PageContext): Promise<void> {
  const list = h("section", { id: "plans" });
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Plans"), can(ctx.session, "plans:write") ? h("a", { href: "#/plans/new", id: "new-plan", class: "button" }, "New plan") : null), list);
  await section(list, async () => {
    if (!(await hasRoute("GET /v1/plans"))) return missingRoute("GET /v1/plans", "plans");
    const [{ plans }, repos] = await Promise.all([
      api<{ plans: Plan[] }>("GET", "/v1/plans?limit=500"),
      api<{ repositories: Repository[] }>("GET", "/v1/repositories?limit=500").then((r) => r.repositories, () => [] as Repository[]),
    ]);
    const repoName = (id: string) => repos.find((r) => r.id === id)?.name ?? id;
    return table(
      ["Plan", "Source", "Schedule", "Repository", ""],
      plans.map((p) => [
        h("a", { href: `#/plans/${encodeURIComponent(p.id)}`, class: "plan-name" }, p.name),
        sourceText(p),
        h("span", { title: p.schedule ? `${p.schedule.cron} (${p.schedule.timezone ?? "UTC"})` : "" }, scheduleText(p)),
        h("a", { href: `#/snapshots/${encodeURIComponent(p.repositoryId)}` }, repoName(p.repositoryId)),
        h(
          "span",
          { class: "row-actions" },
          actionButton(ctx.session, "plans:run", "Run now", async (button) => {
            button.disabled = true;
            try {
              const { jobId } = await api<{ jobId: string }>("POST", `/v1/plans/${encodeURIComponent(p.id)}/run`);
              location.hash = `#/jobs/${encodeURIComponent(jobId)}`;
            } catch (err) {
              ctx.notify(problemText(err));
              button.disabled = false;
            }
          }, { class: "run-plan", "data-plan": p.name }),
          can(ctx.session, "plans:write") ? h("a", { href: `#/plans/${encodeURIComponent(p.id)}/edit`, class: "edit-plan", "data-plan": p.name }, "Edit") : null,
        ),
      ]),
      { "aria-label": "Plans", class: "cards-on-phone" },
    );
  });
}

const OVERLAPS: [string, string][] = [
  ["skip", "skip: one catch-up run for the period"],
  ["buffer_all", "buffer_all: every missed run, one after the other"],
  ["buffer_one", "buffer_one"],
  ["allow_all", "allow_all: all at once"],
];

/** One plan: what it backs up and when, the next runs Temporal will take, its jobs and drills; pause, resume, run now, backfill. */
export async function planPage(root: HTMLElement, ctx: PageContext, id?: string): Promise<void> {
  const body = h("section", { id: "plan" });
  replace(root, body);
  if (!id) return;
  const load = () =>
    section(body, async () => {
      const plan = await api<Plan>("GET", `/v1/plans/${encodeURIComponent(id)}`);
      document.title = `${plan.name} · Cairn`;
      const repos = await api<{ repositories: Repository[] }>("GET", "/v1/repositories?limit=500").then((r) => r.repositories, () => [] as Repository[]);
      const repoName = (rid: string) => repos.find((r) => r.id === rid)?.name ?? rid;
      const schedule = h("div", { id: "plan-schedule" });
      const jobs = h("div", { id: "plan-jobs" });
      const drills = h("div", { id: "plan-drills" });
      void (plan.schedule ? scheduleState(schedule, plan) : Promise.resolve(replace(schedule, h("p", { class: "empty" }, "No schedule: the plan runs when started (Run now)."))));
      void section(jobs, async () => {
        const { jobs: list } = await api<{ jobs: JobSummary[] }>("GET", `/v1/jobs?planId=${encodeURIComponent(plan.id)}&limit=10`);
        return table(
          ["Job", "Kind", "Status", "Started"],
          list.map((j) => [h("a", { href: `#/jobs/${encodeURIComponent(j.id)}`, class: "mono" }, j.id), j.kind, statusBadge(j.status), h("span", { title: time(j.startedAt) }, ago(j.startedAt))]),
          { "aria-label": `Recent jobs of ${plan.name}` },
        );
      });
      void drillsPart(drills, ctx, plan);
      const r = plan.retention;
      const facts: [string, Child][] = [
        ["Source", sourceText(plan)],
        ["Repository", h("a", { href: `#/snapshots/${encodeURIComponent(plan.repositoryId)}` }, repoName(plan.repositoryId))],
        ["Schedule", plan.schedule ? `${scheduleText(plan)} — ${plan.schedule.cron}, overlap ${plan.schedule.overlap ?? "skip"}${plan.schedule.blackouts?.length ? `, ${plan.schedule.blackouts.length} blackout window(s)` : ""}` : "on demand"],
        ["Retention", r ? Object.entries(r).filter(([, v]) => v !== undefined && v !== 0).map(([k, v]) => `${k} ${v}`).join(", ") : "keep everything"],
        ["Copies to", plan.secondaryRepositoryIds.length ? plan.secondaryRepositoryIds.map(repoName).join(", ") : "–"],
        ["Verify after backup", plan.verifySamplePercent !== null ? `${plan.verifySamplePercent}% of the new packs` : "default"],
        ["Notifications", plan.notifications.length ? plan.notifications.map((n) => `${n.type} ${n.url ?? n.host ?? (n.to ?? []).join(", ")} on ${n.on.join(", ")}`).join("; ") : "none"],
        ["RPO", plan.effectiveRpoMinutes !== null ? `${plan.effectiveRpoMinutes} min${plan.rpoMinutes === null ? " (from the schedule)" : ""}` : "none"],
        ["Drills", plan.drill ? (plan.drill.cron ? describeCron(plan.drill.cron, plan.drill.timezone ?? "UTC") : "by hand only") + (plan.drill.checkSql ? ` · check ${plan.drill.checkSql}` : "") : "not set up"],
      ];
      const actions = h(
        "div",
        { class: "actions" },
        can(ctx.session, "plans:write") ? h("a", { href: `#/plans/${encodeURIComponent(plan.id)}/edit`, id: "edit-plan", class: "button" }, "Edit") : null,
        can(ctx.session, "plans:run")
          ? actionButton(ctx.session, "plans:run", "Run now", async (button) => {
              button.disabled = true;
              try {
                const { jobId } = await api<{ jobId: string }>("POST", `/v1/plans/${encodeURIComponent(plan.id)}/run`);
                location.hash = `#/jobs/${encodeURIComponent(jobId)}`;
              } catch (err) {
                ctx.notify(problemText(err));
                button.disabled = false;
              }
            }, { id: "run-plan" })
          : null,
        plan.schedule && can(ctx.session, "plans:write")
          ? actionButton(ctx.session, "plans:write", plan.paused ? "Resume schedule" : "Pause schedule", async (button) => {
              button.disabled = true;
              try {
                await api("POST", `/v1/plans/${encodeURIComponent(plan.id)}/${plan.paused ? "resume" : "pause"}`);
                ctx.notify(plan.paused ? "Schedule resumed." : "Schedule paused: no scheduled run starts until it is resumed.", "info");
                await load();
              } catch (err) {
                ctx.notify(problemText(err));
                button.disabled = false;
              }
            }, { id: "pause-plan" })
          : null,
      );
      return [
        h("div", { class: "page-head" }, h("h1", {}, "Plan ", h("span", { id: "plan-title" }, plan.name)), plan.paused ? h("span", { class: "badge status-cancelled", id: "plan-paused" }, "paused") : null, h("a", { href: "#/plans" }, "All plans")),
        h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
        actions,
        h("h2", {}, "Schedule"),
        schedule,
        plan.schedule && can(ctx.session, "plans:run") ? backfillForm(ctx, plan) : null,
        h("h2", {}, "Recent jobs"),
        jobs,
        h("h2", {}, "Recovery drills"),
        drills,
      ];
    });
  await load();
}

/** The next runs Temporal will take (its own computation, blackouts left out) and the recent ones. */
export async function scheduleState(el: HTMLElement, plan: Plan): Promise<void> {
  await section(el, async () => {
    const s = await api<PlanScheduleState>("GET", `/v1/plans/${encodeURIComponent(plan.id)}/schedule`);
    const zone = plan.schedule?.timezone ?? "UTC";
    const inZone = (iso: string) => new Date(iso).toLocaleString(undefined, { timeZone: zone, weekday: "short", year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
    return [
      h("p", {}, s.paused ? h("strong", { class: "warn" }, "Paused: no scheduled run starts. ") : null, `Next runs (${zone}, as Temporal computes them):`),
      s.nextRuns.length ? h("ol", { id: "next-runs", "aria-label": "Next runs" }, s.nextRuns.slice(0, 5).map((t) => h("li", { "data-time": t, title: `${t} UTC` }, inZone(t)))) : h("p", { id: "next-runs", class: "empty" }, "none"),
      s.recentRuns.length ? [h("p", {}, "Recent scheduled runs:"), h("ul", {}, s.recentRuns.slice(-5).map((r) => h("li", {}, inZone(r.scheduledAt), " → ", h("a", { href: `#/jobs/${encodeURIComponent(r.jobId)}`, class: "mono" }, r.jobId))))] : null,
      s.skippedForOverlap || s.missedCatchupWindow ? h("p", { class: "warn" }, `${s.skippedForOverlap} run(s) skipped because the previous one was still going; ${s.missedCatchupWindow} missed while the platform was down (backfill takes them).`) : null,
    ];
  });
}

function backfillForm(ctx: PageContext, plan: Plan): HTMLElement {
  const now = Date.now();
  const from = h("input", { id: "backfill-from", type: "datetime-local", step: 1, required: true, value: localInput(new Date(now - 86_400_000)) });
  const to = h("input", { id: "backfill-to", type: "datetime-local", step: 1, required: true, value: localInput(new Date(now)) });
  const overlap = select("backfill-overlap", OVERLAPS, "skip");
  const problem = h("p", { class: "problem", role: "alert" });
  const submit = h("button", { type: "submit" }, "Backfill");
  return h(
    "details",
    { class: "backfill" },
    h("summary", {}, "Backfill a missed period"),
    inlineForm(
      { id: "backfill-form" },
      async () => {
        submit.disabled = true;
        replace(problem);
        try {
          await api("POST", `/v1/plans/${encodeURIComponent(plan.id)}/backfill`, { from: isoOf(from.value) ?? from.value, to: isoOf(to.value) ?? to.value, overlap: overlap.value });
          ctx.notify("Backfill requested: its runs appear under Jobs as they start.", "info");
        } catch (err) {
          replace(problem, problemText(err));
        } finally {
          submit.disabled = false;
        }
      },
      field("From (your time zone)", from),
      field("To", to),
      field("Overlap", overlap),
      submit,
      problem,
    ),
  );
}

import { api, hasRoute } from "../api.js";
import { h, replace } from "../dom.js";
import type { Plan, Repository } from "../types.js";
import { actionButton, missingRoute, problemText, section, table, type PageContext } from "../ui.js";

/** Plans with their source, schedule and repository; "Run now" starts a backup and opens its job. */
export async function plansPage(root: HTMLElement, ctx: PageContext): Promise<void> {
  const list = h("section", { id: "plans" });
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Plans")), list);
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
        h("strong", { class: "plan-name" }, p.name),
        p.source.type === "files" ? (p.source.paths ?? []).join(", ") : p.source.type,
        p.schedule ? `${p.schedule.cron}${p.schedule.timezone ? ` (${p.schedule.timezone})` : ""}${p.paused ? " · paused" : ""}` : "on demand",
        h("a", { href: `#/snapshots/${encodeURIComponent(p.repositoryId)}` }, repoName(p.repositoryId)),
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
      ]),
      { "aria-label": "Plans" },
    );
  });
}

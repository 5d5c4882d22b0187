import { api } from "../api.js";
import { h } from "../dom.js";
import { ago, bytes, duration, shortId, time } from "../format.js";
import type { DrillRecord, Plan } from "../types.js";
import { actionButton, can, problemText, section, table, type PageContext } from "../ui.js";

/** A plan's finished recovery drills with their RTO, newest first, and "Run drill now" for a role that may. */
export async function drillsPart(el: HTMLElement, ctx: PageContext, plan: Plan): Promise<void> {
  const logical = plan.source.type === "postgres" && plan.source.mode === "logical";
  if (logical) {
    el.replaceChildren(h("p", { class: "empty" }, "Drills restore files plans and physical database plans; restore a logical plan's dump into a scratch database by hand (POST /v1/restores/logical)."));
    return;
  }
  const run = can(ctx.session, "drills:run")
    ? actionButton(ctx.session, "drills:run", "Run drill now", async (button) => {
        button.disabled = true;
        try {
          const { jobId } = await api<{ jobId: string }>("POST", `/v1/plans/${encodeURIComponent(plan.id)}/drills`);
          location.hash = `#/jobs/${encodeURIComponent(jobId)}`;
        } catch (err) {
          ctx.notify(problemText(err));
          button.disabled = false;
        }
      }, { class: "run-drill", "data-plan": plan.name })
    : null;
  const list = h("div", { class: "drill-list" });
  el.replaceChildren(list, run ? h("div", { class: "actions" }, run) : "");
  await section(list, async () => {
    const { drills } = await api<{ drills: DrillRecord[] }>("GET", `/v1/plans/${encodeURIComponent(plan.id)}/drills?limit=10`);
    if (!drills.length) return h("p", { class: "empty" }, "No drill has finished yet.");
    return table(
      ["Drill", "Outcome", "RTO", "Restored", "Verified", "Check"],
      drills.map((d) => [
        h("a", { href: `#/jobs/${encodeURIComponent(d.jobId)}`, title: time(d.startedAt) }, ago(d.startedAt)),
        h("span", { class: `badge status-${d.outcome === "passed" ? "completed" : d.outcome === "failed" ? "failed" : "cancelled"}` }, d.outcome),
        h("span", { class: "drill-rto" }, d.rtoSeconds !== null ? duration(d.rtoSeconds) : "–"),
        d.snapshotId ? h("span", { class: "mono", title: d.snapshotId }, shortId(d.snapshotId)) : "–",
        `${d.filesVerified} files, ${bytes(d.bytes)}`,
        d.error ? h("span", { class: "problem" }, d.error) : d.check ? `${d.check.sql} → ${d.check.rows.join(", ")}` : "",
      ]),
      { "aria-label": `Recovery drills of ${plan.name}` },
    );
  });
}

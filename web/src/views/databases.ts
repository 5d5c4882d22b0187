import { api, hasRoute } from "../api.js";
import { h, replace, type Child } from "../dom.js";
import { shortId, time } from "../format.js";
import { field, isoOf, localInput } from "../form.js";
import { recoveryTimeline } from "../timeline.js";
import type { Plan, RecoveryWindow } from "../types.js";
import { can, missingRoute, problemText, section, table, type PageContext } from "../ui.js";
import { drillsPart } from "./drills.js";
import { scheduleText } from "./plans.js";

const isDatabase = (p: Plan) => p.source.type !== "files";
const isPhysicalPostgres = (p: Plan) => p.source.type === "postgres" && p.source.mode === "physical";

/**
 * Database plans: for physical PostgreSQL ones the recoverable window on a time
 * line (base backups, WAL coverage, gaps in red) and a point-in-time recovery
 * form; for each, its drills with their RTO.
 */
export async function databasesPage(root: HTMLElement, ctx: PageContext): Promise<void> {
  const body = h("div", { id: "databases" });
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Databases")), body);
  await section(body, async () => {
    if (!(await hasRoute("GET /v1/plans"))) return missingRoute("GET /v1/plans", "plans");
    const { plans } = await api<{ plans: Plan[] }>("GET", "/v1/plans?limit=500");
    const dbs = plans.filter(isDatabase);
    if (!dbs.length) return h("p", { class: "empty" }, "No database plan yet. ", can(ctx.session, "plans:write") ? h("a", { href: "#/plans/new" }, "Create one") : "An admin creates them", " with a PostgreSQL or MySQL source.");
    const cards = dbs.map((p) => databaseCard(ctx, p));
    return cards;
  });
}

function databaseCard(ctx: PageContext, plan: Plan): HTMLElement {
  const s = plan.source;
  const windowEl = h("div", { class: "recovery-window" });
  const drills = h("div", { class: "drills" });
  const card = h(
    "section",
    { class: "database card", "data-plan": plan.name, "aria-labelledby": `db-${plan.id}` },
    h("h2", { id: `db-${plan.id}` }, h("a", { href: `#/plans/${encodeURIComponent(plan.id)}` }, plan.name)),
    h("p", { class: "hint" }, s.type === "files" ? "" : `${s.type === "postgres" ? "PostgreSQL" : "MySQL / MariaDB"} ${s.mode} · ${s.url} · ${scheduleText(plan)}`),
    isPhysicalPostgres(plan) ? [h("h3", {}, "Recoverable window"), windowEl] : h("p", { class: "hint" }, s.type === "postgres" ? "Logical dumps: restore a database or tables with POST /v1/restores/logical." : "Recover with cairn mysql restore --target-dir on the database host."),
    h("h3", {}, "Recovery drills"),
    drills,
  );
  if (isPhysicalPostgres(plan)) void recoveryPart(windowEl, ctx, plan);
  void drillsPart(drills, ctx, plan);
  return card;
}

async function recoveryPart(el: HTMLElement, ctx: PageContext, plan: Plan): Promise<void> {
  replace(el, h("p", { class: "loading" }, "Asking a worker what the repository can recover…"));
  await section(el, async () => {
    const w = await api<RecoveryWindow>("GET", `/v1/plans/${encodeURIComponent(plan.id)}/recovery-window`);
    const svg = recoveryTimeline(`timeline-${plan.id}`, w);
    if (!svg) return h("p", { class: "empty window-empty" }, "No base backup yet: run the plan once (and archive WAL with cairn pg wal-push) to make its first recoverable point.");
    const parts: Child[] = [
      h(
        "p",
        { class: "window-ends" },
        "From ",
        h("strong", {}, time(w.earliest!.time)),
        ` (LSN ${w.earliest!.lsn}) to `,
        h("strong", {}, time(w.latest!.time ?? w.earliest!.time)),
        ` (LSN ${w.latest!.lsn}, timeline ${w.latest!.timeline}); ${w.baseBackups} base backup${w.baseBackups === 1 ? "" : "s"}.`,
      ),
      h("figure", { class: "timeline-figure" }, svg, h("figcaption", { class: "legend" }, h("span", { class: "legend-backup" }, "▼ base backup"), " ", h("span", { class: "legend-wal" }, "■ WAL archived"), " ", h("span", { class: "legend-gap" }, "■ gap (cannot be recovered)"))),
    ];
    if (w.backups?.length) {
      parts.push(
        h(
          "details",
          {},
          h("summary", {}, "Base backups"),
          table(
            ["Base backup", "Ended", "WAL reaches", "Breaks at"],
            w.backups.map((b) => [h("span", { class: "mono", title: b.snapshotId }, shortId(b.snapshotId)), `${time(b.endTime)} (${b.endLsn})`, `${time(b.until.time)} (${b.until.lsn})`, b.breaksAt ? h("span", { class: "problem mono" }, b.breaksAt) : "–"]),
            { "aria-label": `Base backups of ${plan.name}` },
          ),
        ),
      );
    }
    if (can(ctx.session, "restores:create")) parts.push(recoveryForm(ctx, plan, w));
    return parts;
  });
}

/** Point-in-time recovery into a new data directory on a worker, started on a port of its own: the latest point, a time, or an LSN. */
function recoveryForm(ctx: PageContext, plan: Plan, w: RecoveryWindow): HTMLElement {
  const p = `pitr-${plan.id}`;
  const radio = (value: string, label: string, checked = false) => h("label", { class: "check" }, h("input", { type: "radio", name: `${p}-target`, value, class: "pitr-kind", checked }), ` ${label}`);
  const at = h("input", { id: `${p}-time`, class: "pitr-time", type: "datetime-local", step: 1, value: w.latest?.time ? localInput(w.latest.time) : "" });
  const lsn = h("input", { id: `${p}-lsn`, class: "pitr-lsn mono", size: 18, placeholder: w.latest?.lsn ?? "0/3000060", spellcheck: "false" });
  const dataDir = h("input", { id: `${p}-datadir`, class: "pitr-datadir", size: 50, required: true, placeholder: "/var/lib/cairn/restores/pg-recovered", spellcheck: "false" });
  const port = h("input", { id: `${p}-port`, class: "pitr-port", type: "number", min: 1024, max: 65535, value: 5499, required: true });
  const problem = h("p", { class: "problem", role: "alert" });
  const submit = h("button", { type: "submit" }, "Recover");
  const form = h(
    "form",
    {
      class: "pitr-form restore-form",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        replace(problem);
        const kind = (form.querySelector<HTMLInputElement>(".pitr-kind:checked") ?? { value: "latest" }).value;
        const target = kind === "time" ? { time: isoOf(at.value) ?? at.value } : kind === "lsn" ? { lsn: lsn.value.trim() } : { latest: true as const };
        submit.disabled = true;
        try {
          const { jobId } = await api<{ jobId: string }>("POST", "/v1/recoveries", { planId: plan.id, target, into: { dataDir: dataDir.value.trim(), port: Number(port.value) } });
          location.hash = `#/jobs/${encodeURIComponent(jobId)}`;
        } catch (err) {
          replace(problem, problemText(err));
          submit.disabled = false;
        }
      },
    },
    h("h3", {}, "Point-in-time recovery"),
    h("p", { class: "hint" }, "Restores the base backup before the target into a new, empty directory under the restore roots, replays WAL to the target, and starts the server there (on the worker's 127.0.0.1). The running cluster is not touched."),
    h("fieldset", { class: "pitr-target" }, h("legend", {}, "Recover to"), radio("latest", "the latest archived point", true), radio("time", "a time"), at, radio("lsn", "an LSN"), lsn),
    field("Data directory (new or empty)", dataDir),
    field("Port", port),
    h("div", { class: "actions" }, submit),
    problem,
  );
  return form;
}

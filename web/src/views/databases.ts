import { api, hasRoute } from "../api.js";
import { h, replace, type Child } from "../dom.js";
import { shortId, time } from "../format.js";
import { field, isoOf, localInput } from "../form.js";
import { mysqlSpan, postgresSpan, recoveryTimeline, type WindowSpan } from "../timeline.js";
import type { MysqlRecoveryWindow, Plan, RecoveryWindow } from "../types.js";
import { can, missingRoute, problemText, section, table, type PageContext } from "../ui.js";
import { binlogArchiverPart } from "./binlog-archiver.js";
import { drillsPart } from "./drills.js";
import { standbyPart } from "./standby.js";
import { scheduleText } from "./plans.js";

const isDatabase = (p: Plan) => p.source.type !== "files";
const isPhysical = (p: Plan) => p.source.type !== "files" && p.source.mode === "physical";

/**
 * Database plans: for physical ones (PostgreSQL, MySQL / MariaDB) the recoverable
 * window on a time line (backups, archived WAL or binary logs, gaps in red) and a
 * point-in-time recovery form; for each, its drills with their RTO.
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
  const standby = h("div", { class: "standby-part" });
  const archiver = h("div", { class: "archiver-part" });
  const card = h(
    "section",
    { class: "database card", "data-plan": plan.name, "aria-labelledby": `db-${plan.id}` },
    h("h2", { id: `db-${plan.id}` }, h("a", { href: `#/plans/${encodeURIComponent(plan.id)}` }, plan.name)),
    h("p", { class: "hint" }, s.type === "files" ? "" : `${s.type === "postgres" ? "PostgreSQL" : "MySQL / MariaDB"} ${s.mode} · ${s.url} · ${scheduleText(plan)}`),
    isPhysical(plan) ? [h("h3", {}, "Recoverable window"), windowEl] : h("p", { class: "hint" }, s.type === "postgres" ? "Logical dumps: restore a database or tables with POST /v1/restores/logical." : "Logical dumps: restore a database or tables with POST /v1/restores/mysql."),
    isPhysical(plan) && s.type === "postgres" ? standby : null,
    isPhysical(plan) && s.type === "mysql" ? archiver : null,
    h("h3", {}, "Recovery drills"),
    drills,
  );
  if (isPhysical(plan)) void recoveryPart(windowEl, ctx, plan);
  if (isPhysical(plan) && s.type === "postgres") void standbyPart(standby, ctx, plan);
  if (isPhysical(plan) && s.type === "mysql") void binlogArchiverPart(archiver, ctx, plan);
  void drillsPart(drills, ctx, plan);
  return card;
}

async function recoveryPart(el: HTMLElement, ctx: PageContext, plan: Plan): Promise<void> {
  const mysql = plan.source.type === "mysql";
  replace(el, h("p", { class: "loading" }, "Asking a worker what the repository can recover…"));
  await section(el, async () => {
    const answer = await api<RecoveryWindow | MysqlRecoveryWindow>("GET", `/v1/plans/${encodeURIComponent(plan.id)}/recovery-window`);
    const span = mysql ? mysqlSpan(answer as MysqlRecoveryWindow) : postgresSpan(answer as RecoveryWindow);
    const svg = recoveryTimeline(`timeline-${plan.id}`, span);
    if (!span || !svg) {
      return h("p", { class: "empty window-empty" }, mysql ? "No physical backup yet: run the plan once (with binlogs: true it archives the binary logs too) to make its first recoverable point." : "No base backup yet: run the plan once (and archive WAL with cairn pg wal-push) to make its first recoverable point.");
    }
    const count = span.backups.length;
    const parts: Child[] = [
      h(
        "p",
        { class: "window-ends" },
        "From ",
        h("strong", {}, time(span.earliest.time)),
        ` (${span.earliest.at}) to `,
        h("strong", {}, time(span.latest.time)),
        ` (${span.latest.at}); ${mysql ? "from the newest physical backup" : `${count} base backup${count === 1 ? "" : "s"}`}.`,
      ),
      h("figure", { class: "timeline-figure" }, svg, h("figcaption", { class: "legend" }, h("span", { class: "legend-backup" }, "▼ backup"), " ", h("span", { class: "legend-wal" }, mysql ? "■ binary logs archived" : "■ WAL archived"), " ", h("span", { class: "legend-gap" }, "■ gap (cannot be recovered)"))),
    ];
    const broken = span.backups.filter((b) => b.breaksAt);
    if (mysql && broken.length) parts.push(h("p", { class: "problem" }, `${broken[0].breaksAt} is missing from the archive: recovery cannot go past ${time(span.latest.time)}.`));
    if (!mysql && count) {
      parts.push(
        h(
          "details",
          {},
          h("summary", {}, "Base backups"),
          table(
            ["Base backup", "Ended", "WAL reaches", "Breaks at"],
            span.backups.map((b) => [h("span", { class: "mono", title: b.id }, shortId(b.id)), `${time(b.endTime)} (${b.endAt})`, `${time(b.untilTime)} (${b.untilAt})`, b.breaksAt ? h("span", { class: "problem mono" }, b.breaksAt) : "–"]),
            { "aria-label": `Base backups of ${plan.name}` },
          ),
        ),
      );
    }
    if (can(ctx.session, "restores:create")) parts.push(recoveryForm(ctx, plan, span, mysql));
    return parts;
  });
}

/**
 * Point-in-time recovery into a new data directory on a worker, started on a port of its own:
 * the latest point, a time, or a position (an LSN for PostgreSQL, FILE:OFFSET of a binary log for MySQL).
 */
function recoveryForm(ctx: PageContext, plan: Plan, span: WindowSpan, mysql: boolean): HTMLElement {
  const p = `pitr-${plan.id}`;
  const radio = (value: string, label: string, checked = false) => h("label", { class: "check" }, h("input", { type: "radio", name: `${p}-target`, value, class: "pitr-kind", checked }), ` ${label}`);
  const at = h("input", { id: `${p}-time`, class: "pitr-time", type: "datetime-local", step: 1, value: localInput(span.latest.time), "aria-label": "Recover to this time (your time zone)" });
  const position = h("input", { id: `${p}-position`, class: "pitr-lsn mono", size: 24, placeholder: mysql ? "binlog.000004:154" : "0/3000060", spellcheck: "false", "aria-label": mysql ? "Binary log position FILE:OFFSET" : "LSN" });
  const dataDir = h("input", { id: `${p}-datadir`, class: "pitr-datadir", size: 50, required: true, placeholder: mysql ? "/var/lib/cairn/restores/mysql-recovered" : "/var/lib/cairn/restores/pg-recovered", spellcheck: "false" });
  const port = h("input", { id: `${p}-port`, class: "pitr-port", type: "number", min: 1024, max: 65535, value: mysql ? 3399 : 5499, required: true });
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
        const time = { time: isoOf(at.value) ?? at.value };
        const target = kind === "time" ? time : kind === "position" ? (mysql ? { position: position.value.trim() } : { lsn: position.value.trim() }) : { latest: true as const };
        submit.disabled = true;
        try {
          const { jobId } = await api<{ jobId: string }>("POST", mysql ? "/v1/recoveries/mysql" : "/v1/recoveries", { planId: plan.id, target, into: { dataDir: dataDir.value.trim(), port: Number(port.value) } });
          location.hash = `#/jobs/${encodeURIComponent(jobId)}`;
        } catch (err) {
          replace(problem, problemText(err));
          submit.disabled = false;
        }
      },
    },
    h("h3", {}, "Point-in-time recovery"),
    h(
      "p",
      { class: "hint" },
      mysql
        ? "Restores the physical backup into a new, empty directory under the restore roots, replays the binary logs to the target, and starts mariadbd there (on the worker's 127.0.0.1). The running server is not touched."
        : "Restores the base backup before the target into a new, empty directory under the restore roots, replays WAL to the target, and starts the server there (on the worker's 127.0.0.1). The running cluster is not touched.",
    ),
    h("fieldset", { class: "pitr-target" }, h("legend", {}, "Recover to"), radio("latest", mysql ? "the end of the archived binary logs" : "the latest archived point", true), radio("time", "a time"), at, radio("position", mysql ? "a binary log position" : "an LSN"), position),
    field("Data directory (new or empty)", dataDir),
    field("Port", port),
    h("div", { class: "actions" }, submit),
    problem,
  );
  return form;
}

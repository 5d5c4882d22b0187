import { api, hasRoute } from "../api.js";
import { h, replace, type Child } from "../dom.js";
import { ago, bytes, duration } from "../format.js";
import { field, select } from "../form.js";
import type { Failover, Plan, Standby } from "../types.js";
import { can, problemText, section, type PageContext } from "../ui.js";

/**
 * A physical PostgreSQL plan's warm standby (GET /v1/standbys: phase and replay
 * lag) and, for an admin, the failover form: promote the standby (or restore the
 * latest state into a new directory), fence the old primary, optionally switch
 * clients over; started only once the plan's name is typed in.
 */
export async function standbyPart(el: HTMLElement, ctx: PageContext, plan: Plan): Promise<void> {
  const [standbys, failovers] = await Promise.all([hasRoute("GET /v1/standbys"), hasRoute("POST /v1/failovers")]);
  if (!standbys && !failovers) {
    el.hidden = true;
    return;
  }
  await section(el, async () => {
    const standby = standbys ? (await api<{ standbys: Standby[] }>("GET", "/v1/standbys")).standbys.find((s) => s.planId === plan.id) : undefined;
    const parts: Child[] = [h("h3", {}, "Standby")];
    if (!standbys) parts.push(h("p", { class: "hint" }, "This API has no GET /v1/standbys."));
    else if (!standby) parts.push(h("p", { class: "empty standby-none" }, "No warm standby (an operator starts one with POST /v1/standbys)."));
    else {
      const lag = [standby.lagBytes !== undefined ? bytes(standby.lagBytes) : undefined, standby.lagSeconds !== undefined ? duration(standby.lagSeconds) : undefined].filter(Boolean).join(", ");
      parts.push(
        h(
          "p",
          { class: "standby", "data-phase": standby.phase },
          h("span", { class: `badge status-${standby.running ? "running" : "cancelled"}` }, standby.phase),
          ` ${standby.dataDir} on port ${standby.port}; `,
          h("strong", { class: "standby-lag" }, lag ? `behind by ${lag}` : "lag not measured yet"),
          standby.lagSource ? ` (${standby.lagSource === "heartbeat" ? "primary's heartbeat" : "last replayed commit"})` : "",
          standby.lastCheckedAt ? `, checked ${ago(standby.lastCheckedAt)}` : "",
          standby.restarts ? `; restarted ${standby.restarts}×` : "",
        ),
        standby.error ? h("p", { class: "problem" }, standby.error) : null,
        standby.warnings.length ? h("ul", {}, standby.warnings.map((w) => h("li", { class: "warn" }, w))) : null,
      );
    }
    if (failovers && can(ctx.session, "failovers:run")) parts.push(failoverForm(plan, standby));
    return parts;
  });
}

function failoverForm(plan: Plan, standby: Standby | undefined): HTMLElement {
  const p = `failover-${plan.id}`;
  const target = select(`${p}-target`, standby ? [["standby", `promote the standby (${standby.dataDir}:${standby.port})`], ["into", "restore the latest state into a new directory"]] : [["into", "restore the latest state into a new directory"], ["standby", "promote a standby running on the worker's host"]], standby ? "standby" : "into");
  const dataDir = h("input", { id: `${p}-datadir`, class: "failover-datadir", size: 44, required: true, value: standby?.dataDir ?? "", placeholder: "/var/lib/cairn/restores/pg-new-primary", spellcheck: "false" });
  const port = h("input", { id: `${p}-port`, class: "failover-port", type: "number", min: 1024, max: 65535, value: standby?.port ?? 5497, required: true });
  const fence = select(`${p}-fence`, [["dataDir", "stop the old primary by its data directory (on the worker's host)"], ["hook", "run my fencing program"]], "dataDir");
  const fenceValue = h("input", { id: `${p}-fence-value`, class: "failover-fence", size: 44, required: true, spellcheck: "false", placeholder: "/var/lib/postgresql/15/main" });
  const cutover = select(`${p}-cutover`, [["", "leave clients to me"], ["pgbouncer", "rewrite PgBouncer's entry and reload it"], ["hook", "run my cut-over program"]], "");
  const cutoverValue = h("input", { id: `${p}-cutover-value`, class: "failover-cutover", size: 44, spellcheck: "false" });
  const pgbDatabase = h("input", { id: `${p}-pgb-db`, size: 16, placeholder: "app" });
  const reason = h("input", { id: `${p}-reason`, class: "failover-reason", size: 50, required: true, maxlength: 500, placeholder: "primary host lost its disk" });
  const dry = h("input", { id: `${p}-dry`, type: "checkbox", class: "failover-dry" });
  const confirm = h("input", { id: `${p}-confirm`, class: "failover-confirm", autocomplete: "off", spellcheck: "false", "aria-describedby": `${p}-confirm-hint` });
  const submit = h("button", { type: "submit", class: "danger", disabled: true }, "Fail over");
  const problem = h("p", { class: "problem", role: "alert" });
  const progress = h("div", { class: "failover-progress", "aria-live": "polite" });
  const pgbField = field("PgBouncer database entry", pgbDatabase);
  const cutoverField = field("", cutoverValue);
  const show = () => {
    fenceValue.placeholder = fence.value === "hook" ? "/usr/local/bin/fence-old-primary --force" : "/var/lib/postgresql/15/main";
    cutoverField.hidden = cutover.value === "";
    pgbField.hidden = cutover.value !== "pgbouncer";
    (cutoverField.firstChild as HTMLElement).textContent = cutover.value === "pgbouncer" ? "PgBouncer configuration file" : "Program and arguments";
    submit.disabled = confirm.value !== plan.name;
    submit.textContent = dry.checked ? "Check the failover (dry run)" : "Fail over";
  };
  for (const input of [fence, cutover, confirm, dry]) input.addEventListener("input", show);
  for (const input of [fence, cutover, dry]) input.addEventListener("change", show);
  const words = (text: string) => text.trim().split(/\s+/).filter(Boolean);
  const form = h(
    "form",
    {
      class: "failover-form restore-form",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        if (confirm.value !== plan.name) return;
        replace(problem);
        submit.disabled = true;
        const place = { dataDir: dataDir.value.trim(), port: Number(port.value) };
        const body = {
          planId: plan.id,
          ...(target.value === "standby" ? { standby: place } : { into: place }),
          fence: fence.value === "hook" ? { hook: words(fenceValue.value) } : { dataDir: fenceValue.value.trim() },
          ...(cutover.value === "pgbouncer" ? { cutover: { type: "pgbouncer", configFile: cutoverValue.value.trim(), database: pgbDatabase.value.trim() } } : cutover.value === "hook" ? { cutover: { type: "hook", command: words(cutoverValue.value) } } : {}),
          reason: reason.value.trim(),
          ...(dry.checked ? { dryRun: true } : {}),
        };
        try {
          const { id } = await api<{ id: string }>("POST", "/v1/failovers", body);
          void followFailover(progress, id);
        } catch (err) {
          replace(problem, problemText(err));
          show();
        }
      },
    },
    h("h3", {}, "Failover"),
    h("p", { class: "hint" }, "Fences the old primary (and confirms it no longer answers), promotes the new one, runs its checks, then switches clients when told how. It cannot be undone from here."),
    field("New primary", target),
    h("div", { class: "inline-form" }, field("Data directory", dataDir), field("Port", port)),
    field("Fence the old primary", fence),
    field("Data directory or program", fenceValue),
    field("Switch clients", cutover),
    cutoverField,
    pgbField,
    field("Reason (kept in the audit log)", reason),
    h("label", { class: "check" }, dry, " Dry run: validate and say what each step would do, change nothing"),
    field(`Type the plan's name, ${plan.name}, to confirm`, confirm),
    h("p", { class: "hint", id: `${p}-confirm-hint` }, "The button stays disabled until the name matches."),
    h("div", { class: "actions" }, submit),
    problem,
    progress,
  );
  show();
  return form;
}

/** Polls GET /v1/failovers/{id} every 2 s until it ends: phase, steps, then RTO, RPO and the new primary, or why it stopped. */
async function followFailover(el: HTMLElement, id: string): Promise<void> {
  for (;;) {
    let f: Failover;
    try {
      f = await api<Failover>("GET", `/v1/failovers/${encodeURIComponent(id)}`);
    } catch (err) {
      replace(el, h("p", { class: "problem" }, problemText(err)));
      return;
    }
    const r = f.result;
    replace(
      el,
      h("p", { class: "failover-status", "data-status": f.status }, h("span", { class: `badge status-${f.status === "completed" ? "completed" : f.status === "running" ? "running" : "failed"}` }, f.status), ` failover ${id}${f.phase ? `, ${f.phase}` : ""}`),
      f.steps.length ? h("ol", {}, f.steps.map((s) => h("li", {}, `${s.name}: ${s.outcome} (${duration(s.ms / 1000)})`))) : null,
      r ? h("p", { class: "failover-result" }, r.dryRun ? "Dry run: nothing was changed. " : "", r.newPrimary ? `New primary ${r.newPrimary.host}:${r.newPrimary.port}. ` : "", r.rtoMs !== null ? `RTO ${duration(r.rtoMs / 1000)}. ` : "", `RPO ${r.rpo.bytes ?? "?"} bytes, ${r.rpo.seconds ?? "?"} s (${r.rpo.basis}).`) : null,
      r?.warnings.length ? h("ul", {}, r.warnings.map((w) => h("li", { class: "warn" }, w))) : null,
      f.error ? h("p", { class: "problem" }, f.error) : null,
    );
    if (f.status !== "running") return;
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

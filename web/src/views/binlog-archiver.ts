import { api, ApiProblem, hasRoute } from "../api.js";
import { h, replace, type Child } from "../dom.js";
import { ago, bytes, duration, time } from "../format.js";
import { field } from "../form.js";
import type { BinlogArchiver, Plan } from "../types.js";
import { can, problemText, type PageContext } from "../ui.js";

/**
 * A physical MySQL / MariaDB plan's continuous binary log archiver
 * (GET /v1/plans/{id}/binlog-archiver): its phase, how far the repository holds
 * the server's log and the lag behind it; start it (a spool directory under the
 * restore roots) and stop it, for a role holding plans:run. Refreshed every 5 s
 * while it runs or stops.
 */
export async function binlogArchiverPart(el: HTMLElement, ctx: PageContext, plan: Plan): Promise<void> {
  if (!(await hasRoute("GET /v1/plans/{id}/binlog-archiver"))) {
    el.hidden = true;
    return;
  }
  const state = h("div", { class: "archiver-state" });
  const problem = h("p", { class: "problem", role: "alert" });
  const controls = h("div", { class: "archiver-controls" });
  replace(el, h("h3", {}, "Binary log archiver"), state, controls, problem);
  const mayRun = can(ctx.session, "plans:run");
  let current: BinlogArchiver | undefined;
  let shown = "";

  async function load(): Promise<void> {
    let archiver: BinlogArchiver | undefined;
    try {
      archiver = await api<BinlogArchiver>("GET", `/v1/plans/${encodeURIComponent(plan.id)}/binlog-archiver`);
    } catch (err) {
      if (err instanceof ApiProblem && err.status === 401) return;
      if (!(err instanceof ApiProblem && err.status === 404)) {
        replace(state, h("p", { class: "problem" }, problemText(err)));
        return;
      }
    }
    current = archiver;
    replace(state, view(archiver));
    // The controls are drawn again only when what they offer changes, so a form being filled in survives the refresh.
    const offer = !mayRun ? "none" : archiver?.running ? (archiver.phase === "stopping" ? "stopping" : "stop") : "start";
    if (offer !== shown) {
      shown = offer;
      replace(controls, offer === "stop" ? stopButton() : offer === "start" ? startForm(archiver) : null);
    }
  }

  function stopButton(): HTMLElement {
    const button = h("button", { type: "button", class: "stop-archiver danger" }, "Stop archiving");
    button.addEventListener("click", async () => {
      button.disabled = true;
      replace(problem);
      try {
        await api("DELETE", `/v1/plans/${encodeURIComponent(plan.id)}/binlog-archiver`);
        ctx.notify(`The binary log archiver of ${plan.name} is stopping after a last store of what it streamed.`, "info");
        await load();
      } catch (err) {
        replace(problem, problemText(err));
        button.disabled = false;
      }
    });
    return h("div", { class: "actions" }, button);
  }

  function startForm(previous: BinlogArchiver | undefined): HTMLElement {
    const p = `archiver-${plan.id}`;
    const spool = h("input", { id: `${p}-spool`, class: "archiver-spool", size: 50, required: true, maxlength: 4096, spellcheck: "false", value: previous?.spoolDir ?? "", placeholder: "/var/lib/cairn/restores/db1-binlog-spool" });
    const interval = h("input", { id: `${p}-interval`, class: "archiver-interval", type: "number", min: 1, max: 60, step: 1, required: true, value: previous?.intervalSeconds ?? 5 });
    const submit = h("button", { type: "submit" }, "Start archiving");
    const form = h(
      "form",
      {
        class: "archiver-form inline-form",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          replace(problem);
          submit.disabled = true;
          try {
            await api("POST", `/v1/plans/${encodeURIComponent(plan.id)}/binlog-archiver`, { spoolDir: spool.value.trim(), intervalSeconds: Number(interval.value) });
            ctx.notify(`The binary log archiver of ${plan.name} is starting.`, "info");
            await load();
          } catch (err) {
            replace(problem, problemText(err));
          } finally {
            submit.disabled = false;
          }
        },
      },
      field("Spool directory on the worker (under the restore roots)", spool),
      field("Store every (seconds)", interval),
      submit,
    );
    return form;
  }

  await load();
  ctx.every(5000, () => (current?.running ? load() : undefined));
}

function view(a: BinlogArchiver | undefined): Child {
  if (!a) {
    return h("p", { class: "empty archiver-none" }, "Not running: the binary logs are archived only when the plan runs (with binlogs: true). Started, the archiver streams the server's log and stores it every few seconds, so point-in-time recovery reaches seconds ago.");
  }
  const position = (file?: string, pos?: number) => (file ? `${file}${pos !== undefined ? `:${pos}` : ""}` : "–");
  const measured = a.lagBytes !== undefined || a.lagSeconds !== undefined;
  const lag = !measured ? "lag not measured yet" : !a.lagBytes && !a.lagSeconds ? "none: the repository holds all the server wrote" : `behind by ${bytes(a.lagBytes ?? 0)}, ${duration(a.lagSeconds ?? 0)}`;
  const badge = a.phase === "streaming" ? "completed" : a.phase === "stopped" ? "cancelled" : a.phase === "reconnecting" ? "failed" : "running";
  const facts: [string, Child][] = [
    ["Phase", h("span", { class: `badge status-${badge} archiver-phase`, "data-phase": a.phase }, a.phase)],
    ["Server writes", `${position(a.serverFile, a.serverPosition)}${a.server ? ` on ${a.server}` : ""}`],
    ["Archived up to", h("span", { class: "mono archiver-archived" }, position(a.archivedFile, a.archivedPosition))],
    ["Recoverable through", a.archivedThrough ? `${time(a.archivedThrough)}` : "–"],
    ["Lag", h("strong", { class: "archiver-lag" }, a.running ? lag : "–")],
    ["Logs archived", `${a.logsArchived} whole since ${time(a.startedAt)}; stored every ${a.intervalSeconds} s; ${a.reconnects} reconnect${a.reconnects === 1 ? "" : "s"}`],
    ["Spool", h("span", { class: "mono" }, a.spoolDir)],
    ["Checked", a.lastCheckedAt ? ago(a.lastCheckedAt) : "–"],
  ];
  return [
    h("dl", { class: "facts archiver", "data-phase": a.phase }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    a.error ? h("p", { class: "problem archiver-error" }, a.error) : null,
    a.events.length ? h("details", {}, h("summary", {}, `Events (${a.events.length})`), h("ul", {}, a.events.slice(-10).map((e) => h("li", {}, e)))) : null,
  ];
}

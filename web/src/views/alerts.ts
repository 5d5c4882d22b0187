import { api } from "../api.js";
import { h, replace } from "../dom.js";
import { ago, time } from "../format.js";
import { field, select } from "../form.js";
import type { Alert, Plan } from "../types.js";
import { can, problemText, section, table, type PageContext } from "../ui.js";

const STATES: [string, string][] = [
  ["open", "open"],
  ["acknowledged", "acknowledged"],
  ["resolved", "resolved"],
  ["", "any state"],
];

/** Plan names for alert rows; a role that may not read plans (auditor) sees ids. */
async function planNames(ctx: PageContext): Promise<(id: string | null) => string> {
  const plans = can(ctx.session, "plans:read") ? await api<{ plans: Plan[] }>("GET", "/v1/plans?limit=500").then((r) => r.plans, () => [] as Plan[]) : [];
  return (id) => (id ? (plans.find((p) => p.id === id)?.name ?? id) : "–");
}

/** Alerts, open ones first by default, newest first; an operator or admin acknowledges (someone is on it: it stays until its condition clears). */
export async function alertsPage(root: HTMLElement, ctx: PageContext): Promise<void> {
  const state = select("alert-state", STATES, "open");
  const list = h("section", { id: "alerts" });
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Alerts"), field("State", state)), list);
  const name = await planNames(ctx);
  const mayAck = can(ctx.session, "alerts:ack");
  async function load(): Promise<void> {
    await section(list, async () => {
      const { alerts } = await api<{ alerts: Alert[] }>("GET", `/v1/alerts?limit=200${state.value ? `&state=${state.value}` : ""}`);
      const newest = [...alerts].reverse();
      if (!newest.length) return h("p", { class: "empty" }, state.value === "open" ? "No open alert." : "No alert.");
      return table(
        ["Severity", "Alert", "Plan", "Opened", "Seen", "State", ""],
        newest.map((a) => [
          h("span", { class: `badge severity-${a.severity}` }, a.severity),
          h("div", { class: "alert-text" }, h("strong", {}, a.title), h("br", {}), h("span", { class: "hint" }, a.detail)),
          a.planId ? (can(ctx.session, "plans:read") ? h("a", { href: `#/plans/${encodeURIComponent(a.planId)}` }, name(a.planId)) : name(a.planId)) : "–",
          h("span", { title: time(a.openedAt) }, ago(a.openedAt)),
          `${a.occurrences}×, last ${ago(a.lastSeenAt)}`,
          h(
            "span",
            { class: `alert-state state-${a.state}` },
            a.state,
            a.state === "acknowledged" && a.acknowledgedBy ? h("span", { class: "hint" }, ` by ${a.acknowledgedBy}`) : null,
            a.state === "resolved" && a.resolution ? h("span", { class: "hint" }, ` — ${a.resolution}`) : null,
          ),
          mayAck && a.state === "open"
            ? h(
                "button",
                {
                  type: "button",
                  class: "ack-alert",
                  "data-alert": a.id,
                  "aria-label": `Acknowledge: ${a.title}`,
                  onclick: async (e: Event) => {
                    const button = e.currentTarget as HTMLButtonElement;
                    button.disabled = true;
                    try {
                      await api("POST", `/v1/alerts/${encodeURIComponent(a.id)}/ack`);
                      ctx.notify(`Acknowledged: ${a.title}. It stays until its condition clears.`, "info");
                      await load();
                    } catch (err) {
                      ctx.notify(problemText(err));
                      button.disabled = false;
                    }
                  },
                },
                "Acknowledge",
              )
            : "",
        ]),
        { "aria-label": "Alerts, newest first" },
      );
    });
  }
  state.addEventListener("change", () => void load());
  await load();
  ctx.every(60_000, load);
}

import { api, hasRoute } from "../api.js";
import { h, type Child } from "../dom.js";
import { ago, bytes, duration } from "../format.js";
import type { Plan, Standby } from "../types.js";
import { section } from "../ui.js";

/** A physical PostgreSQL plan's warm standby (GET /v1/standbys): its phase and replay lag, or that it has none. */
export async function standbyPart(el: HTMLElement, plan: Plan): Promise<void> {
  if (!(await hasRoute("GET /v1/standbys"))) {
    el.hidden = true;
    return;
  }
  await section(el, async () => {
    const standby = (await api<{ standbys: Standby[] }>("GET", "/v1/standbys")).standbys.find((s) => s.planId === plan.id);
    const parts: Child[] = [h("h3", {}, "Standby")];
    if (!standby) parts.push(h("p", { class: "empty standby-none" }, "No warm standby (an operator starts one with POST /v1/standbys)."));
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
    return parts;
  });
}

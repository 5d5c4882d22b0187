import { api } from "../api.js";
import { h, replace, type Child } from "../dom.js";
import { ago, time } from "../format.js";
import type { AuditEvent, AuditVerification, ComplianceReport, SecurityEvent, Token } from "../types.js";
import { field, inlineForm, isoOf, select } from "../form.js";
import { actionButton, can, problemText, section, table, type PageContext } from "../ui.js";

export const SECURITY_PERMISSIONS = ["tokens:manage", "audit:read", "security:read", "compliance:read"];
const ROLES = ["viewer", "operator", "admin", "auditor"];
const OUTCOMES = ["attempted", "succeeded", "failed", "denied"];
const EVENT_KINDS = ["auth-lockout", "restore-volume", "download-volume", "read-volume"];
const FRAMEWORKS: [string, string][] = [
  ["soc2", "SOC 2"],
  ["iso27001", "ISO 27001"],
  ["hipaa", "HIPAA"],
  ["gdpr", "GDPR"],
];

/** Tokens, the audit log, security events and compliance reports: each part only for a role that may read it. */
export async function securityPage(root: HTMLElement, ctx: PageContext): Promise<void> {
  const parts: [string, string, string, (el: HTMLElement) => Promise<void>][] = [
    ["tokens:manage", "tokens", "API tokens", (el) => tokensPart(el, ctx)],
    ["audit:read", "audit", "Audit log", (el) => auditPart(el, ctx)],
    ["security:read", "security-events", "Security events", (el) => eventsPart(el)],
    ["compliance:read", "compliance", "Compliance", (el) => compliancePart(el)],
  ];
  const shown = parts.filter(([permission]) => can(ctx.session, permission));
  const contents = h("nav", { class: "in-page", "aria-label": "On this page" }, shown.map(([, id, title]) => h("a", { href: `#/security`, "data-target": id, onclick: (e: Event) => jump(e, id) }, title)));
  const sections = shown.map(([, id, title]) => h("section", { id, "aria-labelledby": `${id}-title` }, h("h2", { id: `${id}-title`, tabindex: "-1" }, title), h("div", { class: "part" }, h("p", { class: "loading" }, "Loading…"))));
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Security")), contents, sections);
  await Promise.all(shown.map(([, , , load], i) => load(sections[i].querySelector(".part") as HTMLElement)));
}

/** In-page links without changing the hash route: focus the section's heading (keyboard users land there). */
function jump(e: Event, id: string): void {
  e.preventDefault();
  const heading = document.getElementById(`${id}-title`);
  heading?.scrollIntoView();
  heading?.focus();
}

async function tokensPart(el: HTMLElement, ctx: PageContext): Promise<void> {
  const list = h("div", { id: "token-list" });
  const created = h("div", { id: "token-created", "aria-live": "polite" });
  const name = h("input", { id: "token-name", name: "name", required: true, maxlength: 100, autocomplete: "off" });
  const role = select("token-role", ROLES.map((r) => [r, r]), "viewer");
  const expires = h("input", { id: "token-expires", name: "expiresAt", type: "datetime-local" });
  const problem = h("p", { class: "problem", role: "alert" });
  const form = inlineForm(
    { id: "token-form" },
    async () => {
      replace(problem);
      try {
        const expiresAt = isoOf(expires.value);
        const answer = await api<{ id: string; token: string }>("POST", "/v1/tokens", { name: name.value.trim(), role: role.value, ...(expiresAt ? { expiresAt } : {}) });
        const secret = h("input", { id: "new-token", class: "mono", readonly: true, value: answer.token, "aria-label": `The new token ${name.value.trim()}`, size: 50 });
        replace(
          created,
          h(
            "div",
            { class: "once" },
            h("p", {}, h("strong", {}, "Copy this token now: it is shown this once. "), "Cairn keeps only its hash; a lost token is revoked and replaced."),
            secret,
            " ",
            h("button", { type: "button", class: "link", onclick: () => replace(created) }, "I copied it, hide it"),
          ),
        );
        secret.focus();
        secret.select();
        form.reset();
        await load();
      } catch (err) {
        replace(problem, problemText(err));
      }
    },
    field("Name", name),
    field("Role", role),
    field("Expires (optional)", expires),
    h("button", { type: "submit" }, "Create token"),
    problem,
  );
  replace(el, form, created, list);

  async function load(): Promise<void> {
    await section(list, async () => {
      const tokens: Token[] = [];
      let cursor: string | null = null;
      do {
        const page: { tokens: Token[]; nextCursor: string | null } = await api("GET", `/v1/tokens?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
        tokens.push(...page.tokens);
        cursor = page.nextCursor;
      } while (cursor && tokens.length < 2000);
      const scope = (t: Token) => (t.scope ? [t.scope.planIds?.length ? `plans ${t.scope.planIds.join(", ")}` : "", t.scope.repositoryIds?.length ? `repositories ${t.scope.repositoryIds.join(", ")}` : ""].filter(Boolean).join("; ") : "all");
      return table(
        ["Name", "Role", "Scope", "Expires", "Last used", "Created", ""],
        tokens
          .slice()
          .reverse()
          .map((t) => [
            h("span", { class: "token-name" }, t.name, " ", h("span", { class: "mono hint" }, t.id)),
            t.role,
            scope(t),
            t.expiresAt ? h("span", { class: Date.parse(t.expiresAt) < Date.now() ? "warn" : "" }, time(t.expiresAt)) : "never",
            t.lastUsedAt ? h("span", { title: time(t.lastUsedAt) }, ago(t.lastUsedAt)) : "never",
            h("span", { title: time(t.createdAt) }, ago(t.createdAt)),
            t.revokedAt
              ? h("span", { class: "hint" }, `revoked ${ago(t.revokedAt)}`)
              : t.id === ctx.session.tokenId
                ? h("span", { class: "hint", title: "Revoke it from another admin token; signing out ends this session only" }, "this session's token")
                : actionButton(ctx.session, "tokens:manage", "Revoke", async (button) => {
                    if (!confirm(`Revoke the token "${t.name}"? Every client using it is refused from its next request on.`)) return;
                    button.disabled = true;
                    try {
                      await api("DELETE", `/v1/tokens/${encodeURIComponent(t.id)}`);
                      ctx.notify(`Token "${t.name}" revoked.`, "info");
                      await load();
                    } catch (err) {
                      ctx.notify(problemText(err));
                      button.disabled = false;
                    }
                  }, { class: "revoke-token", "data-token": t.name, "aria-label": `Revoke ${t.name}` }),
          ]),
        { "aria-label": "API tokens", class: "cards-on-phone" },
      );
    });
  }
  await load();
}

async function auditPart(el: HTMLElement, ctx: PageContext): Promise<void> {
  const actor = h("input", { id: "audit-actor", name: "actor", placeholder: "token name or id", autocomplete: "off" });
  const action = h("input", { id: "audit-action", name: "action", placeholder: "e.g. createRestore", autocomplete: "off" });
  const resource = h("input", { id: "audit-resource", name: "resource", placeholder: "e.g. plans/ID", autocomplete: "off" });
  const outcome = select("audit-outcome", [["", "any"], ...OUTCOMES.map((o): [string, string] => [o, o])]);
  const since = h("input", { id: "audit-since", name: "since", type: "datetime-local" });
  const until = h("input", { id: "audit-until", name: "until", type: "datetime-local" });
  const verdict = h("div", { id: "audit-verdict", "aria-live": "polite" });
  const rows = h("div", { id: "audit-events" });
  const verify = actionButton(ctx.session, "audit:verify", "Verify chain", async (button) => {
    button.disabled = true;
    replace(verdict, h("p", { class: "loading" }, "Checking every event and the signed checkpoints…"));
    try {
      const v = await api<AuditVerification>("POST", "/v1/audit/verify");
      replace(
        verdict,
        h(
          "p",
          { class: v.ok ? "info" : "problem", role: v.ok ? "status" : "alert" },
          v.ok
            ? `Chain intact: ${v.events} events, compared with ${v.checkpoints} signed checkpoint${v.checkpoints === 1 ? "" : "s"}${v.lastCheckpointSeq ? ` (last at event ${v.lastCheckpointSeq})` : ""}.`
            : `Chain broken at event ${v.firstBrokenSeq ?? "?"}: ${v.reason ?? "no reason given"}. Run cairn audit verify on the server and compare with the checkpoints.`,
        ),
      );
    } catch (err) {
      replace(verdict, h("p", { class: "problem", role: "alert" }, problemText(err)));
    } finally {
      button.disabled = false;
    }
  }, { id: "audit-verify" });

  let cursor: string | null = null;
  let shown: AuditEvent[] = [];
  const more = h("button", { type: "button", id: "audit-more", onclick: () => void load(false) }, "Older events");

  const query = () => {
    const q = new URLSearchParams({ limit: "50" });
    const set = (k: string, v: string | undefined) => v && q.set(k, v);
    set("actor", actor.value.trim());
    set("action", action.value.trim());
    set("resource", resource.value.trim());
    set("outcome", outcome.value);
    set("since", isoOf(since.value));
    set("until", isoOf(until.value));
    if (cursor) q.set("cursor", cursor);
    return q.toString();
  };

  async function load(fresh: boolean): Promise<void> {
    if (fresh) {
      cursor = null;
      shown = [];
    }
    await section(rows, async () => {
      const page = await api<{ events: AuditEvent[]; nextCursor: string | null }>("GET", `/v1/audit?${query()}`);
      shown = [...shown, ...page.events];
      cursor = page.nextCursor;
      const body: Child[] = [
        table(
          ["#", "Time", "Actor", "Action", "Resource", "Outcome", "Source", "Detail"],
          shown.map((e) => [
            String(e.seq),
            h("span", { title: e.time }, time(e.time)),
            e.actorName ? `${e.actorName}${e.role ? ` (${e.role})` : ""}` : h("span", { class: "hint" }, "no token"),
            h("span", { class: "mono" }, e.action),
            h("span", { class: "mono" }, e.resource),
            h("span", { class: `badge outcome-${e.outcome}` }, e.outcome),
            e.source,
            typeof e.details.detail === "string" ? e.details.detail : typeof e.details.status === "number" ? `HTTP ${e.details.status}` : "",
          ]),
          { "aria-label": "Audit events, newest first", class: "cards-on-phone" },
        ),
      ];
      if (cursor) body.push(h("p", {}, more));
      return body;
    });
  }

  const filters = inlineForm(
    { id: "audit-filters" },
    () => load(true),
    field("Actor", actor),
    field("Action", action),
    field("Resource", resource),
    field("Outcome", outcome),
    field("Since", since),
    field("Until", until),
    h("button", { type: "submit" }, "Filter"),
  );
  replace(el, h("div", { class: "actions" }, verify), verdict, filters, rows);
  await load(true);
}

async function eventsPart(el: HTMLElement): Promise<void> {
  const kind = select("event-kind", [["", "any"], ...EVENT_KINDS.map((k): [string, string] => [k, k])]);
  const rows = h("div", { id: "security-event-list" });
  const load = () =>
    section(rows, async () => {
      const { events } = await api<{ events: SecurityEvent[] }>("GET", `/v1/security/events?limit=100${kind.value ? `&kind=${encodeURIComponent(kind.value)}` : ""}`);
      if (!events.length) return h("p", { class: "empty" }, "No security events: no lockouts, no token restoring, downloading or reading far more than usual.");
      return table(
        ["Time", "Kind", "Token", "Source", "Blocked", "Details"],
        events.map((e) => [
          h("span", { title: e.time }, time(e.time)),
          e.kind,
          e.tokenName ?? h("span", { class: "hint" }, "none"),
          e.source,
          e.blocked ? h("span", { class: "problem" }, "yes") : "no",
          Object.entries(e.details)
            .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : String(v)}`)
            .join(", "),
        ]),
        { "aria-label": "Security events, newest first", class: "cards-on-phone" },
      );
    });
  replace(
    el,
    inlineForm(
      {},
      () => load(),
      field("Kind", kind),
      h("button", { type: "submit" }, "Show"),
    ),
    rows,
  );
  await load();
}

async function compliancePart(el: HTMLElement): Promise<void> {
  const framework = select("compliance-framework", FRAMEWORKS, "soc2");
  const report = h("div", { id: "compliance-report" });
  const printable = h("a", { id: "compliance-html", target: "_blank", rel: "noopener" }, "Printable report");
  const load = () => {
    printable.setAttribute("href", `/v1/compliance/${encodeURIComponent(framework.value)}?format=html`);
    return section(report, async () => {
      replace(report, h("p", { class: "loading" }, "Gathering evidence (the workers describe each repository)…"));
      const r = await api<ComplianceReport>("GET", `/v1/compliance/${encodeURIComponent(framework.value)}`);
      return [
        h("p", {}, h("strong", { class: r.status === "COMPLIANT" ? "info" : "problem", id: "compliance-status" }, r.status), ` · ${r.name} · generated ${time(r.generatedAt)}`),
        r.failing.length ? h("h3", {}, "To change") : null,
        r.failing.length ? h("ul", { class: "remediations" }, r.failing.map((f) => h("li", {}, h("strong", {}, `${f.control} · ${f.check}: `), f.remediation))) : null,
        table(
          ["Control", "Status", "Checks"],
          r.controls.map((c) => [
            `${c.id} — ${c.title}`,
            h("span", { class: c.status === "PASS" ? "info" : "problem" }, c.status),
            h(
              "ul",
              { class: "checks" },
              c.checks.map((check) => h("li", {}, h("span", { class: check.passed ? "info" : "problem" }, check.passed ? "✔ " : "✘ "), check.title, check.evidence.length ? h("details", {}, h("summary", {}, "evidence"), h("ul", {}, check.evidence.map((e) => h("li", {}, e)))) : null)),
            ),
          ]),
          { "aria-label": `${r.name} controls` },
        ),
      ];
    });
  };
  replace(
    el,
    inlineForm(
      {},
      () => load(),
      field("Framework", framework),
      h("button", { type: "submit" }, "Check"),
      printable,
    ),
    report,
  );
  await load();
}

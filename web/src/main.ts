import { api, ApiProblem, onUnauthorized } from "./api.js";
import { h, replace } from "./dom.js";
import type { Session } from "./types.js";
import { can, type PageContext } from "./ui.js";
import { alertsPage } from "./views/alerts.js";
import { analyticsPage } from "./views/analytics.js";
import { databasesPage } from "./views/databases.js";
import { planEditorPage } from "./views/plan-editor.js";
import { jobPage, jobsPage } from "./views/jobs.js";
import { overviewPage } from "./views/overview.js";
import { planPage, plansPage } from "./views/plans.js";
import { repositoriesPage } from "./views/repositories.js";
import { SECURITY_PERMISSIONS, securityPage } from "./views/security.js";
import { snapshotsPage } from "./views/snapshots.js";

/** The dashboard: hash routes (#/jobs/ID), so the API serves one page and nothing of it lands in a server log but "/". */
type Page = (root: HTMLElement, ctx: PageContext, param?: string) => Promise<void> | void;

/**
 * Each page names the permissions that let a role read it (any of them): a role holding none is not offered the page.
 * A page without a nav entry names the one it belongs `under` (highlighted while it is open).
 */
const PAGES: { path: RegExp; nav?: string; under?: string; title: string; page: Page; needs: string[] }[] = [
  { path: /^\/?$/, nav: "#/", title: "Overview", page: overviewPage, needs: ["plans:read"] },
  { path: /^\/jobs$/, nav: "#/jobs", title: "Jobs", page: jobsPage, needs: ["jobs:read"] },
  { path: /^\/jobs\/([^/]+)$/, under: "#/jobs", title: "Job", page: jobPage, needs: ["jobs:read"] },
  { path: /^\/plans$/, nav: "#/plans", title: "Plans", page: plansPage, needs: ["plans:read"] },
  { path: /^\/plans\/new$/, under: "#/plans", title: "New plan", page: (root, ctx) => planEditorPage(root, ctx), needs: ["plans:write"] },
  { path: /^\/plans\/([^/]+)\/edit$/, under: "#/plans", title: "Edit plan", page: planEditorPage, needs: ["plans:write"] },
  { path: /^\/plans\/([^/]+)$/, under: "#/plans", title: "Plan", page: planPage, needs: ["plans:read"] },
  { path: /^\/databases$/, nav: "#/databases", title: "Databases", page: databasesPage, needs: ["plans:read"] },
  { path: /^\/alerts$/, nav: "#/alerts", title: "Alerts", page: alertsPage, needs: ["alerts:read"] },
  { path: /^\/repositories$/, nav: "#/repositories", title: "Repositories", page: repositoriesPage, needs: ["repositories:read"] },
  { path: /^\/snapshots(?:\/([^/]+))?$/, nav: "#/snapshots", title: "Snapshots", page: snapshotsPage, needs: ["snapshots:read"] },
  { path: /^\/analytics(?:\/([^/]+))?$/, nav: "#/analytics", title: "Analytics", page: analyticsPage, needs: ["analytics:read"] },
  { path: /^\/security$/, nav: "#/security", title: "Security", page: securityPage, needs: SECURITY_PERMISSIONS },
];

const app = document.getElementById("app")!;
let session: Session | undefined;
let stopPage: () => void = () => undefined;

onUnauthorized((detail) => signIn(`Signed out: ${detail}`));

function signIn(message?: string): void {
  stopPage();
  session = undefined;
  document.title = "Sign in · Cairn";
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false", placeholder: "cairn_…" });
  const note = h("p", { class: message ? "problem" : "hint", role: "alert", id: "signin-message" }, message ?? "");
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: (e: Event) => {
        e.preventDefault();
        void start(input, note);
      },
    },
    h("h1", {}, "Cairn"),
    h("label", { for: "token" }, "API token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
    note,
    h(
      "p",
      { class: "hint" },
      "The token is exchanged for a session cookie that scripts cannot read; the browser keeps no copy of the token. The session ends after 30 minutes unused, after 8 hours, or when you sign out. An admin creates tokens on the Security page or with POST /v1/tokens; the server prints its first admin token when it starts.",
    ),
  );
  replace(app, h("main", { class: "signin-page" }, form));
  input.focus();
}

async function start(input: HTMLInputElement, note: HTMLElement): Promise<void> {
  const value = input.value.trim();
  if (!value) return;
  try {
    session = await api<Session>("POST", "/v1/session", { token: value });
  } catch (err) {
    replace(note, (err as Error).message);
    note.className = "problem";
    return;
  } finally {
    input.value = "";
  }
  if (!location.hash || location.hash === "#") location.hash = "#/";
  render();
}

async function signOut(): Promise<void> {
  stopPage();
  // The session ends on the server; a 401 (already ended) or an unreachable API leaves the sign-in page all the same.
  await api("DELETE", "/v1/session").catch(() => undefined);
  signIn("Signed out.");
}

function render(): void {
  stopPage();
  if (!session) return signIn();
  const route = location.hash.replace(/^#/, "").split("?")[0];
  const allowed = PAGES.filter((p) => p.needs.some((permission) => can(session!, permission)));
  const match = PAGES.map((p) => ({ p, m: p.path.exec(route) })).find((x) => x.m);
  // The overview is where sign-in lands; a role that may not read it (auditor) lands on its first page instead.
  if (match && !allowed.includes(match.p) && (route === "" || route === "/") && allowed.some((p) => p.nav)) {
    location.replace(allowed.find((p) => p.nav)!.nav!);
    return;
  }
  const notices = h("div", { class: "notices", "aria-live": "polite" });
  const root = h("main", { id: "page" });
  const nav = h(
    "nav",
    { "aria-label": "Sections" },
    allowed.filter((p) => p.nav).map((p) => h("a", { href: p.nav!, ...(match?.p.nav === p.nav || match?.p.under === p.nav ? { "aria-current": "page" } : {}) }, p.title)),
  );
  const who = h("span", { class: "who", id: "who" }, `${session.name} · ${session.role}`);
  const signOutButton = h("button", { type: "button", class: "link", id: "sign-out", onclick: () => void signOut() }, "Sign out");
  replace(app, h("header", {}, h("a", { href: "#/", class: "brand" }, "Cairn"), nav, h("div", { class: "account" }, who, signOutButton)), notices, root);

  const timers: number[] = [];
  let left = false;
  stopPage = () => {
    left = true;
    timers.forEach((t) => clearInterval(t));
  };
  const ctx: PageContext = {
    session,
    notify(message, kind = "error") {
      notices.append(h("p", { class: kind === "error" ? "problem" : "info", role: kind === "error" ? "alert" : "status" }, message, " ", h("button", { type: "button", class: "link", onclick: (e: Event) => (e.target as HTMLElement).parentElement?.remove() }, "dismiss")));
    },
    every(ms, fn) {
      let busy = false;
      timers.push(
        window.setInterval(() => {
          if (left || busy || document.hidden) return;
          busy = true;
          Promise.resolve(fn()).finally(() => (busy = false));
        }, ms),
      );
    },
  };
  if (!match) {
    replace(root, h("h1", {}, "Not found"), h("p", {}, "This page does not exist. ", h("a", { href: "#/" }, "Back to the overview")));
    return;
  }
  document.title = `${match.p.title} · Cairn`;
  if (!allowed.includes(match.p)) {
    replace(root, h("h1", {}, match.p.title), h("p", { class: "problem", role: "alert" }, `The role ${session.role} may not see this page: it needs ${match.p.needs.join(" or ")}. Ask an admin for a token with another role.`));
    return;
  }
  void match.p.page(root, ctx, match.m![1] ? decodeURIComponent(match.m![1]) : undefined);
}

window.addEventListener("hashchange", render);

// A session cookie from before (this tab or another) may still be good: ask who it is; no session shows the sign-in form.
fetch("/v1/session", { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" }).then(
  async (res) => {
    if (res.status === 401) return signIn();
    if (!res.ok) return signIn(`The API answered ${res.status} ${res.statusText}; sign in again`);
    session = (await res.json()) as Session;
    render();
  },
  (err: Error) => signIn(`The Cairn API did not answer (${err.message}); check that it is running, then reload`),
);

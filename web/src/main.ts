import { api, ApiProblem, hasRoute, onUnauthorized, token } from "./api.js";
import { h, replace } from "./dom.js";
import type { Session } from "./types.js";
import type { PageContext } from "./ui.js";
import { jobPage, jobsPage } from "./views/jobs.js";
import { overviewPage } from "./views/overview.js";
import { plansPage } from "./views/plans.js";
import { snapshotsPage } from "./views/snapshots.js";

/** The dashboard: hash routes (#/jobs/ID), so the API serves one page and nothing of it lands in a server log but "/". */
type Page = (root: HTMLElement, ctx: PageContext, param?: string) => Promise<void> | void;

const PAGES: { path: RegExp; nav?: string; title: string; page: Page }[] = [
  { path: /^\/?$/, nav: "#/", title: "Overview", page: overviewPage },
  { path: /^\/jobs$/, nav: "#/jobs", title: "Jobs", page: jobsPage },
  { path: /^\/jobs\/([^/]+)$/, title: "Job", page: jobPage },
  { path: /^\/plans$/, nav: "#/plans", title: "Plans", page: plansPage },
  { path: /^\/snapshots(?:\/([^/]+))?$/, nav: "#/snapshots", title: "Snapshots", page: snapshotsPage },
];

const app = document.getElementById("app")!;
let session: Session | undefined;
let stopPage: () => void = () => undefined;

onUnauthorized((detail) => signIn(`Signed out: ${detail}`));

function signIn(message?: string): void {
  stopPage();
  token.clear();
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
        void start(input.value.trim(), note);
      },
    },
    h("h1", {}, "Cairn"),
    h("label", { for: "token" }, "API token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
    note,
    h("p", { class: "hint" }, "The token stays in this tab only (session storage) and is sent as a bearer token to the API; closing the tab or signing out forgets it. An admin creates tokens with POST /v1/tokens; the server prints its first admin token when it starts."),
  );
  replace(app, h("main", { class: "signin-page" }, form));
  input.focus();
}

async function start(value: string, note: HTMLElement): Promise<void> {
  if (!value) return;
  token.set(value);
  try {
    session = await loadSession();
  } catch (err) {
    if (err instanceof ApiProblem && err.status === 401) return; // onUnauthorized showed the form again with the reason
    token.clear();
    replace(note, (err as Error).message);
    note.className = "problem";
    return;
  }
  if (!location.hash || location.hash === "#") location.hash = "#/";
  render();
}

/** Who the token is; a server without GET /v1/session is asked for plans to prove the token, and every action is offered. */
async function loadSession(): Promise<Session> {
  if (await hasRoute("GET /v1/session")) return api<Session>("GET", "/v1/session");
  await api("GET", "/v1/plans?limit=1");
  return { tokenId: "", name: "token", role: "unknown role", permissions: null, expiresAt: null };
}

function render(): void {
  stopPage();
  if (!session) return signIn();
  const route = location.hash.replace(/^#/, "").split("?")[0];
  const match = PAGES.map((p) => ({ p, m: p.path.exec(route) })).find((x) => x.m);
  const notices = h("div", { class: "notices", "aria-live": "polite" });
  const root = h("main", { id: "page" });
  const nav = h(
    "nav",
    { "aria-label": "Sections" },
    PAGES.filter((p) => p.nav).map((p) => h("a", { href: p.nav!, ...(match?.p.nav === p.nav || (match?.p.title === "Job" && p.nav === "#/jobs") ? { "aria-current": "page" } : {}) }, p.title)),
  );
  const who = h("span", { class: "who", id: "who" }, `${session.name} · ${session.role}`);
  const signOut = h("button", { type: "button", class: "link", onclick: () => signIn("Signed out.") }, "Sign out");
  replace(app, h("header", {}, h("a", { href: "#/", class: "brand" }, "Cairn"), nav, h("div", { class: "account" }, who, signOut)), notices, root);

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
  void match.p.page(root, ctx, match.m![1] ? decodeURIComponent(match.m![1]) : undefined);
}

window.addEventListener("hashchange", render);

if (token.get()) {
  loadSession().then(
    (s) => {
      session = s;
      render();
    },
    (err) => {
      if (!(err instanceof ApiProblem && err.status === 401)) signIn((err as Error).message);
    },
  );
} else signIn();

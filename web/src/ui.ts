import { ApiProblem } from "./api.js";
import { h, replace, type Child } from "./dom.js";
import type { Session } from "./types.js";

/** What every page gets: who is signed in, a place for messages, and a way to stop its timers. */
export interface PageContext {
  session: Session;
  /** Shows an error (the API's sentence) or a confirmation above the page. */
  notify(message: string, kind?: "error" | "info"): void;
  /** Runs `fn` every `ms` while the tab is visible, until the page is left. */
  every(ms: number, fn: () => Promise<void> | void): void;
}

/** Whether the signed-in role holds `permission` (GET /v1/session lists them); the API checks again. */
export function can(session: Session, permission: string): boolean {
  return session.permissions.includes(permission);
}

/**
 * A button for an action that needs `permission`: disabled, with the reason as its
 * title and visible text, when the role does not hold it. The API checks again.
 */
export function actionButton(session: Session, permission: string, label: string, onClick: (button: HTMLButtonElement) => void, attrs: Record<string, string> = {}): HTMLButtonElement {
  const allowed = can(session, permission);
  const button = h("button", {
    type: "button",
    ...attrs,
    disabled: !allowed,
    title: allowed ? label : `Needs the permission ${permission}, which the role ${session.role} does not hold`,
    onclick: () => onClick(button),
  }, label);
  return button;
}

/** A problem as the page shows it: the API's sentence, then each field it names. */
export function problemText(err: unknown): string {
  if (err instanceof ApiProblem) {
    const fields = err.errors.map((e) => `${e.path}: ${e.message}`);
    return [`${err.title}: ${err.detail}`, ...fields].join(" — ");
  }
  return (err as Error).message ?? String(err);
}

/** A page section that loads on its own and shows the API's refusal in place (a 403 for this role, a route this server lacks). */
export async function section(el: HTMLElement, load: () => Promise<Child>): Promise<void> {
  try {
    replace(el, await load());
  } catch (err) {
    if (err instanceof ApiProblem && err.status === 401) return;
    replace(el, h("p", { class: "problem", role: "alert" }, problemText(err)));
  }
}

/** A status as a coloured badge; `text` when the words differ from the status it is coloured as. */
export function statusBadge(status: string, text = status): HTMLElement {
  return h("span", { class: `badge status-${status}` }, text);
}

/**
 * A table that scrolls sideways when it is wider than the screen; with the class
 * cards-on-phone it turns into one card per row on a phone instead, each cell
 * under its column's name (data-label).
 */
export function table(headers: string[], rows: Child[][], attrs: Record<string, string> = {}): HTMLElement {
  if (rows.length === 0) return h("p", { class: "empty" }, "Nothing yet.");
  return h(
    "div",
    { class: "table-wrap" },
    h("table", attrs, h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c, i) => h("td", { "data-label": headers[i] ?? "" }, c)))))),
  );
}

export function missingRoute(route: string, what: string): HTMLElement {
  return h("p", { class: "problem" }, `This API has no ${route}, so ${what} cannot be shown here; a newer Cairn serves it.`);
}

/**
 * The dashboard's only way to the API: the same /v1 routes and permission checks
 * as every other client. Signing in exchanges the API token for a session cookie
 * (POST /v1/session; HttpOnly, so no script of the page can read it); the token
 * itself is kept nowhere in the browser. Every request carries X-Cairn-CSRF,
 * which the API wants on changes made with the cookie.
 */

export interface FieldError {
  in: string;
  path: string;
  message: string;
}

/** A problem+json answer (or a failure to reach the API), with the sentence the API wrote. */
export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    readonly errors: FieldError[] = [],
  ) {
    super(detail);
  }
}

let unauthorized: (detail: string) => void = () => undefined;

/** What to do when the API refuses the session (401): main.ts goes back to sign-in. */
export function onUnauthorized(handler: (detail: string) => void): void {
  unauthorized = handler;
}

/** Calls the API; answers the JSON body, or throws an ApiProblem (after handing a 401 to onUnauthorized). */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: { Accept: "application/json", "X-Cairn-CSRF": "1", ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiProblem(0, "API not reachable", `the Cairn API did not answer (${(err as Error).message}); check that it is running, then retry`);
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (res.ok) return parsed as T;
  const p = (parsed ?? {}) as { title?: string; detail?: string; errors?: FieldError[] };
  const problem = new ApiProblem(res.status, p.title ?? res.statusText, p.detail ?? `the API answered ${res.status} ${res.statusText}`, p.errors ?? []);
  if (res.status === 401 && !(method === "POST" && path === "/v1/session")) unauthorized(problem.detail);
  return Promise.reject(problem);
}

/** The routes this API serves ("GET /v1/jobs/{id}"), from its OpenAPI document, so pages for routes it lacks say so instead of failing. */
let routes: Promise<Set<string>> | undefined;
export function serverRoutes(): Promise<Set<string>> {
  routes ??= fetch("/openapi.json", { credentials: "omit" })
    .then((r) => (r.ok ? (r.json() as Promise<{ paths?: Record<string, Record<string, unknown>> }>) : { paths: {} }))
    .then((doc) => new Set(Object.entries(doc.paths ?? {}).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))))
    .catch(() => new Set<string>());
  return routes;
}

export async function hasRoute(route: string): Promise<boolean> {
  return (await serverRoutes()).has(route);
}

import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { authorize, type ScopeRef } from "./access.js";
import { watchActivity, type ActivityKind } from "./activity-watch.js";
import { auditAttempt } from "./audit.js";
import { validationHook } from "./errors.js";
import { PERMISSIONS, PUBLIC, type Permission, type RoutePermission } from "./permissions.js";

/** The route fields where a route declares who may call it (also shown in /openapi.json). */
export const PERMISSION_FIELD = "x-cairn-permission";
export const SCOPE_FIELD = "x-cairn-scope";
/**
 * Overrides whether a route's attempts and successes are audited (refusals always
 * are): true for a GET that hands out data (a download), false for a POST that
 * changes nothing (verifying the audit log). By default every method but GET is.
 */
export const AUDIT_FIELD = "x-cairn-audit";
/** Marks a route that hands out data ("restore" or "download") for the per-token volume watch; other GETs count as reads unless they only show status. */
export const ACTIVITY_FIELD = "x-cairn-activity";
/**
 * Tags of GET routes that only show the platform's state (job progress, plans,
 * queue, trends, standbys' lag, who am I): a dashboard or a monitor polls them all day, so they
 * are not counted by the read watch, which looks for a token reading far more of
 * what the repositories and the security records hold than usual.
 */
export const STATUS_TAGS: ReadonlySet<string> = new Set(["jobs", "plans", "session", "health", "metrics", "queue", "analytics", "alerts", "standbys"]);

/**
 * The access declaration every route spreads into its createRoute: the one
 * permission it needs (or PUBLIC), and where it names the plans, repositories or
 * jobs a scoped token is held to.
 */
export function access(permission: RoutePermission, ...scope: ScopeRef[]) {
  return { security: permission === PUBLIC ? [] : BEARER, [PERMISSION_FIELD]: permission, ...(scope.length ? { [SCOPE_FIELD]: scope } : {}) } as const;
}

/**
 * A router whose validation failures become problem+json with field errors, and
 * which refuses to register a route that declares no permission or no
 * operationId. On each guarded route, in order: the route is named for the
 * audit layer, the permission is checked, the input validated, and (for changes,
 * restores and downloads) the attempt written to the audit log before the handler acts.
 */
export function router(): OpenAPIHono {
  const r = new OpenAPIHono({ defaultHook: (result) => validationHook(result) });
  const register = r.openapi;
  r.openapi = ((route, handler, hook) => {
    const fields = route as Record<string, unknown>;
    const declared = fields[PERMISSION_FIELD] as RoutePermission | undefined;
    const where = `${route.method.toUpperCase()} ${route.path}`;
    if (!declared) throw new Error(`${where} declares no permission: spread access("<permission>") into its createRoute (api/permissions.ts lists them)`);
    if (!route.operationId) throw new Error(`${where} has no operationId: name it (the audit log records it as the action)`);
    if (declared === PUBLIC) return register(route, handler, hook);
    if (!(PERMISSIONS as readonly string[]).includes(declared)) throw new Error(`${where} declares the unknown permission ${declared}; add it to api/permissions.ts`);
    const audited = typeof fields[AUDIT_FIELD] === "boolean" ? (fields[AUDIT_FIELD] as boolean) : route.method !== "get";
    const named: MiddlewareHandler = async (c, next) => {
      c.set("auditedRoute", { operationId: route.operationId!, audited });
      await next();
    };
    const scope = (fields[SCOPE_FIELD] as ScopeRef[] | undefined) ?? [];
    const activity = (fields[ACTIVITY_FIELD] as ActivityKind | undefined) ?? (route.method === "get" && !route.tags?.some((t) => STATUS_TAGS.has(t)) ? "read" : undefined);
    const middleware = [named, authorize(declared as Permission, scope), ...(activity ? [watchActivity(activity)] : []), ...(route.middleware ? [route.middleware].flat() : [])];
    const refusals = route.request?.body ? problems(403, 413, 429) : problems(403, 429);
    const act = audited
      ? (async (c: Context, next: () => Promise<void>) => {
          await auditAttempt(c, validatedInput(c, route.request));
          return (handler as (c: Context, next: () => Promise<void>) => unknown)(c, next);
        }) as unknown as typeof handler
      : handler;
    return register({ ...route, middleware, responses: { ...refusals, ...route.responses } }, act, hook);
  }) as typeof r.openapi;
  return r;
}

/** The request's validated path, query and body, as the audit log records them. */
function validatedInput(c: Context, request: { params?: unknown; query?: unknown; body?: unknown } | undefined): Record<string, unknown> {
  const valid = (target: string) => (c.req as unknown as { valid(t: string): unknown }).valid(target);
  return {
    ...(request?.params ? { params: valid("param") } : {}),
    ...(request?.query ? { query: valid("query") } : {}),
    ...(request?.body ? { input: valid("json") } : {}),
  };
}

export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().openapi({ description: "What went wrong and what to do next." }),
    errors: z
      .array(z.object({ in: z.string(), path: z.string(), message: z.string() }))
      .optional()
      .openapi({ description: "One entry per invalid field (validation failures only)." }),
  })
  .openapi("Problem");

const PROBLEM_TEXT: Record<number, string> = {
  400: "The input is not valid; `errors` names each field.",
  401: "No bearer token, or one the server does not know, or one expired or revoked.",
  403: "The token's role lacks the route's permission (x-cairn-permission), or the resource is outside the token's scope.",
  404: "No such resource.",
  409: "The request conflicts with the current state.",
  413: "The request body is larger than 1 MiB.",
  415: "The body is not JSON.",
  422: "The input is well-formed but cannot be used (for example a wrong repository password).",
  429: "Too many failed authentications from this address or with this token; Retry-After says when to try again.",
  503: "Temporal or the catalog is not reachable.",
};

/** The error responses of a route, documented as problem+json. */
export function problems(...statuses: (keyof typeof PROBLEM_TEXT)[]) {
  return Object.fromEntries(
    [401, 503, ...statuses].map((s) => [s, { description: PROBLEM_TEXT[s], content: { "application/problem+json": { schema: Problem } } }]),
  ) as Record<number, { description: string; content: { "application/problem+json": { schema: typeof Problem } } }>;
}

/** A JSON response body in a route definition. */
export function json<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

/** A required JSON request body. */
export function jsonBody<T extends z.ZodType>(schema: T) {
  return { required: true, content: { "application/json": { schema } } };
}

/** Path parameter `id`. */
export const IdParam = z.object({ id: z.string().min(1).max(200).openapi({ param: { name: "id", in: "path" }, example: "3f9a1c2b7d4e5f60" }) });

/** A bearer token, or the dashboard's session cookie (either one). */
export const BEARER: Record<string, string[]>[] = [{ bearer: [] }, { session: [] }];

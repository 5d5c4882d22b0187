import { OpenAPIHono, z } from "@hono/zod-openapi";
import { authorize, type ScopeRef } from "./access.js";
import { validationHook } from "./errors.js";
import { PERMISSIONS, PUBLIC, type Permission, type RoutePermission } from "./permissions.js";

/** The route fields where a route declares who may call it (also shown in /openapi.json). */
export const PERMISSION_FIELD = "x-cairn-permission";
export const SCOPE_FIELD = "x-cairn-scope";

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
 * which refuses to register a route that declares no permission: each route's
 * permission check runs before its input is validated.
 */
export function router(): OpenAPIHono {
  const r = new OpenAPIHono({ defaultHook: (result) => validationHook(result) });
  const register = r.openapi;
  r.openapi = ((route, handler, hook) => {
    const declared = (route as Record<string, unknown>)[PERMISSION_FIELD] as RoutePermission | undefined;
    const where = `${route.method.toUpperCase()} ${route.path}`;
    if (!declared) throw new Error(`${where} declares no permission: spread access("<permission>") into its createRoute (api/permissions.ts lists them)`);
    if (declared === PUBLIC) return register(route, handler, hook);
    if (!(PERMISSIONS as readonly string[]).includes(declared)) throw new Error(`${where} declares the unknown permission ${declared}; add it to api/permissions.ts`);
    const scope = ((route as Record<string, unknown>)[SCOPE_FIELD] as ScopeRef[] | undefined) ?? [];
    const middleware = [authorize(declared as Permission, scope), ...(route.middleware ? [route.middleware].flat() : [])];
    const refusals = route.request?.body ? problems(403, 413, 429) : problems(403, 429);
    return register({ ...route, middleware, responses: { ...refusals, ...route.responses } }, handler, hook);
  }) as typeof r.openapi;
  return r;
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

export const BEARER = [{ bearer: [] }];

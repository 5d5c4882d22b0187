import { createRoute, z } from "@hono/zod-openapi";
import { access, json, router } from "../openapi.js";
import { ROLE_NAMES, ROLES } from "../permissions.js";

const Session = z
  .object({
    tokenId: z.string().openapi({ description: '"env" for the CAIRN_API_TOKEN admin token.' }),
    name: z.string(),
    role: z.enum(ROLE_NAMES),
    permissions: z.array(z.string()).openapi({ description: "What the role holds: each route's x-cairn-permission tells which one it needs." }),
    scope: z
      .object({ planIds: z.array(z.string()).optional(), repositoryIds: z.array(z.string()).optional() })
      .nullable()
      .openapi({ description: "The plans and repositories a scoped token is held to; null when it is not scoped." }),
    expiresAt: z.string().nullable(),
  })
  .openapi("Session");

const get = createRoute({
  method: "get",
  path: "/session",
  operationId: "getSession",
  summary: "Who the token is and what its role may do, so a client offers only what it may (the routes check again)",
  tags: ["session"],
  ...access("session:read"),
  responses: { 200: json(Session, "The calling token.") },
});

/** GET /v1/session: the caller's own token, role and permissions. */
export function sessionRoutes() {
  return router().openapi(get, (c) => {
    const p = c.get("principal");
    return c.json(
      {
        tokenId: p.tokenId,
        name: p.tokenName,
        role: p.role,
        permissions: [...ROLES[p.role]],
        scope: p.scope ? { ...(p.scope.planIds ? { planIds: p.scope.planIds } : {}), ...(p.scope.repositoryIds ? { repositoryIds: p.scope.repositoryIds } : {}) } : null,
        expiresAt: p.expiresAt ? p.expiresAt.toISOString() : null,
      },
      200,
    );
  });
}

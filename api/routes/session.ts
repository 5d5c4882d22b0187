import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ApiError } from "../errors.js";
import { access, json, jsonBody, problems, router } from "../openapi.js";
import { CSRF_HEADER, SESSION_COOKIE, sessionCookie, sessionIdOf, type SessionRecord } from "../sessions.js";
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
    expiresAt: z.string().nullable().openapi({ description: "When the token expires (null: never)." }),
    session: z
      .object({
        idleExpiresAt: z.string().openapi({ description: "When the session ends if no request uses it before (30 minutes after the last one)." }),
        expiresAt: z.string().openapi({ description: "When the session ends at the latest (8 hours after sign-in)." }),
      })
      .nullable()
      .openapi({ description: "The dashboard session the request came with; null for a bearer token." }),
  })
  .openapi("Session");

const SignIn = z.strictObject({ token: z.string().min(1).max(512).openapi({ description: "An API token; it is checked, and only a random session id goes back (in the cookie)." }) }).openapi("SignIn");

const get = createRoute({
  method: "get",
  path: "/session",
  operationId: "getSession",
  summary: "Who the token is and what its role may do, so a client offers only what it may (the routes check again)",
  tags: ["session"],
  ...access("session:read"),
  responses: { 200: json(Session, "The calling token.") },
});

const signIn = createRoute({
  method: "post",
  path: "/session",
  operationId: "signIn",
  summary: `Sign the dashboard in: exchanges the API token in the body for a session cookie (${SESSION_COOKIE}: HttpOnly, SameSite=Strict, path /, Secure over https; ends after 30 minutes unused or 8 hours). Other clients keep sending the bearer token`,
  description: `The token is checked like a bearer token (a wrong one counts towards the lockout). The cookie carries a random session id, never the token. Requests with the cookie are authenticated as the token, checked again on each request (revoking it ends the session); a change made with the cookie must carry the header ${CSRF_HEADER}: 1 and come from the same origin.`,
  tags: ["session"],
  ...access("session:read"),
  request: { body: jsonBody(SignIn) },
  responses: { 200: json(Session, "Signed in; the answer sets the cookie."), ...problems(400, 415) },
});

const signOut = createRoute({
  method: "delete",
  path: "/session",
  operationId: "signOut",
  summary: "Sign the dashboard out: the session of the cookie ends on the server at once, and the answer clears the cookie",
  tags: ["session"],
  ...access("session:read"),
  responses: { 204: { description: "Signed out." }, ...problems(409) },
});

/** GET /v1/session: the caller's own token, role and permissions; POST and DELETE sign the dashboard in and out. */
export function sessionRoutes() {
  return router()
    .openapi(signIn, (c) => {
      const sessions = c.get("sessions");
      const id = sessions.create(c.get("signInTokenHash"));
      c.header("Set-Cookie", sessionCookie(c, id, Math.floor(sessions.options.maxMs / 1000)));
      c.header("Cache-Control", "no-store");
      return c.json(view(c, sessions.touch(id)), 200);
    })
    .openapi(signOut, (c) => {
      const id = sessionIdOf(c);
      if (!id || !c.get("session")) throw new ApiError(409, "No session", "this request carries no dashboard session cookie: only the dashboard signs out; a bearer token stays valid until an admin revokes it (DELETE /v1/tokens/{id})");
      c.get("sessions").end(id);
      c.header("Set-Cookie", sessionCookie(c, "", 0));
      return c.body(null, 204);
    })
    .openapi(get, (c) => c.json(view(c, c.get("session")?.record), 200));
}

/** The Session answer: the principal the request authenticated as, and its session when a cookie brought it. */
function view(c: Context, session: SessionRecord | undefined) {
  const p = c.get("principal");
  const ends = session ? c.get("sessions").expiry(session) : undefined;
  return {
    tokenId: p.tokenId,
    name: p.tokenName,
    role: p.role,
    permissions: [...ROLES[p.role]],
    scope: p.scope ? { ...(p.scope.planIds ? { planIds: p.scope.planIds } : {}), ...(p.scope.repositoryIds ? { repositoryIds: p.scope.repositoryIds } : {}) } : null,
    expiresAt: p.expiresAt ? p.expiresAt.toISOString() : null,
    session: ends ? { idleExpiresAt: ends.idle.toISOString(), expiresAt: ends.max.toISOString() } : null,
  };
}

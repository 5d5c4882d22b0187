import type { Context } from "hono";
import type { AppDeps } from "./app.js";
import type { Principal } from "./auth.js";
import type { SessionRecord, Sessions } from "./sessions.js";

/** What the central layers put on each request's context for the ones after them. */
declare module "hono" {
  interface ContextVariableMap {
    deps: AppDeps;
    /** Who is calling: set by bearerAuth on every /v1 request that passed it. */
    principal: Principal;
    /** A fresh id per request, answered in X-Request-Id and recorded in the audit log. */
    requestId: string;
    /** The dashboard's sessions (api/sessions.ts). */
    sessions: Sessions;
    /** Set when the session cookie authenticated the request. */
    session: { id: string; record: SessionRecord };
    /** On POST /v1/session: the hash of the token the body presented, which the new session keeps. */
    signInTokenHash: string;
  }
}

/**
 * The peer address of the request's connection (the Node server's socket), or
 * "unknown" when there is none (app.request() in tests). Forwarded-for headers
 * are not trusted: any client can write them.
 */
export function sourceAddress(c: Context): string {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  return env?.incoming?.socket?.remoteAddress ?? "unknown";
}

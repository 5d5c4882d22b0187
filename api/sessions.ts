import { createHash, randomBytes } from "node:crypto";
import type { Context } from "hono";
import { ApiError } from "./errors.js";

/** The dashboard's session cookie: a random id, never the API token. */
export const SESSION_COOKIE = "cairn_session";
/** The header a cookie-authenticated change must carry (a page of another site cannot set it without a CORS preflight, which the API never grants). */
export const CSRF_HEADER = "X-Cairn-CSRF";

export interface SessionOptions {
  /** A session unused this long ends (30 minutes). */
  idleMs: number;
  /** A session ends this long after sign-in, however busy (8 hours). */
  maxMs: number;
  /** Sessions kept at once; past it the least recently used ends (10 000). */
  maxSessions: number;
}

export const DEFAULT_SESSIONS: SessionOptions = { idleMs: 30 * 60_000, maxMs: 8 * 3600_000, maxSessions: 10_000 };

export interface SessionRecord {
  /** sha256 of the API token the session was signed in with (never the token): each request checks that token again. */
  tokenHash: string;
  createdAt: number;
  lastSeen: number;
}

/**
 * Dashboard sessions, in this API process's memory, keyed by the sha256 of the
 * cookie's random id: signing out (DELETE /v1/session) forgets one at once, a
 * restart of the API forgets them all (everyone signs in again), and a copy of
 * this map would give neither the cookies nor the tokens.
 */
export class Sessions {
  private readonly sessions = new Map<string, SessionRecord>();

  constructor(
    readonly options: SessionOptions = DEFAULT_SESSIONS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts a session for the token with this hash; answers the cookie's value. */
  create(tokenHash: string): string {
    const id = randomBytes(32).toString("base64url");
    const now = this.now();
    this.sessions.set(key(id), { tokenHash, createdAt: now, lastSeen: now });
    while (this.sessions.size > this.options.maxSessions) this.sessions.delete(this.sessions.keys().next().value!);
    return id;
  }

  /** The live session of a cookie value (refreshing its idle time), or undefined when it is unknown, idle too long or too old. */
  touch(id: string): SessionRecord | undefined {
    const k = key(id);
    const s = this.sessions.get(k);
    if (!s) return undefined;
    const now = this.now();
    if (now - s.lastSeen >= this.options.idleMs || now - s.createdAt >= this.options.maxMs) {
      this.sessions.delete(k);
      return undefined;
    }
    s.lastSeen = now;
    this.sessions.delete(k); // re-insert: the Map's order is then least recently used first
    this.sessions.set(k, s);
    return s;
  }

  /** Ends a session (sign-out); true when there was one. */
  end(id: string): boolean {
    return this.sessions.delete(key(id));
  }

  /** Ends every session of a token (used when the token turns out revoked or expired). */
  endToken(tokenHash: string): void {
    for (const [k, s] of this.sessions) if (s.tokenHash === tokenHash) this.sessions.delete(k);
  }

  /** When a session ends if it stays idle, and at the latest. */
  expiry(s: SessionRecord): { idle: Date; max: Date } {
    return { idle: new Date(s.lastSeen + this.options.idleMs), max: new Date(s.createdAt + this.options.maxMs) };
  }
}

function key(id: string): string {
  return createHash("sha256").update(id, "utf8").digest("hex");
}

/** Whether the browser reached the API over https (directly, or through a proxy saying so: that can only make the cookie stricter). */
export function overHttps(c: Context): boolean {
  return new URL(c.req.url).protocol === "https:" || /^https$/i.test(c.req.header("X-Forwarded-Proto")?.split(",")[0]?.trim() ?? "");
}

/** The Set-Cookie value of a session: HttpOnly, SameSite=Strict, path /, Secure over https; Max-Age the session's longest life (0 clears it). */
export function sessionCookie(c: Context, value: string, maxAgeSeconds: number): string {
  return [`${SESSION_COOKIE}=${value}`, "Path=/", "HttpOnly", "SameSite=Strict", `Max-Age=${maxAgeSeconds}`, ...(overHttps(c) ? ["Secure"] : [])].join("; ");
}

/** The session id the request's Cookie header carries, if any. */
export function sessionIdOf(c: Context): string | undefined {
  const header = c.req.header("Cookie");
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === SESSION_COOKIE) {
      const value = rest.join("=");
      return /^[\w-]{20,100}$/.test(value) ? value : undefined;
    }
  }
  return undefined;
}

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Cross-site request forgery, for requests a cookie authenticates (and sign-in):
 * besides SameSite=Strict, a change must carry X-Cairn-CSRF (which a form or a
 * page of another site cannot send), and an Origin or Sec-Fetch-Site the browser
 * sets must say this same site.
 */
export function checkSameOrigin(c: Context, needHeader: boolean): void {
  if (SAFE.has(c.req.method)) return;
  const origin = c.req.header("Origin");
  const host = c.req.header("Host");
  let originHost: string | undefined;
  try {
    originHost = origin && origin !== "null" ? new URL(origin).host : undefined;
  } catch {
    originHost = undefined;
  }
  if (origin && (!originHost || !host || originHost !== host)) {
    throw new ApiError(403, "Cross-site request refused", `this request came from the page ${origin}, not from the dashboard of ${host ?? "this server"}; sign in on the dashboard itself, or call the API with Authorization: Bearer <token>`);
  }
  if (c.req.header("Sec-Fetch-Site") === "cross-site") {
    throw new ApiError(403, "Cross-site request refused", "the browser says this request came from another site; a dashboard session only works from the dashboard itself, other clients send Authorization: Bearer <token>");
  }
  if (needHeader && !c.req.header(CSRF_HEADER)) {
    throw new ApiError(403, "Missing CSRF header", `a change made with the dashboard's session cookie must carry the header ${CSRF_HEADER}: 1 (the dashboard sends it); other clients send Authorization: Bearer <token> instead of the cookie`);
  }
}

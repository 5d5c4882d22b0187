import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { and, eq, isNull } from "drizzle-orm";
import type { MiddlewareHandler } from "hono";
import type { Catalog } from "../db/client.js";
import { apiTokens, type TokenScope } from "../db/schema.js";
import { sourceAddress } from "./context.js";
import { ApiError } from "./errors.js";
import type { FailedLogins } from "./lockout.js";
import { isRole, type Role } from "./permissions.js";
import { checkSameOrigin, sessionIdOf, type Sessions } from "./sessions.js";

/** Who is calling: the token's id, name, role and scope. */
export interface Principal {
  tokenId: string;
  tokenName: string;
  role: Role;
  scope?: TokenScope;
  expiresAt?: Date;
}

/** The admin token given by CAIRN_API_TOKEN: kept in memory only, so it has no catalog row. */
export const ENV_ADMIN: Principal = { tokenId: "env", tokenName: "CAIRN_API_TOKEN", role: "admin" };

/** sha256 of a token, hex: the catalog never holds a token in clear. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** A new token secret: 24 random bytes, recognisable by its prefix in logs and secret scanners. */
export function newToken(): string {
  return `cairn_${randomBytes(24).toString("base64url")}`;
}

/**
 * Makes sure someone can log in: when the catalog has no usable admin token yet,
 * creates one and returns it (the only time it is visible); otherwise returns undefined.
 */
export async function ensureAdminToken(catalog: Catalog): Promise<string | undefined> {
  const existing = await catalog
    .select({ id: apiTokens.id, expiresAt: apiTokens.expiresAt })
    .from(apiTokens)
    .where(and(eq(apiTokens.role, "admin"), isNull(apiTokens.revokedAt)));
  if (existing.some((t) => !t.expiresAt || t.expiresAt > new Date())) return undefined;
  const token = newToken();
  await catalog.insert(apiTokens).values({ id: randomBytes(8).toString("hex"), name: "admin", tokenHash: hashToken(token), role: "admin" });
  return token;
}

/** lastUsedAt is written at most this often per token, so reads do not turn into writes. */
const LAST_USED_RESOLUTION_MS = 60_000;

/**
 * The API's authentication, first after the audit layer on every /v1 request.
 * A request proves who it is by one of:
 * - a bearer token (Authorization: Bearer <token>): every client but the dashboard;
 * - on POST /v1/session only, a token in the body ({"token": ...}), exchanged there for a session cookie;
 * - the dashboard's session cookie, whose session names the token it was signed
 *   in with (by hash); changes made with it must pass checkSameOrigin (CSRF).
 * The token is the one given by CAIRN_API_TOKEN (kept in memory only) or a token
 * of the catalog that is neither expired nor revoked, checked on every request
 * (so revoking a token ends its sessions too). Failed tokens count against the
 * source address and the token presented; past the limit both are refused with
 * 429 until the lock ends. An unknown or ended session is not counted: its id is
 * 256 random bits, and a tab left open past its session is no attack.
 */
export function bearerAuth(catalog: Catalog, failures: FailedLogins, adminToken: string | undefined, sessions: Sessions): MiddlewareHandler {
  const adminHash = adminToken ? Buffer.from(hashToken(adminToken), "hex") : undefined;

  /** The principal of a token hash, or why it is refused. */
  const resolve = async (hash: string): Promise<Principal | string> => {
    if (adminHash && timingSafeEqual(adminHash, Buffer.from(hash, "hex"))) return ENV_ADMIN;
    const [row] = await catalog.select().from(apiTokens).where(eq(apiTokens.tokenHash, hash)).limit(1);
    if (!row) return "the bearer token is not known to this server; check for a typo or use the token it printed on its first start (or CAIRN_API_TOKEN)";
    if (row.revokedAt) return `the token "${row.name}" (id ${row.id}) was revoked at ${row.revokedAt.toISOString()}; ask an admin for a new one (POST /v1/tokens)`;
    const now = new Date();
    if (row.expiresAt && row.expiresAt <= now) return `the token "${row.name}" (id ${row.id}) expired at ${row.expiresAt.toISOString()}; ask an admin for a new one (POST /v1/tokens)`;
    if (!isRole(row.role)) throw new ApiError(403, "Unknown role", `the token "${row.name}" has the role "${row.role}", which this server does not know; an admin should revoke it and create another`);
    if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() >= LAST_USED_RESOLUTION_MS) {
      await catalog.update(apiTokens).set({ lastUsedAt: now }).where(eq(apiTokens.id, row.id));
    }
    return { tokenId: row.id, tokenName: row.name, role: row.role, ...(row.scope ? { scope: row.scope } : {}), ...(row.expiresAt ? { expiresAt: row.expiresAt } : {}) };
  };

  return async (c, next) => {
    c.set("sessions", sessions);
    const source = sourceAddress(c);
    const signIn = c.req.method === "POST" && c.req.path === "/v1/session";
    const header = c.req.header("Authorization");
    let presented: string | undefined;
    if (signIn) {
      checkSameOrigin(c, false);
      const body = await signInBody(c.req.raw);
      const token = body && typeof body === "object" ? (body as { token?: unknown }).token : undefined;
      if (typeof token === "string" && token.trim()) presented = token.trim();
    }
    if (presented === undefined && header) {
      const m = /^Bearer\s+(\S{1,512})\s*$/i.exec(header);
      if (m) presented = m[1];
    }

    if (presented === undefined && !header && !signIn) {
      // The dashboard asks GET /v1/session on every page load to learn whether it is signed in:
      // without credentials, or with a session that ended, that is no attempt to authenticate,
      // so its 401 is not audited (a wrong bearer token there still is, like anywhere).
      if (c.req.method === "GET" && c.req.path === "/v1/session") c.set("auditQuiet", true);
      const sid = sessionIdOf(c);
      if (sid) {
        const session = sessions.touch(sid);
        if (!session) throw unauthorized("the dashboard session ended (signed out, unused for 30 minutes, 8 hours old, or the API restarted); sign in again with an API token");
        checkSameOrigin(c, true);
        const who = await resolve(session.tokenHash);
        if (typeof who === "string") {
          sessions.endToken(session.tokenHash);
          throw unauthorized(who);
        }
        c.set("principal", who);
        c.set("session", { id: sid, record: session });
        return next();
      }
    }

    const hash = presented !== undefined && presented.length <= 512 && !/\s/.test(presented) ? hashToken(presented) : undefined;
    const keys = [`address:${source}`, ...(hash ? [`token:${hash.slice(0, 16)}`] : [])];
    refuseWhileLocked(failures, keys);
    if (!hash) {
      throw unauthorized(
        signIn
          ? 'signing in needs an API token: send {"token": "<token>"} (the server prints the admin token on its first start, or set CAIRN_API_TOKEN)'
          : "this endpoint needs a bearer token: send the header Authorization: Bearer <token> (the server prints the admin token on its first start, or set CAIRN_API_TOKEN); the dashboard signs in at / instead",
      );
    }
    const who = await resolve(hash);
    if (typeof who === "string") {
      for (const key of keys) await failures.fail(key, c);
      throw unauthorized(who);
    }
    c.set("principal", who);
    if (signIn) c.set("signInTokenHash", hash);
    return next();
  };
}

/**
 * The JSON of a sign-in request, read from a copy of the request (the body-limit
 * layer and the route's validator then read the original) and at most 4 KiB of
 * it: a body that is longer or not JSON has no token here, and the validator says why.
 */
async function signInBody(request: Request): Promise<unknown> {
  if (!request.body) return undefined;
  const reader = request.clone().body!.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > 4096) return undefined;
      chunks.push(value);
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    return undefined;
  }
}

function refuseWhileLocked(failures: FailedLogins, keys: string[]): void {
  const seconds = Math.max(0, ...keys.map((key) => failures.retryAfter(key) ?? 0));
  if (seconds === 0) return;
  const refusal = new ApiError(429, "Too many failed logins", `too many requests with a wrong token came from this address or with this token; wait ${seconds} s before trying again, with a valid token`);
  refusal.headers = { "Retry-After": String(seconds) };
  throw refusal;
}

function unauthorized(detail: string): ApiError {
  return new ApiError(401, "Unauthorized", detail);
}

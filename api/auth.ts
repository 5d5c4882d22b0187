import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { and, eq, isNull } from "drizzle-orm";
import type { MiddlewareHandler } from "hono";
import type { Catalog } from "../db/client.js";
import { apiTokens, type TokenScope } from "../db/schema.js";
import { sourceAddress } from "./context.js";
import { ApiError } from "./errors.js";
import type { FailedLogins } from "./lockout.js";
import { isRole, type Role } from "./permissions.js";

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
 * Bearer-token check: the token given by CAIRN_API_TOKEN (kept in memory only)
 * or a token of the catalog that is neither expired nor revoked. Sets the
 * request's principal. Failures count against the source address and the token
 * presented; past the limit both are refused with 429 until the lock ends.
 */
export function bearerAuth(catalog: Catalog, failures: FailedLogins, adminToken?: string): MiddlewareHandler {
  const adminHash = adminToken ? Buffer.from(hashToken(adminToken), "hex") : undefined;
  return async (c, next) => {
    const source = sourceAddress(c);
    const header = c.req.header("Authorization");
    const m = header ? /^Bearer\s+(\S{1,512})\s*$/i.exec(header) : null;
    const hash = m ? hashToken(m[1]) : undefined;
    const keys = [`address:${source}`, ...(hash ? [`token:${hash.slice(0, 16)}`] : [])];
    refuseWhileLocked(failures, keys);
    if (!m || !hash) throw unauthorized("this endpoint needs a bearer token: send the header Authorization: Bearer <token> (the server prints the admin token on its first start, or set CAIRN_API_TOKEN)");

    const fail = async (detail: string): Promise<never> => {
      for (const key of keys) await failures.fail(key, c);
      throw unauthorized(detail);
    };
    if (adminHash && timingSafeEqual(adminHash, Buffer.from(hash, "hex"))) {
      c.set("principal", ENV_ADMIN);
      return next();
    }
    const [row] = await catalog.select().from(apiTokens).where(eq(apiTokens.tokenHash, hash)).limit(1);
    if (!row) return fail("the bearer token is not known to this server; check for a typo or use the token it printed on its first start (or CAIRN_API_TOKEN)");
    if (row.revokedAt) return fail(`the token "${row.name}" (id ${row.id}) was revoked at ${row.revokedAt.toISOString()}; ask an admin for a new one (POST /v1/tokens)`);
    const now = new Date();
    if (row.expiresAt && row.expiresAt <= now) return fail(`the token "${row.name}" (id ${row.id}) expired at ${row.expiresAt.toISOString()}; ask an admin for a new one (POST /v1/tokens)`);
    if (!isRole(row.role)) throw new ApiError(403, "Unknown role", `the token "${row.name}" has the role "${row.role}", which this server does not know; an admin should revoke it and create another`);
    c.set("principal", { tokenId: row.id, tokenName: row.name, role: row.role, ...(row.scope ? { scope: row.scope } : {}), ...(row.expiresAt ? { expiresAt: row.expiresAt } : {}) });
    if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() >= LAST_USED_RESOLUTION_MS) {
      await catalog.update(apiTokens).set({ lastUsedAt: now }).where(eq(apiTokens.id, row.id));
    }
    return next();
  };
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

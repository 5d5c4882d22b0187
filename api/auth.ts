import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { eq } from "drizzle-orm";
import type { MiddlewareHandler } from "hono";
import type { Catalog } from "../db/client.js";
import { apiTokens } from "../db/schema.js";
import { ApiError } from "./errors.js";

/** sha256 of a token, hex: the catalog never holds a token in clear. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/**
 * Makes sure someone can log in: when the catalog has no admin token yet, creates
 * one and returns it (the only time it is visible); otherwise returns undefined.
 */
export async function ensureAdminToken(catalog: Catalog): Promise<string | undefined> {
  const existing = await catalog.select({ id: apiTokens.id }).from(apiTokens).where(eq(apiTokens.role, "admin")).limit(1);
  if (existing.length) return undefined;
  const token = `cairn_${randomBytes(24).toString("base64url")}`;
  await catalog.insert(apiTokens).values({ id: randomBytes(8).toString("hex"), name: "admin", tokenHash: hashToken(token), role: "admin" });
  return token;
}

/**
 * Bearer-token check: the token given by CAIRN_API_TOKEN (kept in memory only)
 * or any token whose hash is in the catalog.
 */
export function bearerAuth(catalog: Catalog, adminToken?: string): MiddlewareHandler {
  const adminHash = adminToken ? Buffer.from(hashToken(adminToken), "hex") : undefined;
  return async (c, next) => {
    const header = c.req.header("Authorization");
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m) throw unauthorized("this endpoint needs a bearer token: send the header Authorization: Bearer <token> (the server prints the admin token on its first start, or set CAIRN_API_TOKEN)");
    const hash = hashToken(m[1]);
    if (adminHash && timingSafeEqual(adminHash, Buffer.from(hash, "hex"))) return next();
    const [row] = await catalog.select({ id: apiTokens.id }).from(apiTokens).where(eq(apiTokens.tokenHash, hash)).limit(1);
    if (!row) throw unauthorized("the bearer token is not known to this server; check for a typo or use the token it printed on its first start (or CAIRN_API_TOKEN)");
    return next();
  };
}

function unauthorized(detail: string): ApiError {
  return new ApiError(401, "Unauthorized", detail);
}

import { createHmac, timingSafeEqual } from "node:crypto";
import { z } from "@hono/zod-openapi";
import { sql, type SQL } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";
import type { SecretBox } from "../engine/secret-box.js";
import { ApiError } from "./errors.js";

/** Most items one page may hold. */
export const MAX_PAGE = 500;

/** `?limit=&cursor=` of every list route. */
export const PageQuery = z.object({
  limit: z.coerce.number().int("use a whole number").min(1).max(MAX_PAGE).default(100).openapi({ description: `Items per page, 1 to ${MAX_PAGE} (100).` }),
  cursor: z.string().min(1).max(2048).optional().openapi({ description: "The nextCursor of the previous page; leave it out for the first page." }),
});

/** The `nextCursor` field of every list answer. */
export const nextCursor = z.string().nullable().openapi({ description: "Pass it as ?cursor= for the next page; null on the last page." });

/** An opaque cursor: the sort key of the last item of a page, base64url JSON. */
export function encodeCursor(key: unknown[]): string {
  return Buffer.from(JSON.stringify(key), "utf8").toString("base64url");
}

/** The sort key a cursor holds, checked against the shape the list expects; a forged or stale cursor is a 400. */
export function decodeCursor<T extends unknown[]>(cursor: string, shape: z.ZodType<T>): T {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    value = undefined;
  }
  const parsed = shape.safeParse(value);
  if (!parsed.success) throw badCursor();
  return parsed.data;
}

/**
 * Cursors wrapping another system's opaque page tokens (Temporal's): each is
 * signed with a key derived from the platform key, over the token and the query
 * it pages, so only a token the API gave out for that same query (and so the
 * same token scope) is passed back, and any API process of the deployment
 * accepts what another gave out.
 */
export class PageTokens {
  private readonly key: Buffer;

  constructor(secretBox: SecretBox) {
    // The oldest key: rotating the platform key does not void the cursors in use.
    const oldest = secretBox.keyring.at(-1)!;
    this.key = createHmac("sha256", oldest.key).update("cairn page tokens").digest();
  }

  private mac(query: string, token: Uint8Array): Buffer {
    return createHmac("sha256", this.key).update(Buffer.from(query, "utf8").toString("base64")).update(".").update(token).digest().subarray(0, 16);
  }

  /** The cursor for `token`, the next page of `query`. */
  wrap(query: string, token: Uint8Array): string {
    return Buffer.concat([this.mac(query, token), token]).toString("base64url");
  }

  /** The page token inside a cursor given out for `query`; any other cursor (forged, or from another list or filter) is a 400. */
  unwrap(query: string, cursor: string): Buffer {
    const raw = Buffer.from(cursor, "base64url");
    const token = raw.subarray(16);
    if (raw.length <= 16 || !timingSafeEqual(raw.subarray(0, 16), this.mac(query, token))) throw badCursor();
    return token;
  }
}

export function badCursor(): ApiError {
  return new ApiError(400, "Invalid cursor", "the cursor is not one this list gave out; pass the nextCursor of the previous page unchanged, or leave cursor out to start from the first page", [
    { in: "query", path: "cursor", message: "not a cursor of this list" },
  ]);
}

const TimeAndId = z.tuple([z.iso.datetime(), z.string().max(200)]);

/**
 * Keyset pagination in creation order for catalog tables with created_at and id:
 * the condition for rows after the cursor, the ordering, and the cursor of a page.
 * Compared at millisecond precision, the precision a cursor carries.
 */
export function byCreation(createdAt: PgColumn, id: PgColumn) {
  const time = sql`date_trunc('milliseconds', ${createdAt})`;
  return {
    after(cursor: string | undefined): SQL | undefined {
      if (!cursor) return undefined;
      const [t, lastId] = decodeCursor(cursor, TimeAndId);
      return sql`(${time}, ${id}) > (${t}::timestamptz, ${lastId})`;
    },
    orderBy: [time, id] as const,
    /** Fetch `limit + 1` rows; this trims them to a page and gives the cursor of the next one. */
    page<T extends { createdAt: Date; id: string }>(rows: T[], limit: number): { items: T[]; nextCursor: string | null } {
      const items = rows.slice(0, limit);
      const last = items.at(-1);
      return { items, nextCursor: rows.length > limit && last ? encodeCursor([last.createdAt.toISOString(), last.id]) : null };
    },
  };
}

import { createRoute, z } from "@hono/zod-openapi";
import { and, desc, eq, gte, lt } from "drizzle-orm";
import { securityEvents } from "../../db/schema.js";
import type { AppDeps } from "../app.js";
import { access, json, problems, router } from "../openapi.js";
import { decodeCursor, encodeCursor, nextCursor, PageQuery } from "../pagination.js";

const KINDS = ["auth-lockout", "restore-volume", "download-volume", "read-volume"] as const;

const SecurityEvent = z
  .object({
    id: z.number().int(),
    time: z.string(),
    kind: z.enum(KINDS),
    source: z.string().openapi({ description: "The address the request came from." }),
    tokenId: z.string().nullable(),
    tokenName: z.string().nullable(),
    blocked: z.boolean().openapi({ description: "True when requests were refused because of it." }),
    details: z.record(z.string(), z.unknown()),
  })
  .openapi("SecurityEvent");

const list = createRoute({
  method: "get",
  path: "/security/events",
  operationId: "listSecurityEvents",
  summary: "Security events, newest first: lockouts after failed logins, tokens restoring, downloading or reading far more than usual",
  tags: ["security"],
  ...access("security:read"),
  request: {
    query: z.object({
      kind: z.enum(KINDS).optional(),
      since: z.iso.datetime({ offset: true }).optional().openapi({ description: "Only events at or after this time." }),
      ...PageQuery.shape,
    }),
  },
  responses: { 200: json(z.object({ events: z.array(SecurityEvent), nextCursor }), "A page of events."), ...problems(400) },
});

export function securityRoutes(deps: AppDeps) {
  return router().openapi(list, async (c) => {
    const { kind, since, limit, cursor } = c.req.valid("query");
    const before = cursor ? decodeCursor(cursor, z.tuple([z.number().int()]))[0] : undefined;
    const rows = await deps.catalog
      .select()
      .from(securityEvents)
      .where(and(kind ? eq(securityEvents.kind, kind) : undefined, since ? gte(securityEvents.time, new Date(since)) : undefined, before !== undefined ? lt(securityEvents.id, before) : undefined))
      .orderBy(desc(securityEvents.id))
      .limit(limit + 1);
    const items = rows.slice(0, limit);
    return c.json(
      {
        events: items.map((e) => ({ ...e, kind: e.kind as (typeof KINDS)[number], time: e.time.toISOString() })),
        nextCursor: rows.length > limit ? encodeCursor([items.at(-1)!.id]) : null,
      },
      200,
    );
  });
}

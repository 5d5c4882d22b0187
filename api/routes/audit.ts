import { createRoute, z } from "@hono/zod-openapi";
import { and, desc, eq, gte, like, lt, lte, or } from "drizzle-orm";
import { auditEvents } from "../../db/schema.js";
import type { AppDeps } from "../app.js";
import { access, AUDIT_FIELD, json, problems, router } from "../openapi.js";
import { decodeCursor, encodeCursor, nextCursor, PageQuery } from "../pagination.js";

const AuditEvent = z
  .object({
    seq: z.number().int(),
    time: z.string(),
    actorId: z.string().nullable().openapi({ description: 'The token id ("env" for CAIRN_API_TOKEN); null when no token was accepted.' }),
    actorName: z.string().nullable(),
    role: z.string().nullable(),
    action: z.string().openapi({ description: "The route's operationId (createPlan, createRestore, ...) or security.<kind>." }),
    resource: z.string().openapi({ example: "plans/3f9a1c2b7d4e5f60" }),
    outcome: z.enum(["attempted", "succeeded", "failed", "denied"]),
    source: z.string(),
    requestId: z.string().nullable(),
    details: z.record(z.string(), z.unknown()).openapi({ description: "Method, status, the validated input with secrets redacted; for refusals the problem's detail, which names the rule." }),
    hash: z.string().openapi({ description: "SHA-256 (hex) of the canonical event followed by the previous event's hash." }),
  })
  .openapi("AuditEvent");

const Verification = z
  .object({
    ok: z.boolean(),
    events: z.number().int(),
    firstBrokenSeq: z.number().int().optional().openapi({ description: "The first sequence number that is missing, changed, or not what a signed checkpoint says." }),
    reason: z.string().optional(),
    checkpoints: z.number().int().openapi({ description: "Signed checkpoints the chain was compared with." }),
    lastCheckpointSeq: z.number().int().optional(),
  })
  .openapi("AuditVerification");

const list = createRoute({
  method: "get",
  path: "/audit",
  operationId: "listAuditEvents",
  summary: "The audit log, newest first: every change, refusal, failed login, restore and token change",
  tags: ["audit"],
  ...access("audit:read"),
  request: {
    query: z.object({
      actor: z.string().min(1).max(100).optional().openapi({ description: "A token id or name." }),
      action: z.string().min(1).max(100).optional().openapi({ example: "createRestore" }),
      resource: z.string().min(1).max(300).optional().openapi({ description: "Events on this resource and those under it.", example: "plans/3f9a1c2b7d4e5f60" }),
      outcome: z.enum(["attempted", "succeeded", "failed", "denied"]).optional(),
      since: z.iso.datetime({ offset: true }).optional().openapi({ description: "At or after this time." }),
      until: z.iso.datetime({ offset: true }).optional().openapi({ description: "At or before this time." }),
      ...PageQuery.shape,
    }),
  },
  responses: { 200: json(z.object({ events: z.array(AuditEvent), nextCursor }), "A page of events."), ...problems(400) },
});

const verify = createRoute({
  method: "post",
  path: "/audit/verify",
  operationId: "verifyAuditLog",
  summary: "Check the audit chain event by event and against the signed checkpoints kept outside the catalog",
  tags: ["audit"],
  ...access("audit:verify"),
  // Reading the log changes nothing: an attempt event written first would only blur what the verification finds.
  [AUDIT_FIELD]: false,
  responses: { 200: json(Verification, "The verdict; ok false names the first broken sequence number and why."), ...problems() },
});

/** `resource` filter: the resource itself or anything under it, with LIKE's wildcards taken literally. */
function under(resource: string) {
  const escaped = resource.replace(/[\\%_]/g, (ch) => `\\${ch}`);
  return or(eq(auditEvents.resource, resource), like(auditEvents.resource, `${escaped}/%`));
}

export function auditRoutes(deps: AppDeps) {
  return router()
    .openapi(list, async (c) => {
      const q = c.req.valid("query");
      const before = q.cursor ? decodeCursor(q.cursor, z.tuple([z.number().int()]))[0] : undefined;
      const rows = await deps.catalog
        .select()
        .from(auditEvents)
        .where(
          and(
            q.actor ? or(eq(auditEvents.actorId, q.actor), eq(auditEvents.actorName, q.actor)) : undefined,
            q.action ? eq(auditEvents.action, q.action) : undefined,
            q.resource ? under(q.resource) : undefined,
            q.outcome ? eq(auditEvents.outcome, q.outcome) : undefined,
            q.since ? gte(auditEvents.time, new Date(q.since)) : undefined,
            q.until ? lte(auditEvents.time, new Date(q.until)) : undefined,
            before !== undefined ? lt(auditEvents.seq, before) : undefined,
          ),
        )
        .orderBy(desc(auditEvents.seq))
        .limit(q.limit + 1);
      const items = rows.slice(0, q.limit);
      return c.json(
        {
          events: items.map((e) => ({ ...e, outcome: e.outcome as "attempted" | "succeeded" | "failed" | "denied", time: e.time.toISOString() })),
          nextCursor: rows.length > q.limit ? encodeCursor([items.at(-1)!.seq]) : null,
        },
        200,
      );
    })
    .openapi(verify, async (c) => c.json(await c.get("audit").verify(), 200));
}

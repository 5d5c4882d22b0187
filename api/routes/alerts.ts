import { createRoute, z } from "@hono/zod-openapi";
import { and, eq, inArray, or, sql, type SQL } from "drizzle-orm";
import { alerts, type TokenScope } from "../../db/schema.js";
import { ALERT_KINDS } from "../../workflows/messages.js";
import { acknowledgeAlert, type AlertRow } from "../alerts.js";
import type { AppDeps } from "../app.js";
import { scopedPlanIds } from "../access.js";
import { ApiError } from "../errors.js";
import { access, IdParam, json, problems, router } from "../openapi.js";
import { byCreation, nextCursor, PageQuery } from "../pagination.js";

const STATES = ["open", "acknowledged", "resolved"] as const;

const Alert = z
  .object({
    id: z.string(),
    kind: z.enum(ALERT_KINDS),
    severity: z.enum(["info", "warning", "critical"]),
    state: z.enum(STATES),
    title: z.string(),
    detail: z.string().openapi({ description: "What happened and what to do." }),
    planId: z.string().nullable(),
    repositoryId: z.string().nullable(),
    dedupeKey: z.string().openapi({ description: "The condition it stands for: while it is not resolved, the same condition seen again counts an occurrence instead of opening another alert." }),
    occurrences: z.number().int(),
    openedAt: z.string(),
    lastSeenAt: z.string(),
    acknowledgedAt: z.string().nullable(),
    acknowledgedBy: z.string().nullable().openapi({ description: "The token that acknowledged it." }),
    resolvedAt: z.string().nullable(),
    resolution: z.string().nullable().openapi({ description: "Why it was resolved (the condition cleared: a later successful backup, usage under 80%, ...)." }),
  })
  .openapi("Alert");

const list = createRoute({
  method: "get",
  path: "/alerts",
  operationId: "listAlerts",
  summary: "Alerts (backup failed, backup overdue, storage nearly full, verification failed, anomaly, drill failed) in the order they opened, a page at a time",
  tags: ["alerts"],
  ...access("alerts:read"),
  request: {
    query: z.object({
      state: z.enum(STATES).optional().openapi({ description: "Only alerts in this state (all by default)." }),
      kind: z.enum(ALERT_KINDS).optional(),
      ...PageQuery.shape,
    }),
  },
  responses: { 200: json(z.object({ alerts: z.array(Alert), nextCursor }), "A page of alerts (those of the token's scope)."), ...problems(400) },
});

const ack = createRoute({
  method: "post",
  path: "/alerts/{id}/ack",
  operationId: "acknowledgeAlert",
  summary: "Acknowledge an open alert: someone is on it. It stays until its condition clears, which resolves it",
  tags: ["alerts"],
  ...access("alerts:ack"),
  request: { params: IdParam },
  responses: { 200: json(Alert, "The acknowledged alert."), ...problems(404, 409) },
});

function view(a: AlertRow) {
  const iso = (d: Date | null) => d?.toISOString() ?? null;
  return {
    id: a.id,
    kind: a.kind,
    severity: a.severity,
    state: a.state,
    title: a.title,
    detail: a.detail,
    planId: a.planId,
    repositoryId: a.repositoryId,
    dedupeKey: a.dedupeKey,
    occurrences: a.occurrences,
    openedAt: a.openedAt.toISOString(),
    lastSeenAt: a.lastSeenAt.toISOString(),
    acknowledgedAt: iso(a.acknowledgedAt),
    acknowledgedBy: a.acknowledgedBy,
    resolvedAt: iso(a.resolvedAt),
    resolution: a.resolution,
  };
}

/** The alerts a scoped token sees: those of its plans (named, or writing into its repositories) and of its repositories. */
async function alertsInScope(deps: AppDeps, scope: TokenScope): Promise<SQL> {
  const planIds = await scopedPlanIds(deps.catalog, scope);
  return or(...(planIds.length ? [inArray(alerts.planId, planIds)] : []), ...(scope.repositoryIds?.length ? [inArray(alerts.repositoryId, scope.repositoryIds)] : [])) ?? sql`false`;
}

const opening = byCreation(alerts.openedAt, alerts.id);

/** GET /v1/alerts and POST /v1/alerts/{id}/ack (audited like every change). */
export function alertRoutes(deps: AppDeps) {
  const { catalog } = deps;
  return router()
    .openapi(list, async (c) => {
      const { state, kind, limit, cursor } = c.req.valid("query");
      const scope = c.get("principal").scope;
      const rows = await catalog
        .select()
        .from(alerts)
        .where(and(opening.after(cursor), state ? eq(alerts.state, state) : undefined, kind ? eq(alerts.kind, kind) : undefined, scope ? await alertsInScope(deps, scope) : undefined))
        .orderBy(...opening.orderBy)
        .limit(limit + 1);
      const page = opening.page(
        rows.map((r) => ({ ...r, createdAt: r.openedAt })),
        limit,
      );
      return c.json({ alerts: page.items.map(view), nextCursor: page.nextCursor }, 200);
    })
    .openapi(ack, async (c) => {
      const { id } = c.req.valid("param");
      const principal = c.get("principal");
      const [row] = await catalog
        .select()
        .from(alerts)
        .where(and(eq(alerts.id, id), principal.scope ? await alertsInScope(deps, principal.scope) : undefined));
      if (!row) throw ApiError.notFound("alert", id, "list alerts with GET /v1/alerts?state=open");
      if (row.state !== "open") {
        throw new ApiError(409, `Alert ${row.state}`, row.state === "resolved" ? `alert ${id} was resolved at ${row.resolvedAt?.toISOString()} (${row.resolution ?? "its condition cleared"}); nothing to acknowledge` : `alert ${id} was already acknowledged by ${row.acknowledgedBy} at ${row.acknowledgedAt?.toISOString()}`);
      }
      const acknowledged = await acknowledgeAlert(catalog, id, `${principal.tokenName} (${principal.tokenId})`);
      if (!acknowledged) throw new ApiError(409, "Alert changed", `alert ${id} was acknowledged or resolved a moment ago; read it again with GET /v1/alerts`);
      return c.json(view(acknowledged), 200);
    });
}

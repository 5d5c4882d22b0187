import type { Catalog } from "../db/client.js";
import { securityEvents } from "../db/schema.js";
import type { AuditTrail } from "./audit.js";

/** Kinds of security event: a lockout after failed logins, or a token used far more than usual. */
export type SecurityEventKind = "auth-lockout" | "restore-volume" | "download-volume" | "read-volume";

export interface SecurityEventInput {
  kind: SecurityEventKind;
  source: string;
  tokenId?: string;
  tokenName?: string;
  /** True when the request was refused because of it (blocked by policy), false when only reported. */
  blocked: boolean;
  details: Record<string, unknown>;
}

/** Records a security event in the catalog (GET /v1/security/events lists them) and in the audit log. */
export async function raiseSecurityEvent(catalog: Catalog, trail: AuditTrail, event: SecurityEventInput, requestId?: string): Promise<void> {
  await trail.record({
    actorId: event.tokenId ?? null,
    actorName: event.tokenName ?? null,
    action: `security.${event.kind}`,
    resource: event.tokenId ? `tokens/${event.tokenId}` : `addresses/${event.source}`,
    outcome: event.blocked ? "denied" : "succeeded",
    source: event.source,
    requestId: requestId ?? null,
    details: event.details,
  });
  await catalog.insert(securityEvents).values({
    kind: event.kind,
    source: event.source,
    tokenId: event.tokenId ?? null,
    tokenName: event.tokenName ?? null,
    blocked: event.blocked,
    details: event.details,
  });
}

import type { Context, MiddlewareHandler } from "hono";
import { eq } from "drizzle-orm";
import { AuditSigner, readCheckpoints, verifyAuditLog } from "../db/audit-checkpoints.js";
import { appendAuditEvent, auditHead, type AuditEventInput, type AuditEventRow, type AuditOutcome, type AuditVerification } from "../db/audit-log.js";
import type { Catalog } from "../db/client.js";
import { auditEvents } from "../db/schema.js";
import type { Principal } from "./auth.js";
import { sourceAddress } from "./context.js";
import { ApiError } from "./errors.js";

export interface AuditOptions {
  /** Sign the chain head once this many events were added since the last checkpoint (100). */
  checkpointEvery: number;
  /** And at least this often while events come in (5 minutes). */
  checkpointIntervalMs: number;
}

export const DEFAULT_AUDIT: AuditOptions = { checkpointEvery: 100, checkpointIntervalMs: 5 * 60_000 };

/**
 * The audit log as the API writes it: appends events to the chain, and signs
 * its head into a checkpoint every `checkpointEvery` events, every
 * `checkpointIntervalMs`, and on close. Without a signer (no checkpoint
 * directory) the chain is still kept, but truncation cannot be detected.
 */
export class AuditTrail {
  private signedSeq = 0;
  private readonly timer?: NodeJS.Timeout;

  constructor(
    private readonly catalog: Catalog,
    private readonly signer: AuditSigner | undefined,
    private readonly options: AuditOptions = DEFAULT_AUDIT,
  ) {
    if (signer) {
      this.timer = setInterval(() => void this.checkpoint().catch((err) => console.error("audit checkpoint failed:", err)), options.checkpointIntervalMs);
      this.timer.unref();
    }
  }

  /** Appends an event; throws when it cannot be written. */
  async record(input: AuditEventInput): Promise<AuditEventRow> {
    const row = await appendAuditEvent(this.catalog, input);
    if (this.signer && row.seq - this.signedSeq >= this.options.checkpointEvery) await this.checkpoint();
    return row;
  }

  /** Signs the current head, when it moved since the last checkpoint. */
  async checkpoint(): Promise<void> {
    if (!this.signer) return;
    const head = await auditHead(this.catalog);
    if (!head || head.seq <= this.signedSeq) return;
    await this.signer.checkpoint(head);
    this.signedSeq = head.seq;
  }

  /**
   * Compares the newest signed checkpoint (of the directory and the repository)
   * with the catalog, cheaply (one checkpoint read from each, one event):
   * a sentence when the log was cut or rewritten behind the API's back, for the
   * start-up log; the full check is verify().
   */
  async checkNewestCheckpoint(): Promise<string | undefined> {
    if (!this.signer) return undefined;
    const newest = (await readCheckpoints(this.signer.dir, this.signer.repository, true)).trusted.at(-1);
    if (!newest) return undefined;
    this.signedSeq = newest.seq;
    const [event] = await this.catalog.select({ hash: auditEvents.hash }).from(auditEvents).where(eq(auditEvents.seq, newest.seq));
    if (!event) return `the audit log has no event ${newest.seq}, which the checkpoint signed at ${newest.time} (in ${newest.where}) vouches for: events were removed from the catalog. Run cairn audit verify`;
    if (event.hash !== newest.hash) return `audit event ${newest.seq} differs from the checkpoint signed at ${newest.time} (in ${newest.where}): the catalog's audit log was rewritten. Run cairn audit verify`;
    return undefined;
  }

  async verify(): Promise<AuditVerification> {
    return verifyAuditLog(this.catalog, this.signer?.dir, this.signer?.repository);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.checkpoint();
    await this.signer?.repository?.close();
  }
}

/** What the audit layer knows of the route that serves a request (set by the router). */
export interface AuditedRoute {
  operationId: string;
  /** True when the route's success is audited too (changes, restores, downloads), not only its refusals. */
  audited: boolean;
}

declare module "hono" {
  interface ContextVariableMap {
    audit: AuditTrail;
    auditedRoute: AuditedRoute;
    /** Set once the attempt of an audited route is in the log; its outcome follows when the answer is known. */
    auditAttempt: AuditEventRow;
    /** Set by authentication for a refusal that is no attempt (the dashboard's signed-in probe without a session): not logged. */
    auditQuiet: boolean;
  }
}

/** Statuses that are a refusal of the caller: failed logins, missing permissions, policy, limits. */
const DENIED = new Set([401, 403, 413, 422, 429]);

function actor(c: Context): Pick<AuditEventInput, "actorId" | "actorName" | "role"> {
  const p = c.get("principal") as Principal | undefined;
  return p ? { actorId: p.tokenId, actorName: p.tokenName, role: p.role } : {};
}

function resourceOf(c: Context): string {
  return c.req.path.replace(/^\/v1\//, "");
}

/**
 * Written by the router before an audited route's handler runs: the attempt,
 * with the validated input (secrets redacted). When it cannot be written the
 * change is not made (503).
 */
export async function auditAttempt(c: Context, input: Record<string, unknown>): Promise<void> {
  const trail = c.get("audit") as AuditTrail | undefined;
  const route = c.get("auditedRoute") as AuditedRoute | undefined;
  if (!trail || !route) return;
  try {
    const row = await trail.record({
      ...actor(c),
      action: route.operationId,
      resource: resourceOf(c),
      outcome: "attempted",
      source: sourceAddress(c),
      requestId: c.get("requestId"),
      details: { method: c.req.method, ...(redact(input) as Record<string, unknown>) },
    });
    c.set("auditAttempt", row);
  } catch (err) {
    console.error("audit log unavailable:", err);
    throw new ApiError(503, "Audit log unavailable", "the request was not carried out because its audit event could not be written; check the catalog database (GET /readyz) and retry");
  }
}

/**
 * Records an outcome known only after the answer was sent (a download that broke
 * off midway), as an event of the request's own route.
 */
export async function auditLate(c: Context, outcome: AuditOutcome, details: Record<string, unknown>): Promise<void> {
  const trail = c.get("audit") as AuditTrail | undefined;
  const route = c.get("auditedRoute") as AuditedRoute | undefined;
  if (!trail || !route) return;
  try {
    await trail.record({ ...actor(c), action: route.operationId, resource: resourceOf(c), outcome, source: sourceAddress(c), requestId: c.get("requestId"), details: { method: c.req.method, ...details } });
  } catch (err) {
    console.error("audit log: could not record the outcome of", c.req.method, c.req.path, err);
  }
}

/**
 * The central audit layer, first on every /v1 request: after the answer, logs
 * the outcome of every audited attempt and every refusal (401, 403, 413, 422,
 * 429), with the problem's detail, which names the rule that refused.
 */
export function auditRequests(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    const trail = c.get("audit") as AuditTrail | undefined;
    const attempt = c.get("auditAttempt") as AuditEventRow | undefined;
    const status = c.res.status;
    if (!trail || (!attempt && !DENIED.has(status))) return;
    if (!attempt && c.get("auditQuiet") && status === 401) return;
    const outcome: AuditOutcome = status < 400 ? "succeeded" : DENIED.has(status) ? "denied" : "failed";
    const route = c.get("auditedRoute") as AuditedRoute | undefined;
    let answer: Record<string, unknown> = {};
    if (c.res.headers.get("content-type")?.match(/json/)) answer = await c.res.clone().json().catch(() => ({}));
    const resource = resourceOf(c) + (status === 201 && typeof answer.id === "string" ? `/${answer.id}` : "");
    try {
      await trail.record({
        ...actor(c),
        action: route?.operationId ?? "request",
        resource,
        outcome,
        source: sourceAddress(c),
        requestId: c.get("requestId"),
        details: {
          method: c.req.method,
          status,
          ...(attempt ? { attemptSeq: attempt.seq } : {}),
          ...(status >= 400 ? { title: answer.title, detail: answer.detail } : pick(answer, ["id", "jobId", "snapshotId", "scheduleId"])),
        },
      });
    } catch (err) {
      // The attempt is in the log already (or this was a refusal, where nothing was done): the answer stands.
      console.error("audit log: could not record the outcome of", c.req.method, c.req.path, err);
    }
  };
}

function pick(o: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => typeof o[k] === "string").map((k) => [k, o[k]]));
}

const SECRET_KEY = /pass(word|phrase)?$|secret|token|credential|private.?key|^key$/i;
const MAX_STRING = 512;
const MAX_ITEMS = 50;

/**
 * A copy of a request's input fit for the audit log: secret fields replaced by
 * "[redacted]" (a credentials map keeps its variable names), long strings and
 * lists cut, and NUL characters (which PostgreSQL's jsonb refuses) replaced.
 */
export function redact(value: unknown, key = ""): unknown {
  if (SECRET_KEY.test(key)) {
    if (value && typeof value === "object" && !Array.isArray(value)) return Object.fromEntries(Object.keys(value).map((k) => [k, "[redacted]"]));
    return "[redacted]";
  }
  if (typeof value === "string") {
    const clean = value.replaceAll("\u0000", "\uFFFD");
    return clean.length > MAX_STRING ? `${clean.slice(0, MAX_STRING)}… (${clean.length} characters)` : clean;
  }
  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ITEMS).map((v) => redact(v));
    return value.length > MAX_ITEMS ? [...items, `… (${value.length} items)`] : items;
  }
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [String(redact(k)), redact(v, k)]));
  }
  return value;
}

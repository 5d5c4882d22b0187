/**
 * The audit log's hash chain: appending an event, and verifying the chain against
 * the signed checkpoints kept outside the catalog (db/audit-checkpoints.ts).
 *
 * Each event carries `hash = SHA-256(canonical(event) || previous hash)`, the
 * previous hash of the first event being 32 zero bytes. Changing an event breaks
 * its own hash; deleting one leaves a gap in the sequence; rewriting the chain
 * from some event on (and re-hashing the rest) or cutting its tail disagrees
 * with a signed checkpoint.
 */
import { createHash } from "node:crypto";
import { asc, desc, gt, sql } from "drizzle-orm";
import type { Catalog } from "./client.js";
import { auditEvents } from "./schema.js";

export type AuditOutcome = "attempted" | "succeeded" | "failed" | "denied";

/** An event as the caller gives it; seq, time and hash are the log's to set. */
export interface AuditEventInput {
  actorId?: string | null;
  actorName?: string | null;
  role?: string | null;
  action: string;
  resource: string;
  outcome: AuditOutcome;
  source: string;
  requestId?: string | null;
  details: Record<string, unknown>;
}

export type AuditEventRow = typeof auditEvents.$inferSelect;

const GENESIS = Buffer.alloc(32);
/** The advisory lock that serialises appends, so two requests cannot take the same sequence number. */
const APPEND_LOCK = 0x6361_6972; // "cair"

/** JSON with object keys sorted at every level: the same event always gives the same bytes. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value ?? null);
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

/** The hash an event must carry, given the hash of the event before it (undefined for the first). */
export function chainHash(event: Omit<AuditEventRow, "hash">, previousHash: string | undefined): string {
  const canonical = canonicalJson({
    seq: event.seq,
    time: event.time.toISOString(),
    actorId: event.actorId,
    actorName: event.actorName,
    role: event.role,
    action: event.action,
    resource: event.resource,
    outcome: event.outcome,
    source: event.source,
    requestId: event.requestId,
    details: event.details,
  });
  return createHash("sha256")
    .update(canonical, "utf8")
    .update(previousHash ? Buffer.from(previousHash, "hex") : GENESIS)
    .digest("hex");
}

/**
 * Appends one event under a lock, in its own transaction, and returns it with
 * its sequence number and hash. Throws when the catalog cannot take it: a
 * change whose event cannot be written must not go ahead.
 */
export async function appendAuditEvent(catalog: Catalog, input: AuditEventInput): Promise<AuditEventRow> {
  return catalog.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${APPEND_LOCK})`);
    const [last] = await tx.select({ seq: auditEvents.seq, hash: auditEvents.hash }).from(auditEvents).orderBy(desc(auditEvents.seq)).limit(1);
    const event = {
      seq: (last?.seq ?? 0) + 1,
      time: new Date(),
      actorId: input.actorId ?? null,
      actorName: input.actorName ?? null,
      role: input.role ?? null,
      action: input.action,
      resource: input.resource,
      outcome: input.outcome,
      source: input.source,
      requestId: input.requestId ?? null,
      // Through JSON once, so what is hashed is exactly what jsonb gives back.
      details: JSON.parse(JSON.stringify(input.details)) as Record<string, unknown>,
    };
    const row = { ...event, hash: chainHash(event, last?.hash) };
    await tx.insert(auditEvents).values(row);
    return row;
  });
}

/** The newest event's sequence number and hash, or undefined when the log is empty. */
export async function auditHead(catalog: Catalog): Promise<{ seq: number; hash: string } | undefined> {
  const [last] = await catalog.select({ seq: auditEvents.seq, hash: auditEvents.hash }).from(auditEvents).orderBy(desc(auditEvents.seq)).limit(1);
  return last;
}

/** A signed statement that the chain's event `seq` had hash `hash` (db/audit-checkpoints.ts checks the signature). */
export interface TrustedCheckpoint {
  seq: number;
  hash: string;
  time: string;
  /** Where it was read (the checkpoint directory, or the checkpoint repository's URL), for messages. */
  where?: string;
}

export interface AuditVerification {
  ok: boolean;
  /** Events in the table. */
  events: number;
  /** The first sequence number that is missing, changed, or not what a signed checkpoint says. */
  firstBrokenSeq?: number;
  reason?: string;
  /** Signed checkpoints the chain was compared with (one per sequence number), and the newest one's sequence number. */
  checkpoints: number;
  lastCheckpointSeq?: number;
}

const located = (c: TrustedCheckpoint) => (c.where ? ` (in ${c.where})` : "");

/**
 * Walks the whole chain in order and compares it with the checkpoints (whose
 * signatures the caller has checked). Names the first broken sequence number.
 */
export async function verifyAuditChain(catalog: Catalog, checkpoints: TrustedCheckpoint[]): Promise<AuditVerification> {
  const byCheckpoint = [...checkpoints].sort((a, b) => a.seq - b.seq);
  const summary = { checkpoints: byCheckpoint.length, ...(byCheckpoint.length ? { lastCheckpointSeq: byCheckpoint.at(-1)!.seq } : {}) };
  const wanted = new Map(byCheckpoint.map((c) => [c.seq, c]));
  let events = 0;
  let expected = 1;
  let previousHash: string | undefined;
  let firstProblem: { seq: number; reason: string } | undefined;
  /** The newest checkpoint the chain agreed with: a disagreement later means events after it were rewritten. */
  let lastAgreed = 0;

  for (let after = 0; ; ) {
    const batch = await catalog.select().from(auditEvents).where(gt(auditEvents.seq, after)).orderBy(asc(auditEvents.seq)).limit(1000);
    if (!batch.length) break;
    for (const row of batch) {
      events++;
      after = row.seq;
      if (firstProblem) continue;
      if (row.seq !== expected) {
        firstProblem = { seq: expected, reason: `event ${expected} is missing: the log goes from event ${expected - 1} to event ${row.seq}` };
        continue;
      }
      const { hash, ...event } = row;
      if (chainHash(event, previousHash) !== hash) {
        firstProblem = { seq: row.seq, reason: `event ${row.seq} does not match its hash: it was changed after it was written` };
        continue;
      }
      const checkpoint = wanted.get(row.seq);
      if (checkpoint) {
        if (checkpoint.hash !== hash) {
          firstProblem = { seq: lastAgreed + 1, reason: `the chain disagrees with the checkpoint signed at ${checkpoint.time}${located(checkpoint)} for event ${row.seq}: events after ${lastAgreed} were rewritten` };
          continue;
        }
        lastAgreed = row.seq;
      }
      previousHash = hash;
      expected++;
    }
  }
  if (!firstProblem) {
    const beyond = byCheckpoint.find((c) => c.seq >= expected);
    if (beyond) firstProblem = { seq: expected, reason: `the log ends at event ${expected - 1}, but a checkpoint signed at ${beyond.time}${located(beyond)} shows event ${beyond.seq} existed: events from ${expected} on were removed` };
  }
  return firstProblem ? { ok: false, events, firstBrokenSeq: firstProblem.seq, reason: firstProblem.reason, ...summary } : { ok: true, events, ...summary };
}

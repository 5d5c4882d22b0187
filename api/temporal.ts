import { isGrpcServiceError, ServiceError, WorkflowNotFoundError, type Client } from "@temporalio/client";
import type { QueryDefinition, SearchAttributePair } from "@temporalio/common";
import { SEARCH_ATTRIBUTE_KEYS, SEARCH_ATTRIBUTES, type JobKind } from "../workflows/messages.js";
import { ApiError } from "./errors.js";

/** The search attributes every Cairn workflow carries, so the API and the Web UI filter alike. */
export function searchAttributes(kind: JobKind, planId?: string, source?: string): SearchAttributePair[] {
  const pairs: SearchAttributePair[] = [{ key: SEARCH_ATTRIBUTE_KEYS.kind, value: kind }];
  if (planId) pairs.push({ key: SEARCH_ATTRIBUTE_KEYS.plan, value: planId });
  if (source) pairs.push({ key: SEARCH_ATTRIBUTE_KEYS.source, value: source });
  return pairs;
}

/** A sortable, unique-enough time stamp for workflow ids: 20250102T030405123Z. */
export function idTime(now = new Date()): string {
  return now.toISOString().replace(/[-:.]/g, "");
}

/** How long one API request may wait on Temporal before it answers 503. */
const DEADLINE_MS = 10_000;

/**
 * Runs Temporal calls with a deadline; an unreachable server becomes a 503 that
 * says what to check, instead of a request that hangs on the client's retries.
 */
export async function withTemporal<T>(client: Client, fn: () => Promise<T>, deadlineMs = DEADLINE_MS): Promise<T> {
  try {
    return await client.connection.withDeadline(Date.now() + deadlineMs, fn);
  } catch (err) {
    if (isUnreachable(err)) {
      throw new ApiError(
        503,
        "Temporal unavailable",
        "the Temporal server does not answer: start it (or check TEMPORAL_ADDRESS and the namespace) and retry; GET /readyz shows when it is back",
      );
    }
    if (missesSearchAttributes(err)) {
      throw new ApiError(
        503,
        "Temporal not prepared",
        `the Temporal namespace does not know Cairn's search attributes (${Object.values(SEARCH_ATTRIBUTES).join(", ")}): start the dev server with scripts/temporal.ts, or register each with "temporal operator search-attribute create --name <name> --type Keyword"`,
      );
    }
    throw err;
  }
}

function missesSearchAttributes(err: unknown): boolean {
  return /search attribute/i.test(String((err as Error)?.message)) && Object.values(SEARCH_ATTRIBUTES).some((name) => String((err as Error).message).includes(name));
}

function isUnreachable(err: unknown): boolean {
  const grpc = err instanceof ServiceError ? err.cause : err;
  if (isGrpcServiceError(grpc)) return grpc.code === 14 || grpc.code === 4; // UNAVAILABLE, DEADLINE_EXCEEDED
  return /deadline exceeded|UNAVAILABLE|ECONNREFUSED/i.test(String((err as Error)?.message));
}

/** A long-running per-plan workflow as the API shows it: its status, whether it runs, and why it ended when it failed. */
export type LongRunningView<S> = S & { workflowId: string; running: boolean; startedAt: string; error?: string };

/** What tells one kind of long-running per-plan workflow (a standby, an archiver) apart for readLongRunning. */
export interface LongRunningKind<S> {
  workflowId: string;
  /** Its workflow type: another workflow under the same id reads as none. */
  type: string;
  statusQuery: QueryDefinition<S>;
  /** The status shown when the workflow cannot give one (no worker answers, or it failed). */
  unknown: S;
  /** Names it in the error of an ended one: "the standby failed: ...". */
  noun: string;
  /** Why nothing answered the status query, and what goes on meanwhile. */
  noWorker: string;
}

/**
 * A long-running workflow, running or ended; undefined when there is none under the
 * id (or it is past Temporal's retention). A running one answers its status query, a
 * completed one returned its last status.
 */
export async function readLongRunning<S extends { phase: string }>(client: Client, kind: LongRunningKind<S>): Promise<LongRunningView<S> | undefined> {
  const { workflowId, unknown } = kind;
  const handle = client.workflow.getHandle(workflowId);
  const desc = await withTemporal(client, () => handle.describe()).catch((err) => {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  });
  if (!desc || desc.type !== kind.type) return undefined;
  const base = { workflowId, startedAt: desc.startTime.toISOString() };
  if (desc.status.name === "RUNNING") {
    // A worker that is down cannot answer; the workflow still runs.
    const status = await withTemporal(client, () => handle.query(kind.statusQuery), 5000).catch(() => undefined);
    return { ...unknown, ...status, ...base, running: true, ...(status ? {} : { error: kind.noWorker }) };
  }
  if (desc.status.name === "COMPLETED") {
    const status = (await withTemporal(client, () => handle.result())) as S;
    return { ...status, ...base, running: false };
  }
  const error = await withTemporal(client, () => handle.result()).then(
    () => undefined,
    (err: Error) => String((err.cause as Error | undefined)?.message ?? err.message),
  );
  return { ...unknown, phase: "stopped", ...base, running: false, error: `${kind.noun} ${desc.status.name.toLowerCase()}: ${error ?? "no reason recorded"}` };
}

/**
 * The running workflows of one long-running per-plan kind (standbys, binary log
 * archivers), read with `read`; of these plans only when `planIds` is given.
 * `idPrefix` is what precedes the plan id in their workflow ids.
 */
export async function runningLongRunning<S>(client: Client, type: string, idPrefix: string, read: (planId: string) => Promise<LongRunningView<S> | undefined>, planIds?: Set<string>): Promise<LongRunningView<S>[]> {
  const query = `WorkflowType = '${type}' AND ExecutionStatus = 'Running'`;
  const listed = await withTemporal(client, () => client.workflowService.listWorkflowExecutions({ namespace: client.options.namespace, query, pageSize: 1000 }));
  const out: LongRunningView<S>[] = [];
  for (const wf of listed.executions ?? []) {
    const workflowId = wf.execution?.workflowId ?? "";
    if (!workflowId.startsWith(idPrefix)) continue;
    const planId = workflowId.slice(idPrefix.length);
    if (planIds && !planIds.has(planId)) continue;
    const view = await read(planId);
    if (view?.running) out.push(view);
  }
  return out;
}

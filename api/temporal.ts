import { isGrpcServiceError, ServiceError, type Client } from "@temporalio/client";
import type { SearchAttributePair } from "@temporalio/common";
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

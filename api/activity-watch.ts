import type { Context, MiddlewareHandler } from "hono";
import type { Principal } from "./auth.js";
import { sourceAddress } from "./context.js";
import { ApiError } from "./errors.js";
import { raiseSecurityEvent, type SecurityEventKind } from "./security-events.js";

/** What a request moves, for the per-token volume watch: restores and downloads hand out data, reads only look. */
export type ActivityKind = "restore" | "download" | "read";

/** Per token and per hour; past a limit a security event is raised (and, with `block`, the token's requests of that kind are refused until the hour has passed). */
export interface ActivityLimits {
  restoresPerHour: number;
  restoreBytesPerHour: number;
  downloadsPerHour: number;
  downloadBytesPerHour: number;
  /** The seeds' "far more than usual": more than 100 reads an hour. */
  readsPerHour: number;
  block: boolean;
}

const GiB = 1024 ** 3;
export const DEFAULT_ACTIVITY_LIMITS: ActivityLimits = {
  restoresPerHour: 10,
  restoreBytesPerHour: 100 * GiB,
  downloadsPerHour: 20,
  downloadBytesPerHour: 10 * GiB,
  readsPerHour: 100,
  block: false,
};

/** The environment variables that set each limit (README "Suspicious activity"). */
export const ACTIVITY_ENV: Record<Exclude<keyof ActivityLimits, "block">, string> = {
  restoresPerHour: "CAIRN_ALERT_RESTORES_PER_HOUR",
  restoreBytesPerHour: "CAIRN_ALERT_RESTORE_BYTES_PER_HOUR",
  downloadsPerHour: "CAIRN_ALERT_DOWNLOADS_PER_HOUR",
  downloadBytesPerHour: "CAIRN_ALERT_DOWNLOAD_BYTES_PER_HOUR",
  readsPerHour: "CAIRN_ALERT_READS_PER_HOUR",
};

declare module "hono" {
  interface ContextVariableMap {
    activity: ActivityWatch;
    /** Bytes a restore or download hands out, set by its handler when it knows them. */
    transferBytes: number;
  }
}

const HOUR_MS = 60 * 60_000;
const KIND_EVENT: Record<ActivityKind, SecurityEventKind> = { restore: "restore-volume", download: "download-volume", read: "read-volume" };

interface Tally {
  /** [time, count, bytes] of each request in the last hour. */
  entries: [number, number, number][];
  /** Until when the token is flagged for this kind (the event is raised once per flag). */
  flaggedUntil: number;
}

/**
 * Counts, in this API process's memory, what each token restored, downloaded
 * and read in the last hour.
 */
export class ActivityWatch {
  private readonly tallies = new Map<string, Tally>();

  constructor(
    readonly limits: ActivityLimits,
    private readonly now: () => number = Date.now,
  ) {}

  private tally(tokenId: string, kind: ActivityKind): Tally {
    const key = `${tokenId}:${kind}`;
    let t = this.tallies.get(key);
    if (!t) this.tallies.set(key, (t = { entries: [], flaggedUntil: 0 }));
    const since = this.now() - HOUR_MS;
    while (t.entries.length && t.entries[0][0] < since) t.entries.shift();
    return t;
  }

  /** Seconds the token stays blocked for this kind, when blocking is on and it was flagged; undefined otherwise. */
  blockedFor(tokenId: string, kind: ActivityKind): number | undefined {
    if (!this.limits.block) return undefined;
    const left = this.tally(tokenId, kind).flaggedUntil - this.now();
    return left > 0 ? Math.ceil(left / 1000) : undefined;
  }

  /**
   * Counts one request that succeeded; returns what was exceeded when this one
   * crossed a limit (once per flag), for the caller to raise a security event.
   */
  count(tokenId: string, kind: ActivityKind, bytes: number): { count: number; bytes: number; limit: string } | undefined {
    const t = this.tally(tokenId, kind);
    const now = this.now();
    const [countLimit, bytesLimit] =
      kind === "restore" ? [this.limits.restoresPerHour, this.limits.restoreBytesPerHour] : kind === "download" ? [this.limits.downloadsPerHour, this.limits.downloadBytesPerHour] : [this.limits.readsPerHour, Infinity];
    t.entries.push([now, 1, bytes]);
    // Kept up to the count limit and one more: enough to know it was crossed, bounded in memory.
    if (t.entries.length > countLimit + 1) t.entries.shift();
    const count = t.entries.length;
    const total = t.entries.reduce((n, e) => n + e[2], 0);
    if (t.flaggedUntil > now) return undefined;
    const exceeded = count > countLimit ? `more than ${countLimit} ${kind}s an hour` : total > bytesLimit ? `more than ${bytesLimit} bytes ${kind === "restore" ? "restored" : "downloaded"} an hour` : undefined;
    if (!exceeded) return undefined;
    t.flaggedUntil = (t.entries[0]?.[0] ?? now) + HOUR_MS;
    return { count, bytes: total, limit: exceeded };
  }
}

/**
 * Route middleware (after the permission check): refuses a flagged token's
 * requests of this kind while blocking is on, and after a request succeeded,
 * counts it and raises a security event when the token crossed a limit.
 */
export function watchActivity(kind: ActivityKind): MiddlewareHandler {
  return async (c, next) => {
    const watch = c.get("activity") as ActivityWatch | undefined;
    const principal = c.get("principal") as Principal | undefined;
    if (!watch || !principal) return next();
    const blocked = watch.blockedFor(principal.tokenId, kind);
    if (blocked !== undefined) {
      const refusal = new ApiError(
        429,
        "Token blocked for unusual activity",
        `the token "${principal.tokenName}" made more ${kind}s in the last hour than this server allows (policy CAIRN_BLOCK_SUSPICIOUS); it may ${kind} again in ${blocked} s. An admin can see why in GET /v1/security/events`,
      );
      refusal.headers = { "Retry-After": String(blocked) };
      throw refusal;
    }
    await next();
    if (c.res.status >= 300) return;
    const crossed = watch.count(principal.tokenId, kind, kind === "read" ? 0 : (c.get("transferBytes") ?? 0));
    if (crossed) await raiseAlert(c, principal, kind, crossed, watch.limits.block);
  };
}

async function raiseAlert(c: Context, principal: Principal, kind: ActivityKind, crossed: { count: number; bytes: number; limit: string }, block: boolean): Promise<void> {
  try {
    await raiseSecurityEvent(
      c.get("deps").catalog,
      c.get("audit"),
      { kind: KIND_EVENT[kind], source: sourceAddress(c), tokenId: principal.tokenId, tokenName: principal.tokenName, blocked: block, details: { role: principal.role, lastHour: { requests: crossed.count, bytes: crossed.bytes }, exceeded: crossed.limit } },
      c.get("requestId"),
    );
  } catch (err) {
    // The request itself succeeded; a lost alert must not turn it into an error.
    console.error("could not record a security event:", err);
  }
}

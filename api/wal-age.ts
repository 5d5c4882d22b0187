import { eq, inArray } from "drizzle-orm";
import type { Catalog } from "../db/client.js";
import { plans, repositories } from "../db/schema.js";
import { walArchiveAlerts } from "../analytics/alerts.js";
import { applyDecision } from "./alerts.js";
import { repositoryTarget } from "./schedules.js";
import type { WorkerRequests } from "./worker-requests.js";

/** When a physical PostgreSQL plan's newest WAL segment reached its repository. */
export interface WalArchiveAge {
  planId: string;
  /** ISO time the newest archived segment was archived. */
  lastArchivedAt: string;
  lastArchivedWal?: string;
}

export interface WalAgeOptions {
  /** How often each plan's archive is read (CAIRN_WAL_AGE_REFRESH_SECONDS, default 60 s). */
  intervalMs?: number;
  /** Where a plan whose archive could not be read says why (once per plan and reason). */
  warn?: (message: string) => void;
}

/**
 * The WAL archive's freshness per physical PostgreSQL plan, for /metrics. WAL is
 * pushed by PostgreSQL's archive_command outside Temporal and the API never opens
 * a repository, so a loop in the API process asks a worker (the recovery-window
 * request) for each plan's newest archived segment and keeps the answers. A plan
 * whose archive cannot be read keeps its last value; the loop says why once.
 * After each round it opens or clears each plan's "WAL archive stale" alert
 * (newest segment older than the plan's RPO).
 */
export class WalAgeCache {
  private readonly values = new Map<string, WalArchiveAge>();
  private readonly warned = new Map<string, string>();
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly catalog: Catalog,
    private readonly workers: WorkerRequests,
    private readonly options: WalAgeOptions = {},
  ) {}

  /** The last known value of each plan (of those in `planIds` when given). */
  list(planIds?: Set<string>): WalArchiveAge[] {
    return [...this.values.values()].filter((v) => !planIds || planIds.has(v.planId));
  }

  /** Records what a recovery-window answer said about a plan's archive. */
  record(planId: string, window: { lastArchivedAt?: string; lastArchivedWal?: string }): void {
    if (window.lastArchivedAt) this.values.set(planId, { planId, lastArchivedAt: window.lastArchivedAt, ...(window.lastArchivedWal ? { lastArchivedWal: window.lastArchivedWal } : {}) });
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      void this.refresh()
        .catch((err) => this.warnOnce("", `the WAL archive age refresh failed: ${(err as Error).message}; it tries again`))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs ?? 60_000).unref();
        });
    };
    tick();
  }

  /** Asks a worker, plan by plan, for each physical PostgreSQL plan's newest archived WAL segment. */
  async refresh(): Promise<void> {
    const rows = (await this.catalog.select().from(plans)).filter((p) => p.source.type === "postgres" && p.source.mode === "physical");
    const ids = new Set(rows.map((p) => p.id));
    for (const id of this.values.keys()) if (!ids.has(id)) this.values.delete(id);
    if (!rows.length) return;
    const repos = new Map((await this.catalog.select().from(repositories).where(inArray(repositories.id, [...new Set(rows.map((p) => p.repositoryId))]))).map((r) => [r.id, r]));
    for (const plan of rows) {
      if (this.stopped) return;
      const repo = repos.get(plan.repositoryId);
      if (!repo) continue;
      try {
        const answer = await this.workers.recoveryWindow({ repository: repositoryTarget(repo), planId: plan.id });
        if (!answer.ok) throw new Error(answer.refusal.message);
        this.record(plan.id, answer.value);
        this.warned.delete(plan.id);
      } catch (err) {
        const still = await this.catalog.select({ id: plans.id }).from(plans).where(eq(plans.id, plan.id));
        if (still.length) this.warnOnce(plan.id, `the WAL archive of plan ${plan.name} (${plan.id}) could not be read: ${(err as Error).message}; /metrics keeps its last value and the refresh tries again`);
      }
    }
    if (this.stopped) return;
    // Plans whose archive could not be read count with their last value: an archive that stopped and cannot be read still alerts.
    const now = new Date();
    const known = rows.flatMap((p) => {
      const v = this.values.get(p.id);
      return v ? [{ ...p, lastArchivedAt: new Date(v.lastArchivedAt) }] : [];
    });
    await applyDecision(this.catalog, walArchiveAlerts(now, known), now);
  }

  private warnOnce(key: string, message: string): void {
    if (this.stopped || this.warned.get(key) === message) return;
    this.warned.set(key, message);
    this.options.warn?.(message);
  }

  /** Stops the loop without waiting for a request in flight: with no worker running, that waits up to a minute for its answer. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}

import type { Client } from "@temporalio/client";
import { inArray, max } from "drizzle-orm";
import type { Catalog } from "../db/client.js";
import { jobs } from "../db/schema.js";
import { deliverAlertNotifications, evaluateFinishedJobs, evaluatePeriodic } from "./alerts.js";
import { jobsQuery, listJobs, readJob } from "./jobs.js";

export interface JobRecorderOptions {
  /** How often Temporal is asked for jobs that closed (default 2 s). */
  intervalMs?: number;
  /** Where a sweep that failed says why (once per distinct reason); silent by default. */
  warn?: (message: string) => void;
  /** How often overdue plans and quotas are checked for alerts (default 60 s); finished jobs are evaluated on every sweep. */
  periodicAlertsMs?: number;
}

/** Closed jobs are looked for this far before the newest one recorded: visibility is eventually consistent. */
const OVERLAP_MS = 10 * 60_000;
const PAGE = 100;

/**
 * Writes every finished job to the catalog shortly after it finishes: a loop in
 * the API process asks Temporal's visibility for Cairn jobs closed since the
 * newest one recorded and records those the catalog lacks (with their steps
 * and log). Several API processes may run it; a job is recorded once.
 */
export class JobRecorder {
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;
  private stopped = false;
  private lastWarning?: string;
  private lastAlertWarning?: string;
  private lastPeriodic = 0;

  constructor(
    private readonly catalog: Catalog,
    private readonly client: Client,
    private readonly options: JobRecorderOptions = {},
  ) {}

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.sweep()
        .catch((err) => {
          const message = `the job recorder could not read finished jobs from Temporal: ${(err as Error).message}; it tries again`;
          if (message !== this.lastWarning) this.options.warn?.(message);
          this.lastWarning = message;
        })
        // Alerts are evaluated even when Temporal does not answer: an overdue plan matters most then.
        .then(() => this.evaluateAlerts())
        .catch((err) => {
          const message = `the alert evaluation failed: ${(err as Error).message}; it tries again`;
          if (message !== this.lastAlertWarning) this.options.warn?.(message);
          this.lastAlertWarning = message;
        })
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs ?? 2000).unref();
        });
    };
    tick();
  }

  /** Records the jobs closed since the newest recorded one (all closed ones on an empty catalog); returns how many it recorded. */
  async sweep(): Promise<number> {
    const [{ newest }] = await this.catalog.select({ newest: max(jobs.finishedAt) }).from(jobs);
    const since = newest ? ` AND CloseTime > '${new Date(new Date(newest).getTime() - OVERLAP_MS).toISOString()}'` : "";
    const query = `${jobsQuery({})} AND ExecutionStatus != 'Running'${since}`;
    let recorded = 0;
    let pageToken: Uint8Array | undefined;
    do {
      const page = await listJobs(this.catalog, this.client, query, PAGE, pageToken);
      if (page.jobs.length) {
        const known = new Set((await this.catalog.select({ id: jobs.id }).from(jobs).where(inArray(jobs.id, page.jobs.map((j) => j.id)))).map((r) => r.id));
        for (const job of page.jobs) {
          if (this.stopped) return recorded;
          if (known.has(job.id)) continue;
          await readJob(this.catalog, this.client, job.id);
          recorded++;
        }
      }
      pageToken = page.nextPageToken ?? undefined;
    } while (pageToken && !this.stopped);
    return recorded;
  }

  /**
   * Raises and resolves alerts for the jobs recorded since the last time, checks
   * overdue plans and quotas every `periodicAlertsMs`, and hands alerts that opened
   * or resolved to their notification channels.
   */
  async evaluateAlerts(now = new Date()): Promise<void> {
    if (this.stopped) return;
    await evaluateFinishedJobs(this.catalog, now);
    if (now.getTime() - this.lastPeriodic >= (this.options.periodicAlertsMs ?? 60_000)) {
      this.lastPeriodic = now.getTime();
      await evaluatePeriodic(this.catalog, now);
    }
    if (!this.stopped) await deliverAlertNotifications(this.catalog, this.client);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }
}

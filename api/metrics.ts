/**
 * The Prometheus exposition of GET /metrics, built afresh on each scrape from the
 * catalog (finished jobs, plans, repositories) and Temporal (running jobs, standbys'
 * and binary log archivers' lag). Values that only grow (job counts, bytes added,
 * the duration histogram) are sums over the catalog's job history, so they behave
 * as counters while that history is kept.
 * Worker gauges come from the workers' own reports (api/workers.ts).
 */
import type { Client } from "@temporalio/client";
import { inArray } from "drizzle-orm";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { isStale } from "../analytics/bottlenecks.js";
import { jobRecordFromRow } from "../analytics/records.js";
import type { Catalog } from "../db/client.js";
import { jobs, plans, repositories, type TokenScope } from "../db/schema.js";
import { JOB_KINDS, type BackupResult, type BinlogArchiverStatus, type JobKind, type StandbyStatus, type WorkerReport } from "../workflows/messages.js";
import { plansInScope, repositoriesInScope } from "./access.js";
import { runningBinlogArchivers } from "./binlog-archivers.js";
import { jobsQuery, listJobs, readJob } from "./jobs.js";
import { backlogByPriority, jobsWaitingForSlots, type PriorityName } from "./queue.js";
import { runningStandbys } from "./standbys.js";
import { withTemporal } from "./temporal.js";
import type { WalArchiveAge } from "./wal-age.js";
import { workerReports } from "./workers.js";

type JobRow = typeof jobs.$inferSelect;
type PlanRow = typeof plans.$inferSelect;
type RepositoryRow = typeof repositories.$inferSelect;

/** Seconds: from a one-file backup to a day-long one. */
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400];
/** Jobs that finished this recently are copied into the catalog by a scrape when nobody has read them yet. */
const CATCH_UP_WINDOW_MS = 24 * 3600_000;
const CATCH_UP_LIMIT = 100;

export interface MetricsInput {
  plans: PlanRow[];
  repositories: RepositoryRow[];
  jobs: JobRow[];
  /** Running jobs per kind; undefined when Temporal did not answer. */
  running?: Record<JobKind, number>;
  /** Temporal's backlog of the Cairn task queue per priority, and the jobs waiting for a concurrency slot; undefined for a scoped token or when Temporal did not answer. */
  queue?: { pendingByPriority: Record<PriorityName, number>; waitingForSlot: number };
  /** The workers' latest reports; undefined for a scoped token or when Temporal did not answer. */
  workers?: WorkerReport[];
  now?: Date;
  /** Running standbys with their last measured lag; undefined when Temporal did not answer. */
  standbys?: Pick<StandbyStatus, "planId" | "lagBytes" | "lagSeconds">[];
  /** Running binary log archivers with their last look at the server; undefined when Temporal did not answer. */
  binlogArchivers?: Pick<BinlogArchiverStatus, "planId" | "lagBytes" | "lagSeconds" | "archivedThrough" | "lastCheckedAt">[];
  /** Physical PostgreSQL plans' newest archived WAL (api/wal-age.ts), as last read by a worker. */
  walArchives?: Pick<WalArchiveAge, "planId" | "lastArchivedAt">[];
}

/** Renders the exposition text (Prometheus text format 0.0.4). */
export async function renderMetrics(input: MetricsInput): Promise<{ contentType: string; body: string }> {
  const registry = new Registry();
  const registers = [registry];
  const planLabels = ["plan_id", "plan"] as const;
  const repoLabels = ["repository_id", "repository"] as const;
  const lastSuccess = new Gauge({ name: "cairn_backup_last_success_timestamp_seconds", help: "When the plan's last successful backup finished (Unix time).", labelNames: planLabels, registers });
  const duration = new Histogram({ name: "cairn_backup_duration_seconds", help: "Time successful backups took to store their snapshot.", labelNames: planLabels, buckets: DURATION_BUCKETS, registers });
  const bytesAdded = new Counter({ name: "cairn_backup_bytes_added_total", help: "New data (before compression) successful backups added to the repository.", labelNames: planLabels, registers });
  const lastBytesAdded = new Gauge({ name: "cairn_backup_last_bytes_added", help: "New data (before compression) the plan's last successful backup added.", labelNames: planLabels, registers });
  const lastFiles = new Gauge({ name: "cairn_backup_last_files", help: "Files in the plan's last successful backup.", labelNames: planLabels, registers });
  const finished = new Counter({ name: "cairn_jobs_finished_total", help: "Finished jobs by kind, plan and outcome (completed, failed, cancelled).", labelNames: ["kind", "plan_id", "status"], registers });
  const jobDuration = new Histogram({ name: "cairn_job_duration_seconds", help: "Time completed jobs of each kind took, from start to end (waiting for a slot included).", labelNames: ["kind"], buckets: DURATION_BUCKETS, registers });
  const jobLastSuccess = new Gauge({ name: "cairn_job_last_success_timestamp_seconds", help: "When the last completed job of the kind finished, per plan and repository it worked on (Unix time): the last check, verification, prune, copy, restore, recovery or drill.", labelNames: ["kind", "plan_id", "repository_id"], registers });
  const repoSize = new Gauge({ name: "cairn_repository_size_bytes", help: "Bytes of pack files in the repository after its last successful backup.", labelNames: repoLabels, registers });
  const repoSnapshots = new Gauge({ name: "cairn_repository_snapshots", help: "Snapshots in the repository after its last successful backup.", labelNames: repoLabels, registers });
  const temporalUp = new Gauge({ name: "cairn_temporal_up", help: "1 when Temporal answered this scrape (running job counts are missing otherwise).", registers });

  const planById = new Map(input.plans.map((p) => [p.id, p]));
  const repoById = new Map(input.repositories.map((r) => [r.id, r]));
  /** Repository id -> the result of the last successful backup into it. */
  const lastBackup = new Map<string, BackupResult>();
  const sorted = [...input.jobs].sort((a, b) => (a.finishedAt?.getTime() ?? 0) - (b.finishedAt?.getTime() ?? 0));
  for (const row of sorted) {
    const record = jobRecordFromRow(row);
    if (!record) continue;
    finished.inc({ kind: row.kind, plan_id: row.planId ?? "", status: row.status });
    const plan = row.planId ? planById.get(row.planId) : undefined;
    if (record.outcome === "success") {
      jobDuration.observe({ kind: row.kind }, Math.max(0, (record.finishedAt.getTime() - row.startedAt.getTime()) / 1000));
      jobLastSuccess.set({ kind: row.kind, plan_id: row.planId ?? "", repository_id: jobRepository(row.id) ?? plan?.repositoryId ?? "" }, record.finishedAt.getTime() / 1000);
    }
    if (row.kind !== "backup" || record.outcome !== "success" || !plan) continue;
    const labels = { plan_id: plan.id, plan: plan.name };
    lastSuccess.set(labels, record.finishedAt.getTime() / 1000);
    // The snapshot step's own time, as the help says (the job's whole time is cairn_job_duration_seconds{kind}).
    duration.observe(labels, (row.result as BackupResult | null)?.durationSeconds ?? record.durationSeconds);
    bytesAdded.inc(labels, record.bytesAdded ?? 0);
    lastBytesAdded.set(labels, record.bytesAdded ?? 0);
    lastFiles.set(labels, record.files ?? 0);
    lastBackup.set(plan.repositoryId, row.result as BackupResult);
  }
  for (const [repositoryId, result] of lastBackup) {
    const repo = repoById.get(repositoryId);
    if (!repo || !result.repositoryStats) continue;
    repoSize.set({ repository_id: repo.id, repository: repo.name }, result.repositoryStats.packBytes);
    repoSnapshots.set({ repository_id: repo.id, repository: repo.name }, result.repositoryStats.snapshots);
  }
  if (input.standbys?.length) {
    const lagBytes = new Gauge({ name: "cairn_standby_replay_lag_bytes", help: "WAL the plan's standby has not replayed yet: behind the primary when it answers, else behind the repository's archive.", labelNames: planLabels, registers });
    const lagSeconds = new Gauge({ name: "cairn_standby_replay_lag_seconds", help: "Commits the plan's standby has not replayed yet, in seconds (primary heartbeat minus replayed heartbeat, else now minus the last replayed commit).", labelNames: planLabels, registers });
    for (const s of input.standbys) {
      const labels = { plan_id: s.planId, plan: planById.get(s.planId)?.name ?? "" };
      if (s.lagBytes !== undefined) lagBytes.set(labels, s.lagBytes);
      if (s.lagSeconds !== undefined) lagSeconds.set(labels, s.lagSeconds);
    }
  }
  if (input.binlogArchivers?.length) binlogArchiverGauges(input.binlogArchivers, planById, registers);
  const walArchives = (input.walArchives ?? []).filter((w) => planById.has(w.planId) && Number.isFinite(Date.parse(w.lastArchivedAt)));
  if (walArchives.length) {
    const archivedAt = new Gauge({ name: "cairn_wal_archive_last_archived_timestamp_seconds", help: "When the physical PostgreSQL plan's newest WAL segment was archived into its repository (Unix time; refreshed by a worker every CAIRN_WAL_AGE_REFRESH_SECONDS).", labelNames: planLabels, registers });
    const age = new Gauge({ name: "cairn_wal_archive_age_seconds", help: "Seconds since the physical PostgreSQL plan's newest WAL segment was archived (at this scrape): WAL written since is not in the repository yet.", labelNames: planLabels, registers });
    const now = (input.now ?? new Date()).getTime();
    for (const w of walArchives) {
      const labels = { plan_id: w.planId, plan: planById.get(w.planId)!.name };
      const at = Date.parse(w.lastArchivedAt);
      archivedAt.set(labels, at / 1000);
      age.set(labels, Math.max(0, (now - at) / 1000));
    }
  }
  temporalUp.set(input.running ? 1 : 0);
  if (input.running) {
    const running = new Gauge({ name: "cairn_jobs_running", help: "Jobs running now (workflows open in Temporal), by kind.", labelNames: ["kind"], registers });
    for (const kind of JOB_KINDS) running.set({ kind }, input.running[kind]);
  }
  if (input.queue) {
    const pending = new Gauge({ name: "cairn_queue_pending_tasks", help: "Workflow and activity tasks of the Cairn task queue waiting for a worker slot, by priority (Temporal's approximate backlog).", labelNames: ["priority"], registers });
    for (const [priority, n] of Object.entries(input.queue.pendingByPriority)) pending.set({ priority }, n);
    new Gauge({ name: "cairn_jobs_waiting_for_slot", help: "Jobs waiting for a concurrency slot (a repository's maxConcurrentJobs or CAIRN_MAX_JOBS).", registers }).set(input.queue.waitingForSlot);
  }
  if (input.workers) workerGauges(input.workers, input.now ?? new Date(), registers);
  return { contentType: registry.contentType, body: await registry.metrics() };
}

/** The repository a job named after it works on (`check-<repository id>-<time>`, and restore, verify, prune, copy); undefined for a plan's job. */
function jobRepository(jobId: string): string | undefined {
  return /^(?:restore|check|verify|prune|copy)-([0-9a-f]+)-\d{4}/.exec(jobId)?.[1];
}

/** Each running binary log archiver's lag and recovery point, as measured at its last look (every intervalSeconds). */
function binlogArchiverGauges(archivers: NonNullable<MetricsInput["binlogArchivers"]>, planById: Map<string, PlanRow>, registers: Registry[]): void {
  const labelNames = ["plan_id", "plan"] as const;
  const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames, registers });
  const lagBytes = gauge("cairn_binlog_archive_lag_bytes", "Bytes of the binary log the MySQL / MariaDB server writes that the plan's repository does not hold yet, at the archiver's last look.");
  const lagSeconds = gauge("cairn_binlog_archive_lag_seconds", "Seconds the plan's archived binary log is behind the server at the archiver's last look (0 when everything is archived).");
  const through = gauge("cairn_binlog_archive_archived_through_timestamp_seconds", "Every event the server wrote before this time is in the plan's repository: the recovery point (Unix time).");
  const checked = gauge("cairn_binlog_archive_last_check_timestamp_seconds", "When the plan's archiver last looked at the server (Unix time); while it ages the lag gauges are not refreshed.");
  const seconds = (iso: string | undefined) => (iso && Number.isFinite(Date.parse(iso)) ? Date.parse(iso) / 1000 : undefined);
  for (const a of archivers) {
    const plan = planById.get(a.planId);
    if (!plan) continue;
    const labels = { plan_id: plan.id, plan: plan.name };
    if (a.lagBytes !== undefined) lagBytes.set(labels, a.lagBytes);
    if (a.lagSeconds !== undefined) lagSeconds.set(labels, a.lagSeconds);
    const at = seconds(a.archivedThrough);
    if (at !== undefined) through.set(labels, at);
    const looked = seconds(a.lastCheckedAt);
    if (looked !== undefined) checked.set(labels, looked);
  }
}

/** Each worker's last report time, and the figures of those whose report is fresh (a stale one's would be stale values shown as current). */
function workerGauges(reports: WorkerReport[], now: Date, registers: Registry[]): void {
  const labelNames = ["worker", "host"] as const;
  const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames, registers });
  const reported = gauge("cairn_worker_last_report_timestamp_seconds", "When the worker last reported (Unix time); its other gauges are absent once that is three report intervals old.");
  const cpu = gauge("cairn_worker_cpu_usage_ratio", "The worker machine's CPU busy share (0-1) over its last report interval.");
  const memoryUsed = gauge("cairn_worker_memory_used_bytes", "Memory in use on the worker's machine (total minus available).");
  const memoryTotal = gauge("cairn_worker_memory_total_bytes", "Memory of the worker's machine.");
  const diskFree = gauge("cairn_worker_disk_free_bytes", "Free bytes of the file system holding the worker's data directory.");
  const diskTotal = gauge("cairn_worker_disk_total_bytes", "Size of the file system holding the worker's data directory.");
  const activities = gauge("cairn_worker_activities_running", "Activities (job steps) the worker runs now: its activity slots in use.");
  for (const r of reports) {
    const labels = { worker: r.identity, host: r.host };
    reported.set(labels, Date.parse(r.at) / 1000);
    if (isStale(r, now)) continue;
    cpu.set(labels, r.cpu);
    memoryUsed.set(labels, r.memory.usedBytes);
    memoryTotal.set(labels, r.memory.totalBytes);
    diskFree.set(labels, r.disk.freeBytes);
    diskTotal.set(labels, r.disk.totalBytes);
    activities.set(labels, r.activitiesRunning);
  }
}

/**
 * What a scrape shows a token: everything for an unscoped one; for a scoped one only
 * its plans and repositories and their jobs, without the platform-wide running counts.
 */
export async function gatherMetrics(catalog: Catalog, client: Client, scope: TokenScope | undefined, now = new Date()): Promise<MetricsInput> {
  const running = scope ? undefined : await countRunning(client).catch(() => undefined);
  const workers = running ? await workerReports(client).catch(() => undefined) : undefined;
  const queue = running
    ? await Promise.all([backlogByPriority(client), jobsWaitingForSlots(client)])
        .then(([pendingByPriority, waitingForSlot]) => ({ pendingByPriority, waitingForSlot }))
        .catch(() => undefined)
    : undefined;
  if (running) await catchUp(catalog, client, now).catch(() => undefined);
  const planRows = await catalog.select().from(plans).where(scope ? plansInScope(scope) : undefined);
  const repositoryRows = await catalog.select().from(repositories).where(scope ? repositoriesInScope(scope) : undefined);
  const planIds = planRows.map((p) => p.id);
  const jobRows = await catalog.select().from(jobs).where(scope ? inArray(jobs.planId, planIds.length ? planIds : [""]) : undefined);
  // Temporal that did not answer the counts is not asked again (each call waits for its deadline).
  const askLongRunning = scope !== undefined || running !== undefined;
  const inScope = scope ? new Set(planIds) : undefined;
  const [standbys, binlogArchivers] = askLongRunning
    ? await Promise.all([runningStandbys(client, inScope).catch(() => undefined), runningBinlogArchivers(client, inScope).catch(() => undefined)])
    : [undefined, undefined];
  return { plans: planRows, repositories: repositoryRows, jobs: jobRows, running, queue, workers, now, standbys, binlogArchivers };
}

async function countRunning(client: Client): Promise<Record<JobKind, number>> {
  const counts = await Promise.all(
    JOB_KINDS.map((kind) =>
      withTemporal(client, () => client.workflowService.countWorkflowExecutions({ namespace: client.options.namespace, query: jobsQuery({ kind, status: "running" }) }), 3000),
    ),
  );
  return Object.fromEntries(JOB_KINDS.map((kind, i) => [kind, Number(counts[i].count ?? 0)])) as Record<JobKind, number>;
}

/** Copies jobs that finished in the last day and were never read into the catalog, so a scrape sees every outcome. */
async function catchUp(catalog: Catalog, client: Client, now: Date): Promise<void> {
  const since = new Date(now.getTime() - CATCH_UP_WINDOW_MS).toISOString();
  const { jobs: closed } = await listJobs(catalog, client, `${jobsQuery({})} AND ExecutionStatus != 'Running' AND CloseTime > '${since}'`, CATCH_UP_LIMIT);
  if (!closed.length) return;
  const known = new Set((await catalog.select({ id: jobs.id }).from(jobs).where(inArray(jobs.id, closed.map((j) => j.id)))).map((r) => r.id));
  for (const job of closed.filter((j) => !known.has(j.id))) await readJob(catalog, client, job.id);
}

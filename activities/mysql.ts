import { existsSync } from "node:fs";
import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import type { BackupResult } from "../engine/archiver.js";
import { CairnError } from "../engine/errors.js";
import type { Repository } from "../engine/repository.js";
import { loadSnapshots, planHost, type SnapshotEntry } from "../engine/snapshot.js";
import { archiveBinlogs, binlogArchives, recoveryWindow } from "../sources/mysql/binlog.js";
import { loadBinlogPartial } from "../sources/mysql/binlog-stream.js";
import { loginOf, parseMysqlUrl, withOptionFile } from "../sources/mysql/connection.js";
import { mysqlDumps, restoreMysqlDump, takeMysqlDump, type MysqlLogicalInfo, type RestoreWords } from "../sources/mysql/logical.js";
import { mysqlPhysicalBackups, serverName, takeMysqlPhysical } from "../sources/mysql/physical.js";
import { PERMANENT_FAILURES, type Answer, type BackupInput, type MysqlRecoveryWindow, type MysqlRecoveryWindowInput, type MysqlRestoreInput, type MysqlRestoreJobResult, type MysqlRestorePreview, type MysqlSource } from "../workflows/messages.js";
import { allowedAddress, unsealPassword, type PostgresSnapshotOptions } from "./postgres.js";
import { withLockedRepository, withRepository, type ActivityDeps } from "./repository.js";

/**
 * Runs `fn` with an option file (0600, removed afterwards) holding the plan's login:
 * the password unsealed here, the host judged by the execution policy on this worker
 * and replaced by the address that was judged.
 */
export async function withPlanLogin<T>(source: MysqlSource, deps: Pick<ActivityDeps, "policy" | "secretBox">, fn: (optionFile: string) => Promise<T>): Promise<T> {
  const password = unsealPassword(source.sealedPassword, deps);
  let connection;
  try {
    connection = parseMysqlUrl(source.url);
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`${(err as Error).message}; change the plan's source.url`, PERMANENT_FAILURES.invalidRequest);
  }
  return withOptionFile(loginOf(connection, password, await allowedAddress(connection.host, deps)), fn);
}

/** Errors of the MariaDB programs that no retry fixes (wrong credentials, a database that does not exist, a missing program) fail without retry. */
export function mysqlFailure(err: unknown, planName: string): unknown {
  if (!(err instanceof CairnError)) return err;
  if (/Access denied|Unknown database|has no database|no table matches|was not found: install|is not on this machine|command denied|privilege|writes no binary log/i.test(err.message)) {
    return ApplicationFailure.nonRetryable(`plan ${planName}: ${err.message}`, PERMANENT_FAILURES.invalidRequest);
  }
  return err;
}

/** Connects once to prove the plan's server answers with these credentials; a physical plan must run where the server's data directory is. */
export async function checkMysqlSource(source: MysqlSource, deps: Pick<ActivityDeps, "policy" | "secretBox">, planName: string): Promise<void> {
  try {
    await withPlanLogin(source, deps, async (optionFile) => {
      const { datadir } = await serverName(optionFile);
      if (source.mode === "physical" && !existsSync(datadir)) {
        throw ApplicationFailure.nonRetryable(
          `plan ${planName}: the server's data directory ${datadir} is not on this worker's machine; mariadb-backup reads the data files, so run the plan's worker on the database host, or use mode "logical"`,
          PERMANENT_FAILURES.invalidRequest,
        );
      }
    });
  } catch (err) {
    throw mysqlFailure(err, planName);
  }
}

/** Takes the plan's logical dump or physical backup into the open repository. */
export async function snapshotMysql(repo: Repository, source: MysqlSource, deps: Pick<ActivityDeps, "policy" | "secretBox">, planName: string, o: PostgresSnapshotOptions): Promise<BackupResult> {
  try {
    return await withPlanLogin<BackupResult>(source, deps, (optionFile) =>
      source.mode === "physical" ? takeMysqlPhysical(repo, { ...o, optionFile }) : takeMysqlDump(repo, { ...o, optionFile, databases: source.databases, tables: source.includeTables }),
    );
  } catch (err) {
    throw mysqlFailure(err, planName);
  }
}

/**
 * The host binary log archives of a plan record: not the plan's own (planHost), so
 * the plan's retention, which counts and forgets the plan's backups, leaves the
 * logs that recovery from the kept backups needs.
 */
export function binlogHost(planId: string): string {
  return `${planHost(planId)}-binlogs`;
}

/**
 * A plan's snapshots for MySQL point-in-time recovery: its own physical backups, and
 * every binary log archive (the plan's, or one made with cairn mysql binlog-archive).
 */
export function planMysqlSnapshots(all: SnapshotEntry[], planId: string): SnapshotEntry[] {
  const backups = new Set(mysqlPhysicalBackups(all).filter((b) => b.host === planHost(planId)).map((b) => b.id));
  const archives = new Set(binlogArchives(all).map((a) => a.id));
  return all.filter((s) => backups.has(s.id) || archives.has(s.id));
}

/** The server a plan's physical backups are of (the newest one's), if it has any. */
export function planServer(all: SnapshotEntry[], planId: string): string | undefined {
  return mysqlPhysicalBackups(all).filter((b) => b.host === planHost(planId)).at(-1)?.source.server;
}

/** The dump of a logical plan that `ref` ("latest" or an id prefix) names, or why there is none. */
function planDump(all: SnapshotEntry[], planId: string, planName: string, ref: string): (SnapshotEntry & { source: MysqlLogicalInfo }) | { reason: "snapshotNotFound" | "snapshotAmbiguous"; message: string } {
  const dumps = mysqlDumps(all).filter((d) => d.host === planHost(planId));
  const matching = ref === "latest" ? dumps.slice(-1) : dumps.filter((d) => d.id.startsWith(ref));
  if (matching.length === 1) return matching[0];
  if (matching.length) return { reason: "snapshotAmbiguous", message: `${matching.length} dumps of plan ${planName} start with ${ref}; give more characters` };
  return { reason: "snapshotNotFound", message: dumps.length ? `plan ${planName} has no dump ${ref}; list them with GET /v1/snapshots` : `plan ${planName} has no dump yet; run it (POST /v1/plans/${planId}/run) first` };
}

/** The restore options as POST /v1/restores/mysql names them, for the messages that say what to change. */
const API_WORDS: RestoreWords = { clean: '"clean": true', into: '"into": "NAME"', table: '"tables"' };

/** The MySQL / MariaDB steps of plans: binary log archiving after a physical run, and a logical plan's restore. */
export function mysqlActivities(deps: ActivityDeps) {
  return {
    /**
     * Archives the server's closed binary logs the repository lacks (rotating the
     * current one first), as a physical plan with binlogs asks after each run.
     * Idempotent: a retry archives only what is still missing.
     */
    async archivePlanBinlogs(input: BackupInput): Promise<{ files: string[]; snapshotId?: string }> {
      const source = input.source;
      if (source.type !== "mysql" || source.mode !== "physical") throw ApplicationFailure.nonRetryable(`plan ${input.planName} is not a physical MySQL / MariaDB plan; binary logs are archived for those only`, PERMANENT_FAILURES.invalidRequest);
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat(), 5000);
      try {
        return await withPlanLogin(source, deps, (optionFile) =>
          withLockedRepository(input.repository, deps, { exclusive: false, operation: `binary log archive of plan ${input.planName}` }, async (repo) => {
            const r = await archiveBinlogs(repo, await loadSnapshots(repo), { optionFile, rotate: true, tags: input.tags, host: binlogHost(input.planId) });
            return { files: r.files, ...(r.result ? { snapshotId: r.result.id } : {}) };
          }),
        );
      } catch (err) {
        throw mysqlFailure(err, input.planName);
      } finally {
        clearInterval(beat);
      }
    },

    /** Restores a database (or chosen tables) of one of a logical plan's dumps into the plan's server; nothing is dropped unless clean. */
    async restoreMysqlDumpOfPlan(input: MysqlRestoreInput): Promise<MysqlRestoreJobResult> {
      try {
        return await withPlanLogin(input.source, deps, (optionFile) =>
          withLockedRepository(input.repository, deps, { exclusive: false, operation: `logical restore of plan ${input.planName}` }, async (repo) => {
            const dump = planDump(await loadSnapshots(repo), input.planId, input.planName, input.snapshotRef);
            if ("reason" in dump) throw ApplicationFailure.nonRetryable(dump.message, PERMANENT_FAILURES.invalidRequest);
            const r = await restoreMysqlDump(repo, dump, { optionFile, database: input.database, into: input.into, tables: input.tables, clean: input.clean, words: API_WORDS });
            return { snapshotId: dump.id, database: r.database, into: r.into, created: r.created, tables: r.tables };
          }),
        );
      } catch (err) {
        if (err instanceof CairnError) throw ApplicationFailure.nonRetryable(`plan ${input.planName}: ${err.message}`, PERMANENT_FAILURES.invalidRequest);
        throw err;
      }
    },
  };
}

/** What a logical restore would do, for the API's preview: read from the dump and the plan's server, nothing changed. */
export async function previewMysqlRestore(input: MysqlRestoreInput, deps: ActivityDeps): Promise<Answer<MysqlRestorePreview>> {
  return withRepository(input.repository, deps, async (repo) => {
    const dump = planDump(await loadSnapshots(repo), input.planId, input.planName, input.snapshotRef);
    if ("reason" in dump) return { ok: false, refusal: { reason: dump.reason, message: dump.message, field: "snapshotId" } };
    const r = await withPlanLogin(input.source, deps, (optionFile) => restoreMysqlDump(repo, dump, { optionFile, database: input.database, into: input.into, tables: input.tables, clean: input.clean, preview: true, words: API_WORDS })).catch((err: unknown) => {
      if (err instanceof CairnError) return { ok: false as const, refusal: { reason: "invalid" as const, message: err.message } };
      throw err;
    });
    if ("ok" in r) return r;
    return { ok: true, value: { snapshotId: dump.id, snapshotTime: dump.time, database: r.database, into: r.into, tables: r.tables, ...r.preview! } };
  });
}

/** A physical plan's recovery window: its backups and the archived binary logs that follow them. */
export async function mysqlRecoveryWindowOf(input: MysqlRecoveryWindowInput, deps: ActivityDeps): Promise<MysqlRecoveryWindow> {
  return withRepository(input.repository, deps, async (repo) => {
    const all = await loadSnapshots(repo);
    const server = planServer(all, input.planId);
    if (!server) return { physicalBackups: 0, archivedBinlogs: 0 };
    return recoveryWindow(planMysqlSnapshots(all, input.planId), server, await loadBinlogPartial(repo, server));
  });
}

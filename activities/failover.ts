import { promises as fs } from "node:fs";
import * as path from "node:path";
import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import { CairnError } from "../engine/errors.js";
import { hookRefusal } from "../policy/failover.js";
import { realPathRefusal } from "../policy/paths.js";
import { loadSnapshots, planHost } from "../engine/snapshot.js";
import { clusterSystemId, WalArchive } from "../sources/postgres/archive.js";
import { baseBackups } from "../sources/postgres/basebackup.js";
import { connectionEnv, parseConnectionUrl, pinnedUrl, type PgConnection } from "../sources/postgres/connection.js";
import { switchPgbouncer, type PgbouncerSettings } from "../sources/postgres/cutover.js";
import { localWalEnd, lsnBytes, postmasterPid, quickUrl, runHook, serverState, stopServer, type WalEnd } from "../sources/postgres/failover.js";
import { readHeartbeat, writeHeartbeat } from "../sources/postgres/heartbeat.js";
import { query } from "../sources/postgres/tools.js";
import { formatLsn, parseLsn, parseSegmentName, segnoOf, walFileKind } from "../sources/postgres/wal.js";
import { FAILOVER_REFUSED, PERMANENT_FAILURES, type FailoverInput, type FailoverValidation } from "../workflows/messages.js";
import { WAL_SOCKET, type WalSocketServer } from "../sources/postgres/wal-socket.js";
import { openRepository, policyFailure, withRepository, type ActivityDeps } from "./repository.js";
import { allowedAddress, openConnection, unsealPassword } from "./postgres.js";
import { serveStandbyWal, walSocketDir } from "./standby.js";
import { loopbackUrl } from "./recovery.js";

const invalid = (message: string) => ApplicationFailure.nonRetryable(message, PERMANENT_FAILURES.invalidRequest);
/** A failover stopped on purpose: the message says what was (not) done and what to do. */
const refused = (message: string) => ApplicationFailure.nonRetryable(message, FAILOVER_REFUSED);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The scratch table the verify step writes (and the cut-over path's check): proof the new primary takes writes. */
const CHECK_TABLE = "public.cairn_failover_check";

/** What the archive step found on the old primary while it still answered. */
export interface ArchiveOutcome {
  skipped?: string;
  /** The old primary's WAL end once it took no more writes, and the last segment, now archived. */
  lsn?: string;
  segment?: string;
  heartbeat?: { at: string; seq: string };
  warnings: string[];
}

export interface FenceOutcome {
  method: "data directory" | "hook";
  /** The old primary was running (data directory) and was stopped now. */
  stopped?: boolean;
  /** Where the old primary's local WAL ends (its data directory is on this host). */
  walEnd?: WalEnd;
  hookOutput?: string;
}

export interface PromoteOutcome {
  /** The last WAL position the new primary replayed before it left recovery. */
  replayLsn: string;
  /** The time of the last commit it replayed. */
  lastReplayedCommit?: string;
  heartbeat?: { at: string; seq: string };
  timeline: number;
  acceptingAt: string;
}

export interface CutoverOutcome {
  detail: string;
  /** A write went through the cut-over path (PgBouncer) at this time. */
  acceptingAt?: string;
}

/** The standby, or the restored copy, as the plan's user reaches it on the worker's loopback. */
function localConnection(input: FailoverInput, port: number, deps: ActivityDeps): PgConnection {
  return { ...parseConnectionUrl(input.source.url), host: "127.0.0.1", port, url: loopbackUrl(input.source.url, port), password: unsealPassword(input.source.sealedPassword, deps) };
}

/**
 * The plan's server as every other PostgreSQL activity reaches it: its host judged
 * by the execution policy on this worker and the URL pinned to the address judged.
 */
async function oldPrimary(input: FailoverInput, deps: ActivityDeps): Promise<PgConnection> {
  const { url } = await openConnection(input.source, deps);
  return { ...parseConnectionUrl(input.source.url), url, password: unsealPassword(input.source.sealedPassword, deps) };
}

function newPrimaryPort(input: FailoverInput): number {
  return (input.standby ?? input.into)!.port;
}

const heartbeatText = (h: { at: Date; seq: bigint } | undefined) => (h ? { at: h.at.toISOString(), seq: String(h.seq) } : undefined);

/**
 * The steps of failoverWorkflow. Each may run again after a worker died: the
 * archive step finds the old primary read-only (or gone), fencing finds it
 * stopped, promotion finds the standby already promoted.
 */
export function failoverActivities(deps: ActivityDeps) {
  /**
   * The WAL socket of a standby set up by the platform (its restore_command asks that
   * socket), served from the plan's repository; undefined for any other standby.
   */
  const serveWalWhilePromoting = async (input: FailoverInput): Promise<{ close(): Promise<void> } | undefined> => {
    if (!input.standby) return undefined;
    const dataDir = input.standby.dataDir;
    const auto = await fs.readFile(path.join(dataDir, "postgresql.auto.conf"), "utf8").catch(() => "");
    if (!auto.includes(`--via "${path.join(walSocketDir(dataDir), WAL_SOCKET)}"`)) return undefined;
    const repo = await openRepository(input.repository, deps);
    let wal: WalSocketServer;
    try {
      wal = await serveStandbyWal(deps, dataDir, repo, await clusterSystemId(dataDir));
    } catch (err) {
      await repo.close();
      throw err;
    }
    return {
      close: async () => {
        await wal.close();
        await repo.close();
      },
    };
  };

  /** Every path and program the failover would touch, held to the execution policy. */
  const checkPolicy = async (input: FailoverInput) => {
    const checks = [
      input.fence.dataDir ? realPathRefusal(deps.policy, "failover", input.fence.dataDir, "the old primary's data directory") : undefined,
      input.fence.hook ? hookRefusal(deps.policy, input.fence.hook[0]) : undefined,
      input.standby ? realPathRefusal(deps.policy, "failover", input.standby.dataDir, "the standby's data directory") : undefined,
      input.cutover?.type === "pgbouncer" ? realPathRefusal(deps.policy, "failover", input.cutover.configFile, "PgBouncer's configuration") : undefined,
      input.cutover?.type === "hook" ? hookRefusal(deps.policy, input.cutover.command[0]) : undefined,
    ];
    for (const check of checks) {
      const refusal = await check;
      if (refusal) throw policyFailure(refusal);
    }
    if (input.cutover?.type === "pgbouncer" && input.cutover.adminUrl) await pgbouncerAdminUrl(input.cutover.adminUrl);
  };

  /**
   * PgBouncer's admin console, which the cut-over signs in to with the plan's password:
   * its host judged by the execution policy like the plan's server, the URL pinned to
   * the address judged.
   */
  const pgbouncerAdminUrl = async (adminUrl: string): Promise<string> => {
    let admin: PgConnection;
    try {
      admin = parseConnectionUrl(adminUrl);
    } catch (err) {
      throw invalid(`cutover.adminUrl: ${(err as Error).message}`);
    }
    return pinnedUrl(admin.url, await allowedAddress(admin.host, deps));
  };

  /** The newest archived segment of a system (on the highest timeline), and the segment size. */
  const archiveEnd = async (input: FailoverInput, systemId: string, segmentSize: number): Promise<{ segment?: string; endLsn?: bigint }> => {
    return withRepository(input.repository, deps, async (repo) => {
      const names = [...(await new WalArchive(repo).list(systemId)).keys()].filter((n) => walFileKind(n) === "segment").sort();
      const newest = names.at(-1);
      if (!newest) return {};
      const id = parseSegmentName(newest, segmentSize);
      return { segment: newest, endLsn: (id.segno + 1n) * BigInt(segmentSize) };
    });
  };

  /** The cluster of the plan's newest base backup (what a cold failover restores). */
  const planSystem = async (input: FailoverInput): Promise<string | undefined> => {
    return withRepository(input.repository, deps, async (repo) => {
      return baseBackups(await loadSnapshots(repo)).filter((b) => b.host === planHost(input.planId)).at(-1)?.source.systemId;
    });
  };

  return {
    /**
     * Checks the request against the policy and the servers, measures the
     * standby's lag, and refuses a standby behind the RPO limit (unless forced).
     * Changes nothing: a dry run ends here.
     */
    async validateFailover(input: FailoverInput): Promise<FailoverValidation> {
      const startedAt = new Date().toISOString();
      if (!input.fence.dataDir && !input.fence.hook) throw invalid("fence: give the old primary's dataDir (on the worker's host) or a fencing hook; a failover never promotes without fencing");
      await checkPolicy(input);
      const old = await oldPrimary(input, deps);
      const oldEnv = connectionEnv(old.password);
      const oldState = await serverState(old.url, oldEnv);
      if (oldState?.inRecovery) throw invalid(`the plan's server ${old.host}:${old.port} is in recovery: it is not a primary (was the failover already done?); point the plan at the current primary`);
      let oldLsn: string | undefined;
      let systemId: string | undefined;
      if (oldState) [[oldLsn, systemId]] = await query(quickUrl(old.url), "SELECT pg_current_wal_lsn(), (SELECT system_identifier FROM pg_control_system())", oldEnv);

      let standby: FailoverValidation["standby"];
      const steps: FailoverValidation["plan"] = [{ name: "validate", action: "check the policy, the servers and the standby's lag" }];
      steps.push({ name: "archive", action: oldState ? `make ${old.host}:${old.port} read-only, write a heartbeat, switch its WAL and wait until the archive has the last segment` : `skip: the old primary ${old.host}:${old.port} does not answer` });
      steps.push({ name: "fence", action: input.fence.dataDir ? `stop the server of ${input.fence.dataDir} (${input.fence.mode ?? "fast"}), then confirm ${old.host}:${old.port} does not answer` : `run the fencing hook ${input.fence.hook![0]}, then confirm ${old.host}:${old.port} does not answer` });
      if (input.standby) {
        const conn = localConnection(input, input.standby.port, deps);
        const env = connectionEnv(conn.password);
        const state = await serverState(conn.url, env);
        if (!state) throw invalid(`the standby on 127.0.0.1:${input.standby.port} does not answer; start it (pg_ctl -D ${input.standby.dataDir} start) or give the standby's port`);
        if (!state.inRecovery) throw invalid(`the server on 127.0.0.1:${input.standby.port} is not in recovery: it is a primary already, not a standby to promote`);
        if (!(await postmasterPid(input.standby.dataDir))) throw invalid(`no server runs from ${input.standby.dataDir}; give the standby's data directory`);
        const [[replayLsn, standbySystem, segmentSize]] = await query(conn.url, "SELECT coalesce(pg_last_wal_replay_lsn(), '0/0'), (SELECT system_identifier FROM pg_control_system()), current_setting('wal_segment_size')", env);
        if (systemId && standbySystem !== systemId) throw invalid(`the standby on port ${input.standby.port} is a copy of system ${standbySystem}, not of the plan's server (system ${systemId}); give the plan's standby`);
        systemId ??= standbySystem;
        let lagBytes: number;
        let lagSeconds: number | null = null;
        let lagAgainst: "primary" | "archive";
        if (oldLsn) {
          lagAgainst = "primary";
          lagBytes = lsnBytes(oldLsn, replayLsn);
          const [a, b] = await Promise.all([readHeartbeat({ ...old, url: quickUrl(old.url) }).catch(() => undefined), readHeartbeat(conn).catch(() => undefined)]);
          if (a && b) lagSeconds = Math.max(0, (a.at.getTime() - b.at.getTime()) / 1000);
        } else {
          lagAgainst = "archive";
          const size = Number(segmentSize.replace(/MB$/, "")) * (segmentSize.endsWith("MB") ? 1024 * 1024 : 1);
          const end = await archiveEnd(input, systemId, size);
          // The archive holds whole segments: a standby replaying the newest one has all the archive can give.
          lagBytes = end.endLsn === undefined || segnoOf(parseLsn(replayLsn), size) >= end.endLsn / BigInt(size) - 1n ? 0 : lsnBytes(formatLsn(end.endLsn), replayLsn);
        }
        standby = { replayLsn, lagBytes, lagSeconds, lagAgainst };
        const limit = input.rpoLimit;
        const over = limit && ((limit.bytes !== undefined && lagBytes > limit.bytes) || (limit.seconds !== undefined && lagSeconds !== null && lagSeconds > limit.seconds));
        if (over && !input.force) {
          throw refused(`the standby is ${lagBytes} bytes${lagSeconds !== null ? ` and ${lagSeconds.toFixed(1)} s` : ""} behind the ${lagAgainst === "primary" ? "old primary" : "archive"} (replayed to ${replayLsn}), more than the RPO limit (${[limit.bytes !== undefined ? `${limit.bytes} bytes` : "", limit.seconds !== undefined ? `${limit.seconds} s` : ""].filter(Boolean).join(", ")}); nothing was changed. Wait until it catches up, or send force: true to fail over and lose what it lacks`);
        }
        steps.push({ name: "promote", action: `promote the standby on 127.0.0.1:${input.standby.port} (pg_promote) once it has replayed what the archive holds` });
      } else {
        steps.push({ name: "restore", action: `restore the latest consistent state of the plan's archive into ${input.into!.dataDir} and start it on 127.0.0.1:${input.into!.port}` });
        steps.push({ name: "promote", action: "wait until the restored server has replayed the archive and accepts writes" });
      }
      if (!systemId && input.into) systemId = await planSystem(input);
      if (!systemId) throw invalid(`neither the old primary nor a standby answers and plan ${input.planName} has no base backup, so the cluster cannot be told; give a standby, or run the plan once`);
      steps.push({ name: "verify", action: `write a row into ${CHECK_TABLE}${input.checkSql?.length ? ` and run ${input.checkSql.length} check quer${input.checkSql.length === 1 ? "y" : "ies"}` : ""}` });
      steps.push({
        name: "cutover",
        action: !input.cutover ? "none given: clients must be pointed at the new primary by hand" : input.cutover.type === "pgbouncer" ? `point PgBouncer's [databases] entry ${input.cutover.database} in ${input.cutover.configFile} at the new primary, reload, and write through it` : `run the cut-over hook ${input.cutover.command[0]} with NEW_HOST and NEW_PORT`,
      });
      steps.push({ name: "notify", action: "record the result (GET /v1/failovers/{id})" });
      return { startedAt, oldPrimary: { answers: !!oldState, ...(oldLsn ? { lsn: oldLsn } : {}), ...(systemId ? { systemId } : {}) }, ...(standby ? { standby } : {}), systemId, plan: steps };
    },

    /**
     * While the old primary still answers: make it refuse new writes (so nothing
     * commits after the WAL that is archived), write a heartbeat, switch to a new
     * WAL segment and wait until the archive has the last one.
     */
    async archiveLastWal(input: FailoverInput, systemId: string): Promise<ArchiveOutcome> {
      const ctx = Context.current();
      const old = await oldPrimary(input, deps);
      const env = connectionEnv(old.password);
      const url = quickUrl(old.url);
      const state = await serverState(old.url, env);
      if (!state) return { skipped: `the old primary ${old.host}:${old.port} does not answer`, warnings: [] };
      if (state.inRecovery) return { skipped: `the old primary ${old.host}:${old.port} is in recovery`, warnings: [] };
      const warnings: string[] = [];
      const heartbeat = await writeHeartbeat({ ...old, url }).catch((err: Error) => {
        warnings.push(`no heartbeat written on the old primary: ${err.message}`);
        return undefined;
      });
      await query(url, "ALTER SYSTEM SET default_transaction_read_only = on", env)
        .then(() => query(url, "SELECT pg_reload_conf()", env))
        .then(() => query(url, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()", env))
        .catch((err: Error) => warnings.push(`the old primary could not be made read-only before its last WAL was archived (${err.message.split("\n")[0]}); what it committed after that is lost`));
      const [[segment, lsn]] = await query(url, "SELECT pg_walfile_name(pg_switch_wal()), pg_current_wal_lsn()", env);
      const deadline = Date.now() + 10 * 60_000;
      await withRepository(input.repository, deps, async (repo) => {
        const archive = new WalArchive(repo);
        while (!(await archive.list(systemId)).has(segment)) {
          ctx.heartbeat();
          if (Date.now() > deadline) throw new CairnError(`the archive did not receive ${segment} within 10 minutes; check the old primary's archive_command (SELECT * FROM pg_stat_archiver)`);
          await sleep(500);
        }
      });
      return { lsn, segment, ...(heartbeat ? { heartbeat: heartbeatText(heartbeat) } : {}), warnings };
    },

    /**
     * Stops the old primary (its data directory on this host, or the operator's
     * hook), then makes sure it does not answer. Anything short of that stops
     * the failover before promotion: never two writable primaries.
     */
    async fenceOldPrimary(input: FailoverInput): Promise<FenceOutcome> {
      await checkPolicy(input);
      const old = await oldPrimary(input, deps);
      const env = connectionEnv(old.password);
      const where = `${old.host}:${old.port}`;
      let outcome: FenceOutcome;
      if (input.fence.dataDir) {
        const stopped = await stopServer(input.fence.dataDir, input.fence.mode ?? "fast").catch((err: Error) => {
          throw refused(`fencing failed: ${err.message}; nothing was promoted`);
        });
        outcome = { method: "data directory", stopped };
      } else {
        const hook = input.fence.hook!;
        const run = await runHook(hook, { OLD_HOST: old.host, OLD_PORT: String(old.port), FAILOVER_REASON: input.reason }).catch((err: Error) => ({ code: -1, output: err.message }));
        if (run.code !== 0) throw refused(`the fencing hook ${hook[0]} ${run.code === null ? "was killed (timed out?)" : `exited ${run.code}`}${run.output ? `: ${run.output.slice(-500)}` : ""}; nothing was promoted. Make sure the old primary ${where} is down (or fix the hook) and start the failover again`);
        outcome = { method: "hook", ...(run.output ? { hookOutput: run.output.slice(-500) } : {}) };
      }
      // Confirm: several tries, so a server still shutting down (or restarted by a supervisor) is seen.
      for (let i = 0; i < 4; i++) {
        if (await serverState(old.url, env)) {
          throw refused(`the old primary ${where} still answers after fencing (${outcome.method === "hook" ? `the hook ${input.fence.hook![0]} exited 0` : `its data directory ${input.fence.dataDir} was stopped; another server answers there`}); nothing was promoted. Stop it by hand (pg_ctl stop -m immediate, or cut it off the network), then start the failover again. If the archive step made it read-only and it is to stay the primary, ALTER SYSTEM RESET default_transaction_read_only and SELECT pg_reload_conf() undo that`);
        }
        await sleep(750);
      }
      if (input.fence.dataDir) {
        outcome.walEnd = await localWalEnd(input.fence.dataDir).catch(() => undefined);
      }
      return outcome;
    },

    /**
     * Promotes the standby (pg_promote) and waits until it accepts writes.
     * PostgreSQL replays every segment restore_command still finds in the archive
     * before it ends recovery; where replay ended and the last commit it replayed
     * stay readable after promotion. A restored copy (no standby) ended recovery
     * by itself: this reads where it landed. Run again on a promoted standby, it only reads.
     * A platform standby (restore_command = wal-fetch --via its socket) is served its
     * WAL by this step while it promotes: the released standby workflow no longer does.
     */
    async promoteNewPrimary(input: FailoverInput): Promise<PromoteOutcome> {
      const ctx = Context.current();
      const conn = localConnection(input, newPrimaryPort(input), deps);
      const env = connectionEnv(conn.password);
      const inRecovery = async () => (await query(conn.url, "SELECT pg_is_in_recovery()", env))[0][0] === "t";
      if (await inRecovery()) {
        const wal = await serveWalWhilePromoting(input);
        try {
          await query(conn.url, "SELECT pg_promote(false)", env).catch((err: Error) => {
            if (!/recovery is not in progress/.test(err.message)) throw err;
          });
          while (await inRecovery()) {
            ctx.heartbeat();
            await sleep(100);
          }
        } finally {
          await wal?.close();
        }
      }
      const acceptingAt = new Date().toISOString();
      const [[lsn, commit, walFile]] = await query(conn.url, "SELECT coalesce(pg_last_wal_replay_lsn(), '0/0'), to_json(pg_last_xact_replay_timestamp()) #>> '{}', pg_walfile_name(pg_current_wal_insert_lsn())", env);
      const heartbeat = await readHeartbeat(conn).catch(() => undefined);
      return { replayLsn: lsn, ...(commit ? { lastReplayedCommit: new Date(commit).toISOString() } : {}), ...(heartbeat ? { heartbeat: heartbeatText(heartbeat) } : {}), timeline: parseInt(walFile.slice(0, 8), 16), acceptingAt };
    },

    /** Writes a row into the scratch table and runs the operator's checks on the new primary; a check that fails stops the failover before the cut-over. */
    async verifyNewPrimary(input: FailoverInput): Promise<{ acceptingAt: string; checks: { sql: string; rows: string[] }[] }> {
      const conn = localConnection(input, newPrimaryPort(input), deps);
      const env = connectionEnv(conn.password);
      await query(conn.url, `CREATE TABLE IF NOT EXISTS ${CHECK_TABLE} (at timestamptz NOT NULL DEFAULT now(), reason text); INSERT INTO ${CHECK_TABLE} (reason) VALUES ('${input.reason.replace(/'/g, "''")}')`, env).catch((err: Error) => {
        throw refused(`the new primary on 127.0.0.1:${conn.port} does not accept a write (${err.message.split("\n")[0]}); clients were not switched. Look at its log before pointing anything at it`);
      });
      const acceptingAt = new Date().toISOString();
      const checks = [];
      for (const sql of input.checkSql ?? []) {
        const rows = await query(conn.url, sql, env).catch((err: Error) => {
          throw refused(`the check query failed on the new primary (127.0.0.1:${conn.port}), which runs, promoted, but clients were not switched to it: ${sql}: ${err.message.split("\n")[0]}. Fix what the check found, then switch clients by hand`);
        });
        checks.push({ sql, rows: rows.slice(0, 5).map((r) => r.join("|")) });
      }
      return { acceptingAt, checks };
    },

    /**
     * Switches clients to the new primary (PgBouncer or the operator's hook). A
     * switch that fails leaves the new primary running and says what to do by hand.
     * Through PgBouncer, a write is then made the way clients connect: its time
     * is when the new primary accepted writes through the cut-over path.
     */
    async cutOver(input: FailoverInput): Promise<CutoverOutcome> {
      const ctx = Context.current();
      await checkPolicy(input);
      const spec = input.cutover!;
      const port = newPrimaryPort(input);
      const host = "127.0.0.1";
      const byHand = `The new primary runs on ${host}:${port} and accepts writes; point clients at it by hand`;
      if (spec.type === "hook") {
        const run = await runHook(spec.command, { NEW_HOST: host, NEW_PORT: String(port), FAILOVER_REASON: input.reason }).catch((err: Error) => ({ code: -1, output: err.message }));
        if (run.code !== 0) throw refused(`the cut-over hook ${spec.command[0]} ${run.code === null ? "was killed (timed out?)" : `exited ${run.code}`}${run.output ? `: ${run.output.slice(-500)}` : ""}. ${byHand} (or run the hook again with NEW_HOST=${host} NEW_PORT=${port})`);
        return { detail: `the hook ${spec.command[0]} exited 0${run.output ? `: ${run.output.slice(-200)}` : ""}` };
      }
      // The plan's user and password sign in through PgBouncer; the old primary itself is not reached here.
      const plan = { ...parseConnectionUrl(input.source.url), password: unsealPassword(input.source.sealedPassword, deps) };
      const adminUrl = spec.adminUrl ? await pgbouncerAdminUrl(spec.adminUrl) : undefined;
      // Where the check write signs in with the plan's password (PgBouncer's listen_addr), judged like any
      // server the worker reaches, and the pidfile to be signalled, judged like the configuration file.
      let listenAddress = "";
      const vet = async (settings: PgbouncerSettings, signal: boolean) => {
        listenAddress = await allowedAddress(settings.host, deps);
        if (!signal || !settings.pidfile) return;
        const refusal = await realPathRefusal(deps.policy, "failover", settings.pidfile, "PgBouncer's pidfile");
        if (refusal) throw policyFailure(refusal);
      };
      let before: string;
      let listen: PgbouncerSettings;
      try {
        ({ before, settings: listen } = await switchPgbouncer({ ...spec, adminUrl }, host, port, connectionEnv(plan.password), vet));
      } catch (err) {
        if (err instanceof ApplicationFailure) throw err;
        throw refused(`the PgBouncer switch failed: ${(err as Error).message}. ${byHand} (set the [databases] entry ${spec.database} in ${spec.configFile} to host=${host} port=${port}, then RELOAD)`);
      }
      const u = new URL(plan.url);
      u.hostname = listen.host;
      u.port = String(listen.port);
      u.pathname = `/${encodeURIComponent(spec.database)}`;
      const through = pinnedUrl(u.toString(), listenAddress);
      const env = connectionEnv(plan.password);
      const deadline = Date.now() + 120_000;
      for (;;) {
        ctx.heartbeat();
        const wrote = await query(quickUrl(through, 5), `CREATE TABLE IF NOT EXISTS ${CHECK_TABLE} (at timestamptz NOT NULL DEFAULT now(), reason text); INSERT INTO ${CHECK_TABLE} (reason) VALUES ('through PgBouncer')`, env).then(
          () => undefined,
          (err: Error) => err,
        );
        if (!wrote) return { detail: `PgBouncer's ${spec.database} was ${before}; now host=${host} port=${port}`, acceptingAt: new Date().toISOString() };
        if (Date.now() > deadline) throw refused(`PgBouncer was pointed at ${host}:${port} and reloaded, but a write through it (${listen.host}:${listen.port}/${spec.database}) still fails: ${wrote.message.split("\n")[0]}. The new primary runs; check PgBouncer's log and its [databases] entry`);
        await sleep(500);
      }
    },
  };
}

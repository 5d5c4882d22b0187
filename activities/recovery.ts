import { spawn } from "node:child_process";
import { closeSync, openSync, promises as fs } from "node:fs";
import { createServer } from "node:net";
import * as path from "node:path";
import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import { CairnError } from "../engine/errors.js";
import type { Repository } from "../engine/repository.js";
import { loadSnapshots, planHost, type SnapshotEntry } from "../engine/snapshot.js";
import { realPathRefusal } from "../policy/paths.js";
import { WalArchive } from "../sources/postgres/archive.js";
import { baseBackups } from "../sources/postgres/basebackup.js";
import { connectionEnv, parseConnectionUrl } from "../sources/postgres/connection.js";
import { ClusterArchive, type RecoveryTarget } from "../sources/postgres/recovery.js";
import { ensureDeltaTarget, ensureEmptyTarget, writeDataDir } from "../sources/postgres/restore.js";
import { pgTool, query } from "../sources/postgres/tools.js";
import { parseLsn, walFileKind } from "../sources/postgres/wal.js";
import { PERMANENT_FAILURES, SAFE_DATA_DIR, type RecoveryChoice, type RecoveryInput, type RecoveryLanding, type RecoveryTargetSpec, type RecoveryWindow } from "../workflows/messages.js";
import { permanentOrSame, policyFailure, withLockedRepository, withRepository, type ActivityDeps } from "./repository.js";

/** Where the WAL a recovery replays is put inside the new data directory; restore_command copies from it (it runs in the data directory). */
const WAL_DIR = "cairn_recovery_wal";
const LOG_FILE = "cairn_recovery.log";
/** The replay pause state, asked only during recovery (the function fails once the server is promoted). */
const PAUSE_STATE = "CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() ELSE 'not paused' END";

const invalid = (message: string) => ApplicationFailure.nonRetryable(message, PERMANENT_FAILURES.invalidRequest);

/** The target as the recovery module reads it; a spec that cannot be read fails without retry. */
export function recoveryTarget(spec: RecoveryTargetSpec): { target: RecoveryTarget; text?: string } {
  try {
    if ("time" in spec) {
      const time = new Date(spec.time);
      if (Number.isNaN(time.getTime())) throw new CairnError(`cannot read the time "${spec.time}"; write it as ISO 8601, such as 2026-11-30T10:15:00.250Z`);
      return { target: { kind: "time", time }, text: spec.time };
    }
    if ("lsn" in spec) return { target: { kind: "lsn", lsn: parseLsn(spec.lsn) }, text: spec.lsn };
    if ("xid" in spec) return { target: { kind: "xid", xid: BigInt(spec.xid) }, text: spec.xid };
    if ("name" in spec) return { target: { kind: "name", name: spec.name }, text: spec.name };
    return { target: { kind: "latest" } };
  } catch (err) {
    throw invalid((err as Error).message);
  }
}

/** The cluster whose base backups the plan took: the system of its newest one. */
export function planCluster(snapshots: SnapshotEntry[], planId: string): string | undefined {
  return baseBackups(snapshots).filter((b) => b.host === planHost(planId)).at(-1)?.source.systemId;
}

/** What a plan's repository can recover: from the end of its oldest base backup to the last archived commit. */
export async function recoveryWindowOf(repo: Repository, snapshots: SnapshotEntry[], planId: string): Promise<RecoveryWindow> {
  const systemId = planCluster(snapshots, planId);
  if (!systemId) return { baseBackups: 0 };
  const cluster = await ClusterArchive.load(repo, systemId, snapshots);
  const w = await cluster.window();
  const last = await cluster.lastArchived();
  return {
    systemId,
    baseBackups: w.backups,
    ...(last ? { lastArchivedAt: last.at, lastArchivedWal: last.file } : {}),
    ...(w.earliest ? { earliest: { time: w.earliest.time, lsn: w.earliest.lsn, snapshotId: w.earliest.backup } } : {}),
    ...(w.latest ? { latest: w.latest } : {}),
    backups: w.reach.map(({ backup, ...r }) => ({ snapshotId: backup, ...r })),
  };
}

/** The recovered server as the plan's user reaches it: same roles and passwords as the server it was copied from. */
export function recoveredConnection(input: Pick<RecoveryInput, "source" | "into">, deps: ActivityDeps): { url: string; env: NodeJS.ProcessEnv } {
  return { url: loopbackUrl(input.source.url, input.into.port), env: connectionEnv(input.source.sealedPassword ? deps.secretBox.open(input.source.sealedPassword) : undefined) };
}

/** The plan's URL (user, database, connect_timeout) pointed at a server this worker runs on a loopback port; its other parameters dropped. */
export function loopbackUrl(planUrl: string, port: number): string {
  const u = new URL(parseConnectionUrl(planUrl).url);
  u.hostname = "127.0.0.1";
  u.port = String(port);
  for (const key of [...u.searchParams.keys()]) if (key !== "connect_timeout") u.searchParams.delete(key);
  return u.toString();
}

/** The owner of the data directory: the server runs as it (PostgreSQL refuses to run as root). */
export async function serverUser(dir: string): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const st = await fs.stat(dir);
  if (st.uid === 0) throw invalid(`the data directory ${dir} would belong to root, and PostgreSQL refuses to run as root: back up a cluster owned by its own user, or run the worker as that user`);
  return { uid: st.uid, gid: st.gid };
}

/** The postmaster's pid from postmaster.pid, when that process is alive. */
export async function runningServer(dir: string): Promise<number | undefined> {
  const text = await fs.readFile(path.join(dir, "postmaster.pid"), "utf8").catch(() => undefined);
  const pid = Number(text?.split("\n")[0]);
  if (!pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

export async function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(true));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(false)));
  });
}

/** The last lines of the log of a server started by startServer. */
export async function logTail(dir: string): Promise<string> {
  const text = await fs.readFile(path.join(dir, LOG_FILE), "utf8").catch(() => "");
  return text.trim().split("\n").slice(-5).join("\n");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts PostgreSQL on a restored data directory, as the directory's owner, on
 * 127.0.0.1 and `port`, not archiving, answering read-only queries while it
 * recovers. Returns whether the process it started has exited since (a server
 * that stops at once leaves no postmaster.pid to look at).
 */
export async function startServer(dir: string, port: number): Promise<() => boolean> {
  const owner = await serverUser(dir);
  const log = openSync(path.join(dir, LOG_FILE), "a", 0o600);
  if (owner) await fs.chown(path.join(dir, LOG_FILE), owner.uid, owner.gid);
  const settings = { port: String(port), listen_addresses: "127.0.0.1", unix_socket_directories: "", archive_mode: "off", hot_standby: "on" };
  const args = ["-D", dir, ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])];
  // Only PATH: the worker's own variables (its secret key among them) stay out of the server's environment.
  const child = spawn(pgTool("postgres"), args, { detached: true, stdio: ["ignore", log, log], cwd: dir, env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, ...(owner ?? {}) });
  let gone = false;
  child.once("exit", () => (gone = true));
  child.unref();
  closeSync(log);
  return () => gone;
}

/** Stops the server running on a data directory (fast shutdown: sessions end, nothing is lost) and waits up to a minute until it has; false when none ran. */
export async function stopServer(dir: string): Promise<boolean> {
  const pid = await runningServer(dir);
  if (!pid) return false;
  process.kill(pid, "SIGINT");
  for (let i = 0; i < 300 && (await runningServer(dir)); i++) await sleep(200);
  return true;
}

/** A data directory a recovery or standby writes, allowed by the policy: under the restore roots, or for a drill under the drill directory. */
export async function allowedDataDir(deps: ActivityDeps, dir: string, use: "restore" | "drill", field: string): Promise<void> {
  if (!SAFE_DATA_DIR.test(dir)) throw invalid(`${field} ${dir}: use an absolute path of letters, digits, ".", "_", "-" and "/" (PostgreSQL passes it to shell commands)`);
  const refusal = await realPathRefusal(deps.policy, use, dir).catch((err: NodeJS.ErrnoException) => {
    throw ApplicationFailure.nonRetryable(`cannot tell where ${dir} leads (${err.code ?? err.message}); the execution policy refuses what it cannot check`, PERMANENT_FAILURES.policyRefused);
  });
  if (refusal) throw policyFailure(refusal);
}

/**
 * The steps of recoveryWorkflow: validate -> prepare -> restore -> start and
 * recover -> verify -> promote. Each can run again after a worker died: restore
 * starts over in the directory it owns, start finds a server already running.
 */
export function recoveryActivities(deps: ActivityDeps) {
  const allowDataDir = (input: RecoveryInput) => allowedDataDir(deps, input.into.dataDir, input.drill ? "drill" : "restore", "into.dataDir");

  return {
    /** Checks the data directory (allowed, not a running cluster's, empty, or for a delta the stopped one of the plan's cluster) and the port, and chooses the base backup and WAL for the target. */
    async validateRecovery(input: RecoveryInput): Promise<RecoveryChoice> {
      const startedAt = new Date().toISOString();
      const dir = input.into.dataDir;
      await allowDataDir(input);
      if (!input.delta) {
        await ensureEmptyTarget(dir).catch((err: Error) => {
          throw invalid(`into.dataDir: ${err.message}`);
        });
      }
      if (await portInUse(input.into.port)) throw invalid(`port ${input.into.port} is in use on the worker; choose a free port for the recovered server`);
      const { target } = recoveryTarget(input.target);
      return await withRepository(input.repository, deps, async (repo) => {
        try {
          const snapshots = await loadSnapshots(repo);
          const systemId = planCluster(snapshots, input.planId);
          if (!systemId) throw invalid(`plan ${input.planName} has no base backup yet; run it (POST /v1/plans/${input.planId}/run) and recover after it completes`);
          if (input.delta) {
            await ensureDeltaTarget(dir, systemId).catch((err: Error) => {
              throw invalid(`into.dataDir: ${err.message}`);
            });
          }
          const { chosen } = await (await ClusterArchive.load(repo, systemId, snapshots)).choose(target, repo);
          const b = chosen.backup;
          return { systemId, snapshotId: b.id, stopTime: b.source.stopTime, stopLsn: b.source.stopLsn, segmentsToReplay: chosen.segmentsToReplay, reason: chosen.reason, startedAt };
        } catch (err) {
          throw err instanceof CairnError ? invalid(err.message) : permanentOrSame(err);
        }
      });
    },

    /** Makes the empty data directory (mode 0700, as PostgreSQL requires). */
    async prepareRecovery(input: RecoveryInput): Promise<void> {
      await allowDataDir(input);
      await fs.mkdir(input.into.dataDir, { recursive: true, mode: 0o700 });
    },

    /**
     * Writes the base backup into the data directory, set to recover to the target
     * and pause there, and copies the WAL it replays next to it. A later attempt
     * clears what an earlier one wrote (validate found the directory empty).
     */
    async restoreRecovery(input: RecoveryInput, choice: RecoveryChoice): Promise<{ files: number; bytes: number; walFiles: number }> {
      const ctx = Context.current();
      const dir = input.into.dataDir;
      await allowDataDir(input);
      // A delta restore writes over what is there by design; a plain one starts over in the directory it owns.
      if (ctx.info.attempt > 1 && !input.delta && !(await runningServer(dir))) {
        for (const name of await fs.readdir(dir).catch(() => [])) await fs.rm(path.join(dir, name), { recursive: true, force: true });
      }
      const beat = setInterval(() => ctx.heartbeat(), 5000);
      try {
        return await withLockedRepository(input.repository, deps, { exclusive: false, operation: `recovery of plan ${input.planName}` }, async (repo) => {
          const cluster = await ClusterArchive.load(repo, choice.systemId);
          const backup = cluster.backups.find((b) => b.id === choice.snapshotId);
          if (!backup) throw invalid(`base backup ${choice.snapshotId.slice(0, 8)} is no longer in the repository (removed by retention?); start the recovery again`);
          const { target, text } = recoveryTarget(input.target);
          const written = await writeDataDir(repo, backup, { targetDir: dir, target, targetText: text, action: "pause", restoreCommand: `cp ${WAL_DIR}/%f "%p"`, delta: input.delta }).catch((err) => {
            throw err instanceof CairnError ? invalid(err.message) : err;
          });
          const owner = await serverUser(dir);
          const walDir = path.join(dir, WAL_DIR);
          await fs.mkdir(walDir, { mode: 0o700 });
          const archive = new WalArchive(repo);
          const names = [...cluster.chain(backup).segments, ...[...cluster.files.keys()].filter((n) => walFileKind(n) === "history")];
          for (const name of names) {
            if (!(await archive.fetch(choice.systemId, name, path.join(walDir, name)))) throw new Error(`WAL file ${name} could not be read from the repository; will try again`);
            if (owner) await fs.chown(path.join(walDir, name), owner.uid, owner.gid);
            ctx.heartbeat();
          }
          if (owner) await fs.chown(walDir, owner.uid, owner.gid);
          return { files: written.files, bytes: written.totalBytes, walFiles: names.length };
        });
      } finally {
        clearInterval(beat);
      }
    },

    /**
     * Starts PostgreSQL on the data directory (as its owner, on 127.0.0.1 and the
     * port asked for, not archiving) and waits until recovery pauses at the target,
     * or for "latest" until it ends. A server that stops on the way fails the step
     * with the end of its log.
     */
    async startRecovery(input: RecoveryInput): Promise<RecoveryLanding> {
      const ctx = Context.current();
      const dir = input.into.dataDir;
      await allowDataDir(input);
      // The server this attempt starts is watched as a child (it writes postmaster.pid only once it runs); one found running, by its pid file.
      const stopped = (await runningServer(dir)) ? undefined : await startServer(dir, input.into.port);
      const conn = recoveredConnection(input, deps);
      const latest = "latest" in input.target;
      for (;;) {
        ctx.heartbeat();
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
        const state = await query(conn.url, `SELECT pg_is_in_recovery(), ${PAUSE_STATE}, pg_last_wal_replay_lsn(), to_json(pg_last_xact_replay_timestamp()) #>> '{}'`, conn.env).catch((err: Error) => err);
        if (state instanceof Error) {
          if (stopped ? stopped() : !(await runningServer(dir))) throw invalid(`the recovered server stopped: ${await logTail(dir)}`);
          if (/password authentication failed|no pg_hba.conf entry|does not exist/.test(state.message)) throw invalid(`the plan's user cannot sign in to the recovered server: ${state.message}`);
        } else {
          const [[inRecovery, pause, lsn, time]] = state;
          if ((latest && inRecovery === "f") || (!latest && (pause === "paused" || inRecovery === "f"))) return { lsn, ...(time ? { time } : {}) };
        }
        await sleep(300);
      }
    },

    /** Runs the verification queries on the paused server; one that fails stops the recovery before promotion. */
    async verifyRecovery(input: RecoveryInput): Promise<{ sql: string; rows: string[] }[]> {
      const conn = recoveredConnection(input, deps);
      const out = [];
      for (const sql of input.verify?.sql ?? []) {
        const rows = await query(conn.url, sql, conn.env).catch((err: Error) => {
          throw invalid(`verification query failed on the recovered server, which stays paused at the target, unpromoted: ${sql}: ${err.message}`);
        });
        out.push({ sql, rows: rows.slice(0, 5).map((r) => r.join("|")) });
      }
      return out;
    },

    /** Ends recovery (the server leaves the pause and promotes), waits for writes to be accepted, and removes the copied WAL. */
    async promoteRecovery(input: RecoveryInput): Promise<{ timeline: number; acceptingAt: string }> {
      const ctx = Context.current();
      const conn = recoveredConnection(input, deps);
      let resumed = false;
      for (;;) {
        ctx.heartbeat();
        const [[inRecovery, pause]] = await query(conn.url, `SELECT pg_is_in_recovery(), ${PAUSE_STATE}`, conn.env);
        if (inRecovery === "f") break;
        if (pause === "paused" && !resumed) {
          // Recovery may end between the two queries: then there is nothing left to resume.
          await query(conn.url, "SELECT pg_wal_replay_resume()", conn.env).catch((err: Error) => {
            if (!/recovery is not in progress/.test(err.message)) throw err;
          });
          resumed = true;
        }
        await sleep(200);
      }
      const acceptingAt = new Date().toISOString();
      const [[walFile]] = await query(conn.url, "SELECT pg_walfile_name(pg_current_wal_insert_lsn())", conn.env);
      await fs.rm(path.join(input.into.dataDir, WAL_DIR), { recursive: true, force: true });
      return { timeline: parseInt(walFile.slice(0, 8), 16), acceptingAt };
    },

    /** Stops a recovered server that a failed step left running (fast shutdown), so its port is free again. */
    async stopRecoveredServer(input: RecoveryInput): Promise<void> {
      await stopServer(input.into.dataDir);
    },
  };
}

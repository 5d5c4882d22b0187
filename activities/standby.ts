import { existsSync, promises as fs } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import { CairnError } from "../engine/errors.js";
import type { Repository } from "../engine/repository.js";
import { loadSnapshots } from "../engine/snapshot.js";
import { WalArchive } from "../sources/postgres/archive.js";
import { parseConnectionUrl, type PgConnection } from "../sources/postgres/connection.js";
import { readHeartbeat, writeHeartbeat, type Heartbeat } from "../sources/postgres/heartbeat.js";
import { ClusterArchive } from "../sources/postgres/recovery.js";
import { ensureEmptyTarget, walFetchViaCommand, writeDataDir } from "../sources/postgres/restore.js";
import { query } from "../sources/postgres/tools.js";
import { formatLsn, parseLsn, parseSegmentName, walFileKind } from "../sources/postgres/wal.js";
import { MAX_SOCKET_PATH, serveWal, WAL_SOCKET, type WalSocketServer } from "../sources/postgres/wal-socket.js";
import { PERMANENT_FAILURES, standbyReportSignal, type StandbyInput, type StandbyReport } from "../workflows/messages.js";
import { openConnection, unsealPassword } from "./postgres.js";
import { allowedDataDir, logTail, planCluster, portInUse, recoveredConnection, runningServer, serverUser, startServer, stopServer } from "./recovery.js";
import { openRepository, permanentOrSame, withLockedRepository, type ActivityDeps } from "./repository.js";

/** Where standbys set up before the WAL socket kept the repository password (inside the data directory); removed when such a standby stops. */
const LEGACY_PASSWORD_FILE = "cairn_standby.password";

const invalid = (message: string) => ApplicationFailure.nonRetryable(message, PERMANENT_FAILURES.invalidRequest);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the restore step wrote: the cluster, its base backup, and the WAL segment size (for positions in the archive). */
export interface StandbyRestored {
  systemId: string;
  snapshotId: string;
  segmentSize: number;
}

/** This checkout's `cairn` (bin/cairn.js, which loads the compiled CLI): the command restore_command runs. */
function cairnProgram(): string[] {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "package.json")) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return [process.execPath, path.join(dir, "bin", "cairn.js")];
}

/**
 * Where a platform standby's restore_command reaches its worker: a directory beside
 * the data directory (not in it: nothing of it is copied with the cluster), mode 0700,
 * owned by the server's user, holding the socket and its token.
 */
export function walSocketDir(dataDir: string): string {
  return `${dataDir.replace(/\/+$/, "")}.cairn-wal`;
}

/**
 * Serves the cluster's archived WAL from `repo` (open, with the credentials the
 * worker unsealed in memory) on the standby's socket, making or taking back its
 * directory for the server's user. The caller closes it.
 */
export async function serveStandbyWal(deps: ActivityDeps, dataDir: string, repo: Repository, systemId: string): Promise<WalSocketServer> {
  const dir = walSocketDir(dataDir);
  await allowedDataDir(deps, dir, "restore", "the standby's WAL socket directory");
  const owner = await serverUser(dataDir);
  await fs.mkdir(dir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "EEXIST") throw err;
  });
  const st = await fs.lstat(dir);
  const uid = process.getuid?.() ?? st.uid;
  if (!st.isDirectory() || (st.uid !== uid && st.uid !== owner?.uid)) {
    throw invalid(`${dir} (the standby's WAL socket directory) is ${st.isDirectory() ? `owned by uid ${st.uid}` : "not a directory"}; remove it, Cairn makes it for the PostgreSQL server's user`);
  }
  if (owner) await fs.chown(dir, owner.uid, owner.gid);
  await fs.chmod(dir, 0o700);
  const archive = new WalArchive(repo);
  return serveWal(dir, async (name) => (await archive.load(systemId, name))?.data, owner);
}

/**
 * The steps of standbyWorkflow: restore (the plan's latest base backup, set up to
 * replay archived WAL for good), watch (keep PostgreSQL running and measure its lag,
 * for as long as the workflow asks), stop. Each can run again after a worker died.
 */
export function standbyActivities(deps: ActivityDeps) {
  const allow = (input: StandbyInput) => allowedDataDir(deps, input.dataDir, "restore", "dataDir");

  return {
    /**
     * Writes the plan's newest usable base backup into the empty data directory with
     * standby.signal and restore_command = cairn pg wal-fetch --via the standby's WAL
     * socket, which the watch step serves from the plan's repository (any backend: the
     * credentials stay in the worker's memory). A later attempt clears what an earlier one wrote.
     */
    async restoreStandby(input: StandbyInput): Promise<StandbyRestored> {
      const ctx = Context.current();
      const dir = input.dataDir;
      await allow(input);
      const socket = path.join(walSocketDir(dir), WAL_SOCKET);
      if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) throw invalid(`dataDir ${dir} is too long for the standby's WAL socket beside it (${socket} is over ${MAX_SOCKET_PATH} bytes, the Unix socket limit); choose a shorter path`);
      await allowedDataDir(deps, walSocketDir(dir), "restore", "the standby's WAL socket directory (dataDir + .cairn-wal)");
      if (ctx.info.attempt > 1 && !(await runningServer(dir))) {
        for (const name of await fs.readdir(dir).catch(() => [])) await fs.rm(path.join(dir, name), { recursive: true, force: true });
      } else {
        await ensureEmptyTarget(dir).catch((err: Error) => {
          throw invalid(`dataDir: ${err.message}`);
        });
        if (await portInUse(input.port)) throw invalid(`port ${input.port} is in use on the worker; choose a free port for the standby`);
      }
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      const beat = setInterval(() => ctx.heartbeat(), 5000);
      try {
        return await withLockedRepository(input.repository, deps, { exclusive: false, operation: `standby of plan ${input.planName}` }, async (repo) => {
          const snapshots = await loadSnapshots(repo);
          const systemId = planCluster(snapshots, input.planId);
          if (!systemId) throw invalid(`plan ${input.planName} has no base backup yet; run it (POST /v1/plans/${input.planId}/run) and start the standby after it completes`);
          const cluster = await ClusterArchive.load(repo, systemId, snapshots);
          const { chosen } = await cluster.choose({ kind: "latest" }, repo).catch((err) => {
            throw err instanceof CairnError ? invalid(err.message) : permanentOrSame(err);
          });
          const restoreCommand = walFetchViaCommand({ program: cairnProgram(), socket });
          await writeDataDir(repo, chosen.backup, { targetDir: dir, target: { kind: "latest" }, action: "promote", restoreCommand, mode: "standby" }).catch((err) => {
            throw err instanceof CairnError ? invalid(err.message) : err;
          });
          return { systemId, snapshotId: chosen.backup.id, segmentSize: chosen.backup.source.segmentSize };
        });
      } finally {
        clearInterval(beat);
      }
    },

    /**
     * Keeps the standby's PostgreSQL running (starting it when it is not: the first
     * time, or after a crash or a worker restart, which the report says) and measures
     * its lag every pollSeconds, sending each measurement to the workflow. Returns
     * after `polls` measurements, so the workflow's history stays bounded; runs until
     * cancelled otherwise. Heartbeats all along. Serves the standby's WAL socket
     * (restore_command) for as long as it runs: without a watch, the standby waits.
     */
    async watchStandby(input: StandbyInput, restored: StandbyRestored, o: { polls: number; firstStart: boolean }): Promise<void> {
      const ctx = Context.current();
      const dir = input.dataDir;
      await allow(input);
      const execution = ctx.info.workflowExecution;
      if (!execution) throw invalid("watchStandby runs only as a step of standbyWorkflow");
      const handle = ctx.client.workflow.getHandle(execution.workflowId, execution.runId);
      const beat = setInterval(() => ctx.heartbeat(), 2000);
      const repo = await openRepository(input.repository, deps);
      let wal: WalSocketServer | undefined;
      let firstStart = o.firstStart;
      try {
        wal = await serveStandbyWal(deps, dir, repo, restored.systemId);
        for (let i = 0; i < o.polls; i++) {
          if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
          let restarted: string | undefined;
          if (!(await runningServer(dir))) {
            // stopStandby removes the socket's directory before it stops the server: a watch it has not stopped yet
            // (cancellation reaches an activity at its next heartbeat) must not start the server again.
            if (!(await wal.serving())) throw new Error(`the standby's WAL socket directory ${walSocketDir(dir)} was removed or taken over (the standby is being stopped, or another watch serves it); PostgreSQL was not started again`);
            if (!firstStart) restarted = `PostgreSQL of the standby was not running (${(await logTail(dir)).split("\n").at(-1) || "no log"}); started it again`;
            const exited = await startServer(dir, input.port);
            // Until it has written postmaster.pid, the next check would take it for stopped.
            for (let wait = 0; !(await runningServer(dir)); wait++) {
              if (exited()) throw new Error(`the standby's PostgreSQL stopped at start: ${await logTail(dir)}; will try again`);
              if (wait > 300) throw new Error(`the standby's PostgreSQL did not start within a minute: ${await logTail(dir)}; will try again`);
              await sleep(200);
            }
          }
          firstStart = false;
          const report = await measure(input, restored, repo, deps);
          if (wal.stats.lastError) {
            report.warnings.push(`restore_command could not be served ${wal.stats.lastError}; PostgreSQL stopped recovery and is started again at the next check`);
            wal.stats.lastError = undefined;
          }
          await handle.signal(standbyReportSignal, { ...report, ...(restarted ? { restarted } : {}) }).catch(() => undefined);
          const until = Date.now() + input.pollSeconds * 1000;
          while (Date.now() < until && !ctx.cancellationSignal.aborted) await sleep(Math.min(250, until - Date.now()));
        }
      } finally {
        clearInterval(beat);
        await wal?.close();
        await repo.close();
      }
    },

    /** Stops the standby's PostgreSQL (fast shutdown) and removes its WAL socket directory (and an older standby's password file); with discard, the data directory too. */
    async stopStandby(input: StandbyInput, discard: boolean): Promise<{ stopped: boolean; discarded: boolean }> {
      const dir = input.dataDir;
      await allow(input);
      // The socket's directory first: a watch still running (cancelled, not told yet) sees it gone and does not restart the server.
      await fs.rm(walSocketDir(dir), { recursive: true, force: true });
      const stopped = await stopServer(dir);
      if (await runningServer(dir)) throw new Error(`the standby's PostgreSQL on ${dir} did not stop within a minute; will try again`);
      await fs.rm(path.join(dir, LEGACY_PASSWORD_FILE), { force: true });
      if (discard) await fs.rm(dir, { recursive: true, force: true });
      return { stopped, discarded: discard };
    },
  };
}

/** One measurement: the standby's replay position, the archive's end, and the primary's position and heartbeat when it answers. */
async function measure(input: StandbyInput, restored: StandbyRestored, repo: Repository, deps: ActivityDeps): Promise<StandbyReport> {
  const warnings: string[] = [];
  const now = new Date();
  const standbyConn = recoveredConnection({ source: input.source, into: { dataDir: input.dataDir, port: input.port } }, deps);
  const password = unsealPassword(input.source.sealedPassword, deps);

  // The primary first: its heartbeat is then the newest point the standby could have replayed.
  let primaryLsn: bigint | undefined;
  let primaryBeat: Heartbeat | undefined;
  try {
    const primary = await openConnection(input.source, deps);
    const url = new URL(primary.url);
    if (!url.searchParams.has("connect_timeout")) url.searchParams.set("connect_timeout", "5");
    const [[inRecovery, lsn]] = await query(url.toString(), "SELECT pg_is_in_recovery(), pg_current_wal_lsn()", primary.env).catch(async (err: Error) => {
      // pg_current_wal_lsn() fails on a server in recovery; say which it is.
      if (/recovery is in progress/.test(err.message)) return [["t", ""]];
      throw err;
    });
    if (inRecovery === "t") warnings.push(`the plan's server (${input.source.url}) is in recovery, not a primary: lag is measured against the archive`);
    else {
      primaryLsn = parseLsn(lsn);
      const conn: PgConnection = { ...parseConnectionUrl(input.source.url), url: url.toString(), password };
      primaryBeat = await writeHeartbeat(conn).catch((err) => {
        warnings.push(`the heartbeat could not be written on the plan's server: ${firstLine(err)}; lag in seconds is measured from the last replayed commit`);
        return undefined;
      });
    }
  } catch (err) {
    warnings.push(`the plan's server (${input.source.url}) did not answer: ${firstLine(err)}; lag is measured against the archive`);
  }

  let replayLsn: bigint | undefined;
  let lastReplayAt: Date | undefined;
  let standbyBeat: Heartbeat | undefined;
  try {
    const [[inRecovery, lsn, replayMs]] = await query(standbyConn.url, "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), floor(extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000)::bigint", standbyConn.env);
    if (inRecovery !== "t") warnings.push("the standby is no longer in recovery (it was promoted): it replays nothing more");
    if (lsn) replayLsn = parseLsn(lsn);
    if (replayMs) lastReplayAt = new Date(Number(replayMs));
    standbyBeat = await readHeartbeat({ ...parseConnectionUrl(standbyConn.url), password });
  } catch (err) {
    warnings.push(`the standby does not answer yet: ${firstLine(err)}`);
  }

  const archivedLsn = await archiveEnd(repo, restored);
  const ahead = primaryLsn ?? archivedLsn;
  const lagBytes = replayLsn !== undefined && ahead !== undefined ? Number(ahead > replayLsn ? ahead - replayLsn : 0n) : undefined;
  let lagSeconds: number | undefined;
  let lagSource: StandbyReport["lagSource"];
  if (primaryBeat && standbyBeat) {
    lagSeconds = Math.max(0, (primaryBeat.at.getTime() - standbyBeat.at.getTime()) / 1000);
    lagSource = "heartbeat";
  } else if (lastReplayAt) {
    lagSeconds = Math.max(0, (now.getTime() - lastReplayAt.getTime()) / 1000);
    lagSource = "replay-timestamp";
  }
  return {
    ...(replayLsn !== undefined ? { replayLsn: formatLsn(replayLsn) } : {}),
    ...(primaryLsn !== undefined ? { primaryLsn: formatLsn(primaryLsn) } : {}),
    ...(archivedLsn !== undefined ? { archivedLsn: formatLsn(archivedLsn) } : {}),
    ...(lagBytes !== undefined ? { lagBytes } : {}),
    ...(lagSeconds !== undefined ? { lagSeconds, lagSource } : {}),
    ...(lastReplayAt ? { lastReplayAt: lastReplayAt.toISOString() } : {}),
    lastCheckedAt: now.toISOString(),
    warnings,
  };
}

/** The end of the newest segment the repository's archive holds for the cluster (on any timeline). */
async function archiveEnd(repo: Repository, restored: StandbyRestored): Promise<bigint | undefined> {
  const names = [...(await new WalArchive(repo).list(restored.systemId)).keys()].filter((n) => walFileKind(n) === "segment");
  let end: bigint | undefined;
  for (const name of names) {
    const e = (parseSegmentName(name, restored.segmentSize).segno + 1n) * BigInt(restored.segmentSize);
    if (end === undefined || e > end) end = e;
  }
  return end;
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split("\n")[0];
}

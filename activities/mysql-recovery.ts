import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import { CairnError } from "../engine/errors.js";
import { loadSnapshots } from "../engine/snapshot.js";
import { realPathRefusal } from "../policy/paths.js";
import { parsePosition, planRecovery, replayBinlogs, type MysqlTarget } from "../sources/mysql/binlog.js";
import { loadBinlogPartial } from "../sources/mysql/binlog-stream.js";
import { loginOf, parseMysqlUrl, withOptionFile } from "../sources/mysql/connection.js";
import { ensureEmptyDir, mysqlPhysicalBackups, restoreMysqlPhysical } from "../sources/mysql/physical.js";
import { mysqlTool, query } from "../sources/mysql/tools.js";
import { PERMANENT_FAILURES, SAFE_DATA_DIR, type MysqlRecoveryChoice, type MysqlRecoveryInput, type MysqlRecoveryTargetSpec } from "../workflows/messages.js";
import { planMysqlSnapshots, planServer } from "./mysql.js";
import { unsealPassword } from "./postgres.js";
import { portInUse } from "./recovery.js";
import { permanentOrSame, policyFailure, withLockedRepository, withRepository, type ActivityDeps } from "./repository.js";

/** The recovered server's files inside its data directory: pid, error log, Unix socket. */
const PID_FILE = "cairn-recovered.pid";
const LOG_FILE = "cairn-recovered.err";
const SOCKET = "cairn-recovered.sock";

const invalid = (message: string) => ApplicationFailure.nonRetryable(message, PERMANENT_FAILURES.invalidRequest);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The target as the binary log replay reads it; one that cannot be read fails without retry. */
export function mysqlTarget(spec: MysqlRecoveryTargetSpec): MysqlTarget {
  try {
    if ("time" in spec) {
      const time = new Date(spec.time);
      if (Number.isNaN(time.getTime())) throw new CairnError(`cannot read the time "${spec.time}"; write it as ISO 8601, such as 2026-11-30T10:15:00Z`);
      return { kind: "time", time };
    }
    if ("position" in spec) return parsePosition(spec.position);
    return { kind: "latest" };
  } catch (err) {
    throw invalid((err as Error).message);
  }
}

/** The pid of the server a recovery started on `dir`, when it is alive. */
export async function recoveredServer(dir: string): Promise<number | undefined> {
  const pid = Number((await fs.readFile(path.join(dir, PID_FILE), "utf8").catch(() => "")).trim());
  if (!pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

async function logTail(dir: string): Promise<string> {
  const text = await fs.readFile(path.join(dir, LOG_FILE), "utf8").catch(() => "");
  return text.trim().split("\n").slice(-8).join("\n");
}

/**
 * The steps of mysqlRecoveryWorkflow: validate -> prepare -> restore (files and
 * mariadb-backup --prepare) -> replay (archived binary logs up to the target) ->
 * start (mariadbd on 127.0.0.1:port) -> verify (the caller's queries).
 */
export function mysqlRecoveryActivities(deps: ActivityDeps) {
  /** The data directory, allowed by the execution policy (under the restore roots, links followed). */
  const allowDataDir = async (dir: string) => {
    if (!SAFE_DATA_DIR.test(dir)) throw invalid(`into.dataDir ${dir}: use an absolute path of letters, digits, ".", "_", "-" and "/"`);
    const refusal = await realPathRefusal(deps.policy, "restore", dir).catch((err: NodeJS.ErrnoException) => {
      throw ApplicationFailure.nonRetryable(`cannot tell where ${dir} leads (${err.code ?? err.message}); the execution policy refuses what it cannot check`, PERMANENT_FAILURES.policyRefused);
    });
    if (refusal) throw policyFailure(refusal);
  };

  /** Runs `fn` with an option file for the plan's user on the recovered server (it has the source's grants). */
  const recoveredLogin = <T>(input: MysqlRecoveryInput, fn: (optionFile: string) => Promise<T>): Promise<T> =>
    withOptionFile({ ...loginOf(parseMysqlUrl(input.source.url), unsealPassword(input.source.sealedPassword, deps), "127.0.0.1"), port: input.into.port }, fn);

  return {
    /** Checks the data directory (allowed, empty) and the port (free), and chooses the physical backup and the binary logs for the target. */
    async validateMysqlRecovery(input: MysqlRecoveryInput): Promise<MysqlRecoveryChoice> {
      const startedAt = new Date().toISOString();
      const dir = input.into.dataDir;
      await allowDataDir(dir);
      await ensureEmptyDir(dir).catch((err: Error) => {
        throw invalid(`into.dataDir: ${err.message}`);
      });
      if (await portInUse(input.into.port)) throw invalid(`port ${input.into.port} is in use on the worker; choose a free port for the recovered server`);
      const target = mysqlTarget(input.target);
      return await withRepository(input.repository, deps, async (repo) => {
        try {
          const all = await loadSnapshots(repo);
          const server = planServer(all, input.planId);
          if (!server) throw invalid(`plan ${input.planName} has no physical backup yet; run it (POST /v1/plans/${input.planId}/run) and recover after it completes`);
          const { backup, binlogs } = planRecovery(planMysqlSnapshots(all, input.planId), target, server, await loadBinlogPartial(repo, server));
          const b = backup.source;
          return { server, snapshotId: backup.id, stopTime: b.stopTime, ...(b.binlogFile ? { binlogFile: b.binlogFile, binlogPosition: b.binlogPosition } : {}), binlogs, startedAt };
        } catch (err) {
          throw err instanceof CairnError ? invalid(err.message) : permanentOrSame(err);
        }
      });
    },

    /** Makes the empty data directory. */
    async prepareMysqlRecovery(input: MysqlRecoveryInput): Promise<void> {
      await allowDataDir(input.into.dataDir);
      await fs.mkdir(input.into.dataDir, { recursive: true, mode: 0o750 });
    },

    /** Writes the backup's files into the data directory and prepares them (mariadb-backup --prepare); a later attempt starts over in the directory. */
    async restoreMysqlRecovery(input: MysqlRecoveryInput, choice: MysqlRecoveryChoice): Promise<{ files: number; bytes: number }> {
      const ctx = Context.current();
      const dir = input.into.dataDir;
      await allowDataDir(dir);
      if (ctx.info.attempt > 1) for (const name of await fs.readdir(dir).catch(() => [])) await fs.rm(path.join(dir, name), { recursive: true, force: true });
      const beat = setInterval(() => ctx.heartbeat(), 5000);
      try {
        return await withLockedRepository(input.repository, deps, { exclusive: false, operation: `recovery of plan ${input.planName}` }, async (repo) => {
          const backup = mysqlPhysicalBackups(await loadSnapshots(repo)).find((b) => b.id === choice.snapshotId);
          if (!backup) throw invalid(`physical backup ${choice.snapshotId.slice(0, 8)} is no longer in the repository (removed by retention?); start the recovery again`);
          return await restoreMysqlPhysical(repo, backup, dir).catch((err) => {
            throw err instanceof CairnError ? invalid(err.message) : err;
          });
        });
      } finally {
        clearInterval(beat);
      }
    },

    /**
     * Replays the chosen binary logs from the backup's position up to the target with
     * a private server on the directory (no network). Attempted once by the workflow:
     * events replayed twice would be applied twice.
     */
    async replayMysqlRecovery(input: MysqlRecoveryInput, choice: MysqlRecoveryChoice): Promise<{ replayed: number }> {
      const ctx = Context.current();
      const dir = input.into.dataDir;
      await allowDataDir(dir);
      const beat = setInterval(() => ctx.heartbeat(), 5000);
      try {
        return await withLockedRepository(input.repository, deps, { exclusive: false, operation: `recovery of plan ${input.planName}` }, async (repo) => {
          const all = planMysqlSnapshots(await loadSnapshots(repo), input.planId);
          const backup = mysqlPhysicalBackups(all).find((b) => b.id === choice.snapshotId);
          if (!backup) throw invalid(`physical backup ${choice.snapshotId.slice(0, 8)} is no longer in the repository; start the recovery again`);
          const replayed = await replayBinlogs(repo, all, { backup, binlogs: choice.binlogs }, dir, mysqlTarget(input.target)).catch((err) => {
            throw invalid(`the binary logs could not be replayed, so ${dir} is not at the target; remove it and recover again: ${(err as Error).message}`);
          });
          return { replayed };
        });
      } finally {
        clearInterval(beat);
      }
    },

    /**
     * Starts mariadbd on the data directory, on 127.0.0.1 and the port asked for (its
     * socket, pid file and error log inside the directory, no binary log, an
     * environment of PATH only), detached so it runs on after the job, and waits until
     * the plan's user can sign in. A server already running there (an earlier attempt's)
     * is waited for instead.
     */
    async startMysqlRecovered(input: MysqlRecoveryInput): Promise<{ pid: number; acceptingAt: string }> {
      const ctx = Context.current();
      const dir = input.into.dataDir;
      await allowDataDir(dir);
      let exited: (() => boolean) | undefined;
      if (!(await recoveredServer(dir))) {
        const args = [
          "--no-defaults",
          `--datadir=${dir}`,
          `--port=${input.into.port}`,
          "--bind-address=127.0.0.1",
          `--socket=${path.join(dir, SOCKET)}`,
          `--pid-file=${path.join(dir, PID_FILE)}`,
          `--log-error=${path.join(dir, LOG_FILE)}`,
          "--skip-log-bin",
        ];
        // The files are the worker's (restored without owners); a root worker runs the server as root, which mariadbd must be told.
        if (process.getuid?.() === 0) args.push("--user=root");
        const child = spawn(mysqlTool("mariadbd"), args, { detached: true, stdio: "ignore", cwd: dir, env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/bin" } });
        let gone = false;
        child.once("exit", () => (gone = true));
        child.once("error", () => (gone = true));
        exited = () => gone;
        child.unref();
      }
      for (;;) {
        ctx.heartbeat();
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
        const answer = await recoveredLogin(input, (optionFile) => query(optionFile, "SELECT 1")).catch((err: Error) => err);
        if (!(answer instanceof Error)) break;
        if (exited ? exited() : !(await recoveredServer(dir))) throw invalid(`the recovered server stopped: ${await logTail(dir)}`);
        if (/Access denied/.test(answer.message)) throw invalid(`the plan's user cannot sign in to the recovered server (it has the grants of the backup): ${answer.message}`);
        await sleep(300);
      }
      const acceptingAt = new Date().toISOString();
      const pid = await recoveredServer(dir);
      if (!pid) throw invalid(`the recovered server answers but wrote no ${PID_FILE}: ${await logTail(dir)}`);
      return { pid, acceptingAt };
    },

    /** Runs the verification queries on the recovered server as the plan's user; one that fails fails the recovery. */
    async verifyMysqlRecovery(input: MysqlRecoveryInput): Promise<{ sql: string; rows: string[] }[]> {
      const out = [];
      for (const sql of input.verify?.sql ?? []) {
        const rows = await recoveredLogin(input, (optionFile) => query(optionFile, sql)).catch((err: Error) => {
          throw invalid(`verification query failed on the recovered server: ${sql}: ${err.message}`);
        });
        out.push({ sql, rows: rows.slice(0, 5).map((r) => r.join("|")) });
      }
      return out;
    },

    /** Stops a recovered server a failed step left running (a clean shutdown), so its port and directory are free for another try. */
    async stopMysqlRecovered(input: MysqlRecoveryInput): Promise<void> {
      const pid = await recoveredServer(input.into.dataDir);
      if (!pid) return;
      process.kill(pid, "SIGTERM");
      for (let i = 0; i < 600 && (await recoveredServer(input.into.dataDir)); i++) await sleep(200);
    },
  };
}

import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import type { Command } from "commander";
import { CairnError } from "../engine/errors.js";
import { clusterSystemId, dropPrefetched, takePrefetched, WalArchive } from "../sources/postgres/archive.js";
import { inRecovery, prefetcherRunning, WalPrefetcher } from "../sources/postgres/prefetch.js";
import { awaitSpooled, runSpoolArchiver } from "../sources/postgres/spool.js";
import { walFileKind } from "../sources/postgres/wal.js";
import { fetchVia } from "../sources/postgres/wal-socket.js";
import { globals, output, parseDuration, untilSignalled, withRepository, type GlobalOptions } from "./common.js";

/**
 * wal-push and wal-fetch are PostgreSQL's archive_command and restore_command: exit 0
 * only when the file is safely stored (or written), non-zero otherwise, so PostgreSQL
 * keeps the segment and calls again. They take no repository lock: WAL files are
 * named objects written once, which prune never touches.
 */
export function register(pg: Command): void {
  pg.command("wal-push")
    .description("archive one WAL file (archive_command = 'cairn pg wal-push %p')")
    .argument("<file>", "the file to archive, relative to the data directory (%p)")
    .option("--pgdata <dir>", "the cluster's data directory (default: the current directory, where archive_command runs)")
    .option("--spool <dir>", "when `cairn pg archiver` runs on this spool, wait for it to push the file instead of pushing it here")
    .option("--spool-timeout <duration>", "how long to wait for the archiver before pushing directly", "60s")
    .action(async (file: string, o: { pgdata?: string; spool?: string; spoolTimeout: string }, cmd: Command) => {
      const opts = globals(cmd);
      const pgdata = path.resolve(o.pgdata ?? ".");
      if (o.spool && (await awaitSpooled(o.spool, path.basename(file), parseDuration(o.spoolTimeout)))) {
        output(opts, { file: path.basename(file), outcome: "pushed-by-archiver" }, () => "");
        return;
      }
      const r = await withRepository(opts, "none", "wal-push", (repo) => new WalArchive(repo).push(file, pgdata), { loadIndex: false });
      output(opts, { file: r.meta.name, outcome: r.outcome, systemId: r.meta.systemId }, () => "");
    });

  pg.command("wal-fetch")
    .description("restore one archived WAL file (restore_command = 'cairn pg wal-fetch %f %p'); exits 1 without a message when the archive does not have it, 255 on any other failure (PostgreSQL then stops recovery)")
    .argument("<name>", "the WAL file name PostgreSQL asks for (%f)")
    .argument("<dest>", "where to write it, relative to the data directory (%p)")
    .option("--system-id <id>", "the cluster's database system identifier (default: read from global/pg_control in --pgdata)")
    .option("--pgdata <dir>", "the data directory being recovered (default: the current directory, where restore_command runs)")
    .option("--prefetch <n>", "while the data directory is in recovery, start `cairn pg wal-prefetch` (when not running) to serve the next calls and keep n segments fetched ahead; 0: none", String(PREFETCH_WINDOW))
    .option("--via <socket>", "ask the worker serving this socket (a platform standby's <dataDir>.cairn-wal/wal.sock) instead of opening a repository: no repository, password or credentials here")
    .action(async (name: string, dest: string, o: { systemId?: string; pgdata?: string; prefetch: string; via?: string }, cmd: Command) => {
      const opts = globals(cmd);
      const pgdata = path.resolve(o.pgdata ?? ".");
      if (o.via) {
        await fetchViaSocket(o.via, name, path.resolve(pgdata, dest));
        return;
      }
      let found: boolean;
      try {
        found = await fetchWal(opts, name, path.resolve(pgdata, dest), pgdata, o);
      } catch (err) {
        // Exit 1 would tell PostgreSQL "no such file", and recovery would end early at
        // whatever it had; an exit code over 125 makes it stop and say why instead.
        throw new CairnError(`${(err as Error).message}\n(recovery stops here rather than end early; fix this and start the server again)`, FATAL_FOR_POSTGRES, { cause: err });
      }
      if (!found) {
        // Recovery asks for a missing history as it starts, too: only once it has ended is what was fetched ahead stale.
        if (walFileKind(name) === "history" && !(await inRecovery(pgdata))) await dropPrefetched(pgdata);
        process.exitCode = 1;
      }
    });

  pg.command("wal-prefetch")
    .description("serve restore_command's requests and fetch WAL ahead for a data directory in recovery, until recovery ends (wal-fetch starts it)")
    .requiredOption("--pgdata <dir>", "the data directory being recovered")
    .requiredOption("--system-id <id>", "the cluster's database system identifier")
    .option("--window <n>", "whole segments kept fetched ahead", String(PREFETCH_WINDOW))
    .option("--after-restore", "started by cairn pg restore: open the repository, wait for the line go on standard input (its end without one: the restore failed, stop), answer ready on standard output, and serve the server once it starts")
    .action(async (o: { pgdata: string; systemId: string; window: string; afterRestore?: boolean }, cmd: Command) => {
      const opts = globals(cmd);
      const signal = untilSignalled();
      const pgdata = path.resolve(o.pgdata);
      await withRepository(
        opts,
        "none",
        "wal-prefetch",
        async (repo) => {
          if (o.afterRestore) {
            if (!(await restoreSaysGo())) return false;
            await becomeOwnerOf(pgdata);
          }
          const prefetcher = new WalPrefetcher(new WalArchive(repo), {
            pgdata,
            systemId: o.systemId,
            window: Math.max(0, Number(o.window) || 0),
            signal,
            awaitServer: o.afterRestore,
            onClaimed: o.afterRestore ? () => process.stdout.write("ready\n") : undefined,
          });
          return prefetcher.run();
        },
        { loadIndex: false },
      );
    });

  pg.command("archiver")
    .description("push WAL files as soon as PostgreSQL marks them ready, keeping the repository open (the fast path; pair with wal-push --spool)")
    .requiredOption("--pgdata <dir>", "the cluster's data directory")
    .requiredOption("--spool <dir>", "directory for the marks wal-push --spool waits on (writable by the PostgreSQL user)")
    .option("--parallel <n>", "files pushed at once", "4")
    .action(async (o: { pgdata: string; spool: string; parallel: string }, cmd: Command) => {
      const opts = globals(cmd);
      const signal = untilSignalled();
      await withRepository(
        opts,
        "none",
        "pg archiver",
        (repo) =>
          runSpoolArchiver(new WalArchive(repo), {
            pgdata: path.resolve(o.pgdata),
            spool: path.resolve(o.spool),
            parallel: Math.max(1, Number(o.parallel) || 4),
            signal,
            onPushed: (name, outcome) => !opts.quiet && process.stdout.write(opts.json ? JSON.stringify({ file: name, outcome }) + "\n" : `${name} ${outcome}\n`),
            onError: (name, err) => process.stderr.write(`cairn: ${name} not archived (PostgreSQL will retry it): ${err.message}\n`),
          }),
        { loadIndex: false },
      );
    });
}

/** Whole segments a prefetcher keeps fetched ahead unless told otherwise. */
const PREFETCH_WINDOW = 8;

/** PostgreSQL treats a restore_command exit code above 125 as fatal, not as a missing file. */
const FATAL_FOR_POSTGRES = 255;

/**
 * wal-fetch --via: exit 0 with the file written, 1 when the archive does not have it
 * or no worker answers (PostgreSQL asks again later: a standby waits for its worker),
 * 255 when the worker could not read the repository (as wal-fetch without --via).
 */
async function fetchViaSocket(socket: string, name: string, dest: string): Promise<void> {
  const outcome = await fetchVia(path.resolve(socket), name, dest);
  if (outcome.ok) return;
  if (outcome.fatal) throw new CairnError(`${outcome.reason}\n(recovery stops here rather than end early; the standby's worker starts it again)`, FATAL_FOR_POSTGRES);
  if (!outcome.missing) process.stderr.write(`cairn: ${outcome.reason}; PostgreSQL will ask again\n`);
  process.exitCode = 1;
}

async function fetchWal(opts: GlobalOptions, name: string, target: string, pgdata: string, o: { systemId?: string; prefetch: string }): Promise<boolean> {
  if (await takePrefetched(pgdata, name, target)) return true;
  const systemId = o.systemId ?? (await clusterSystemId(pgdata));
  if (!/^\d+$/.test(systemId)) throw new CairnError(`--system-id must be the number pg_controldata prints as "Database system identifier", got ${systemId}`);
  // Started first, so that it opens the repository while this call does: the next calls go to it.
  const window = Math.max(0, Number(o.prefetch) || 0);
  if (window > 0 && (await inRecovery(pgdata)) && !(await prefetcherRunning(pgdata))) startPrefetcher(opts, pgdata, systemId, window);
  return withRepository(opts, "none", "wal-fetch", (repo) => new WalArchive(repo).fetch(systemId, name, target), { loadIndex: false });
}

/** The arguments that run `cairn pg wal-prefetch` for `pgdata` with this process's repository and password file. */
function prefetcherArgs(opts: GlobalOptions, pgdata: string, systemId: string, window: number): string[] {
  const repository = opts.repo ? ["-r", opts.repo] : [];
  const password = opts.passwordFile ? ["--password-file", path.resolve(opts.passwordFile)] : [];
  return [...process.execArgv, process.argv[1], ...repository, ...password, "pg", "wal-prefetch", "--pgdata", pgdata, "--system-id", systemId, "--window", String(window)];
}

/**
 * Starts `cairn pg wal-prefetch` for this recovery, detached: restore_command returns
 * at once, and the prefetcher outlives it (in its own session, so PostgreSQL's signals
 * to the startup process's group do not reach it; it stops by itself when recovery ends).
 */
function startPrefetcher(opts: GlobalOptions, pgdata: string, systemId: string, window: number): void {
  const child = spawn(process.execPath, prefetcherArgs(opts, pgdata, systemId, window), { detached: true, stdio: "ignore", cwd: pgdata });
  child.on("error", () => undefined);
  child.unref();
}

/** How long `cairn pg restore` waits, once the data directory is written, for its prefetcher to take requests. */
const PREFETCHER_READY_MS = 15_000;

/**
 * The prefetcher `cairn pg restore` starts beside the restore (wal-prefetch
 * --after-restore): it opens the repository while the base backup is written, so that
 * the server's first restore_command (the next timeline's history, as recovery starts)
 * finds it there instead of starting Node. `go` tells it the data directory is complete
 * and waits until it takes requests; `cancel` (a failed restore) makes it stop without
 * touching anything.
 */
export function prefetcherForRestore(opts: GlobalOptions, pgdata: string, systemId: string): { go(): Promise<boolean>; cancel(): void } {
  const child = spawn(process.execPath, [...prefetcherArgs(opts, pgdata, systemId, PREFETCH_WINDOW), "--after-restore"], { detached: true, stdio: ["pipe", "pipe", "ignore"], cwd: "/" });
  child.on("error", () => undefined);
  child.stdin.on("error", () => undefined);
  const ready = new Promise<boolean>((resolve) => {
    let said = "";
    child.stdout.on("data", (d: Buffer) => {
      said += d.toString();
      if (said.includes("ready\n")) resolve(true);
    });
    child.stdout.on("error", () => resolve(false));
    child.on("exit", () => resolve(false));
  });
  const letGo = () => {
    child.stdin.end();
    child.stdout.destroy();
    child.unref();
  };
  return {
    async go() {
      child.stdin.write("go\n");
      let timer: NodeJS.Timeout | undefined;
      const ok = await Promise.race([ready, new Promise<boolean>((r) => (timer = setTimeout(() => r(false), PREFETCHER_READY_MS)))]);
      clearTimeout(timer);
      letGo();
      return ok;
    },
    cancel: letGo,
  };
}

/** Waits for `cairn pg restore`'s go on standard input; false when the input ends without it. */
function restoreSaysGo(): Promise<boolean> {
  return new Promise((resolve) => {
    let heard = "";
    process.stdin.on("data", (d: Buffer) => {
      heard += d.toString();
      if (!heard.split("\n").includes("go")) return;
      // Nothing more is read: the open input must not keep this process running once the prefetcher ends.
      process.stdin.destroy();
      resolve(true);
    });
    process.stdin.on("end", () => resolve(false));
    process.stdin.on("error", () => resolve(false));
    // Once the restore has gone, its end of the pipes is closed: nothing is written there after "ready".
    process.stdout.on("error", () => undefined);
  });
}

/**
 * A restore run as root hands the data directory to its owner (the server's user);
 * the prefetcher then writes there as that user, so that restore_command, run by the
 * server, can read its pid file and take its files.
 */
async function becomeOwnerOf(pgdata: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const st = await fs.stat(pgdata);
  if (st.uid === 0) return;
  process.setgid!(st.gid);
  process.setuid!(st.uid);
}

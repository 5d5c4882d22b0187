import { spawn } from "node:child_process";
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
    .option("--prefetch <n>", "while the data directory is in recovery, start `cairn pg wal-prefetch` (when not running) to serve the next calls and keep n segments fetched ahead; 0: none", "8")
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
    .option("--window <n>", "whole segments kept fetched ahead", "8")
    .action(async (o: { pgdata: string; systemId: string; window: string }, cmd: Command) => {
      const opts = globals(cmd);
      const signal = untilSignalled();
      await withRepository(
        opts,
        "none",
        "wal-prefetch",
        (repo) => new WalPrefetcher(new WalArchive(repo), { pgdata: path.resolve(o.pgdata), systemId: o.systemId, window: Math.max(0, Number(o.window) || 0), signal }).run(),
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

/**
 * Starts `cairn pg wal-prefetch` for this recovery, detached: restore_command returns
 * at once, and the prefetcher outlives it (in its own session, so PostgreSQL's signals
 * to the startup process's group do not reach it; it stops by itself when recovery ends).
 */
function startPrefetcher(opts: GlobalOptions, pgdata: string, systemId: string, window: number): void {
  const repository = opts.repo ? ["-r", opts.repo] : [];
  const password = opts.passwordFile ? ["--password-file", path.resolve(opts.passwordFile)] : [];
  const args = [...process.execArgv, process.argv[1], ...repository, ...password, "pg", "wal-prefetch", "--pgdata", pgdata, "--system-id", systemId, "--window", String(window)];
  const child = spawn(process.execPath, args, { detached: true, stdio: "ignore", cwd: pgdata });
  child.on("error", () => undefined);
  child.unref();
}

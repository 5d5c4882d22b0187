import { Command, CommanderError } from "commander";
import { IntegrityError } from "../engine/crypto.js";
import { CairnError } from "../engine/errors.js";
import { BackendError } from "../backends/backend.js";
import { PROGRAM } from "../engine/archiver.js";
import { stopCodecThreads } from "../engine/codec-pool.js";
import { StdoutClosed, stdoutFailure, watchStdout } from "./common.js";
import { positionals } from "./nursery.js";

/**
 * Every verb, one file each (cmd_<verb>.ts), loaded only when used: archive_command and
 * restore_command start one process per WAL file, which then loads just `pg`.
 */
const COMMANDS: Record<string, () => Promise<{ register(program: Command): void }>> = {
  init: () => import("./cmd_init.js"),
  backup: () => import("./cmd_backup.js"),
  snapshots: () => import("./cmd_snapshots.js"),
  ls: () => import("./cmd_ls.js"),
  restore: () => import("./cmd_restore.js"),
  dump: () => import("./cmd_dump.js"),
  key: () => import("./cmd_key.js"),
  check: () => import("./cmd_check.js"),
  stats: () => import("./cmd_stats.js"),
  diff: () => import("./cmd_diff.js"),
  forget: () => import("./cmd_forget.js"),
  prune: () => import("./cmd_prune.js"),
  copy: () => import("./cmd_copy.js"),
  pg: () => import("./cmd_pg.js"),
  mysql: () => import("./cmd_mysql.js"),
  audit: () => import("./cmd_audit.js"),
  platform: () => import("./cmd_platform.js"),
};

/** The verb an argument list names, when it is one of ours. */
function verbOf(argv: string[]): string | undefined {
  const [verb] = positionals(argv);
  return verb !== undefined && Object.hasOwn(COMMANDS, verb) ? verb : undefined;
}

/**
 * The program with every verb, or only `verb` (all of them when it is not one of ours, so help
 * lists everything), or none when `verb` is null: `cairn --version` needs no verb, and loading
 * them all (the platform's among them) took 250 MiB and seconds to print one line.
 */
export async function buildProgram(verb?: string | null): Promise<Command> {
  const program = new Command("cairn")
    .description("Cairn: deduplicated, compressed, encrypted backups")
    .version(PROGRAM.split(" ")[1])
    .option("-r, --repo <location>", "repository location (or CAIRN_REPOSITORY)")
    .option("--password-file <file>", "read the password from a file (or CAIRN_PASSWORD_FILE / CAIRN_PASSWORD)")
    .option("--json", "print results as JSON")
    .option("-q, --quiet", "print nothing but errors")
    .option("--retry-lock <duration>", "wait up to this long (e.g. 5m) for a locked repository")
    .option("--no-lock", "do not lock the repository (read-only commands only; use with care)")
    .showHelpAfterError()
    .exitOverride();
  program.addHelpText(
    "after",
    "\nExit codes: 0 ok, 1 fatal error, 3 backup finished but some files could not be read,\n10 no repository at that location, 11 repository locked, 12 wrong password.",
  );
  const names = verb === null ? [] : verb ? [verb] : Object.keys(COMMANDS);
  for (const name of names) (await COMMANDS[name]()).register(program);
  for (const c of program.commands) c.exitOverride();
  return program;
}

/** How long an ending process waits for codec threads to finish the call they are in. */
const THREAD_PATIENCE_MS = 500;
/** The exit code of a command that stopped before it finished (see run()): EX_SOFTWARE, an internal error. */
export const STALLED_EXIT = 70;
/** How long after the command has finished the process may take to end on its own. */
const EXIT_PATIENCE_MS = 1000;

/**
 * The `cairn` process: runs the command, sets its exit code and lets the process end.
 * After a failure, work still running (codec threads, writes of a restore, a backend's
 * sockets) must not keep it alive: codec threads are stopped between calls, and if the
 * process has not ended EXIT_PATIENCE_MS later it is ended. It ends on its own when it
 * can because process.exit() while V8 compiles in the background can deadlock
 * (nodejs/node#54918).
 */
export async function run(argv: string[]): Promise<void> {
  watchStdout();
  const settled = failIfStalled();
  let code: number;
  try {
    code = await main(argv);
  } catch (err) {
    process.stderr.write(`cairn: ${(err as Error)?.stack ?? err}\n`);
    code = 1;
  }
  const failure = stdoutFailure();
  if (failure) {
    process.stderr.write(`cairn: cannot write to standard output: ${failure.message}\n`);
    code ||= 1;
  }
  settled();
  process.exitCode = code;
  setTimeout(() => process.exit(code), EXIT_PATIENCE_MS).unref();
  // A thread torn down in the middle of a zstd call aborts the process: let each end between calls.
  await stopCodecThreads(THREAD_PATIENCE_MS);
}

/**
 * Node ends a process whose event loop is empty even while a promise is still awaited, with
 * exit code 0: a command stalled on work that can no longer finish would look like a success
 * (a backup that was never recorded, reported as done). Until the returned function is called
 * (the command has settled), such an end is an internal error with exit code STALLED_EXIT.
 */
export function failIfStalled(): () => void {
  const stalled = () => {
    process.stderr.write("cairn: internal error: the command stopped before it finished (it was waiting for work that can no longer end); it did not complete: run it again, and please report this\n");
    process.exitCode = STALLED_EXIT;
  };
  process.once("beforeExit", stalled);
  return () => process.off("beforeExit", stalled);
}

/** `cairn --version` (or -V) and nothing else. */
function asksVersionOnly(argv: string[]): boolean {
  return argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V");
}

export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram(asksVersionOnly(argv) ? null : verbOf(argv));
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 1;
    // The reader of standard output went away (cairn dump ... | head -c 100): it had what it wanted.
    if (err instanceof StdoutClosed) return 0;
    const json = argv.includes("--json");
    const code = err instanceof CairnError ? err.exitCode : 1;
    const message =
      err instanceof CairnError || err instanceof BackendError
        ? err.message
        : err instanceof IntegrityError
          ? `${err.message}; run "cairn check --read-data" to find what is damaged`
          : (err as Error)?.stack ?? String(err);
    if (json) process.stderr.write(JSON.stringify({ error: message, code }) + "\n");
    else process.stderr.write(`cairn: ${message}\n`);
    return code;
  }
}

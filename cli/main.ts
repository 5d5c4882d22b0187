import { Command, CommanderError } from "commander";
import { IntegrityError } from "../engine/crypto.js";
import { CairnError } from "../engine/errors.js";
import { BackendError } from "../backends/backend.js";
import { PROGRAM } from "../engine/archiver.js";

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
  audit: () => import("./cmd_audit.js"),
  platform: () => import("./cmd_platform.js"),
};

/** Global options that take a value, so the verb can be found after them. */
const VALUE_OPTIONS = new Set(["-r", "--repo", "--password-file", "--retry-lock"]);

/** The verb an argument list names, when it is one of ours. */
function verbOf(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (VALUE_OPTIONS.has(a)) i++;
    else if (!a.startsWith("-")) return Object.hasOwn(COMMANDS, a) ? a : undefined;
  }
  return undefined;
}

/** The program with every verb, or only `verb` (all of them when it is not one of ours, so help lists everything). */
export async function buildProgram(verb?: string): Promise<Command> {
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
  for (const name of verb ? [verb] : Object.keys(COMMANDS)) (await COMMANDS[name]()).register(program);
  for (const c of program.commands) c.exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram(verbOf(argv));
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 1;
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

import { Command, CommanderError } from "commander";
import { IntegrityError } from "../engine/crypto.js";
import { CairnError } from "../engine/errors.js";
import { BackendError } from "../backends/backend.js";
import { PROGRAM } from "../engine/archiver.js";
import * as audit from "./cmd_audit.js";
import * as backup from "./cmd_backup.js";
import * as check from "./cmd_check.js";
import * as copy from "./cmd_copy.js";
import * as diff from "./cmd_diff.js";
import * as dump from "./cmd_dump.js";
import * as forget from "./cmd_forget.js";
import * as init from "./cmd_init.js";
import * as key from "./cmd_key.js";
import * as pg from "./cmd_pg.js";
import * as platform from "./cmd_platform.js";
import * as ls from "./cmd_ls.js";
import * as prune from "./cmd_prune.js";
import * as restore from "./cmd_restore.js";
import * as snapshots from "./cmd_snapshots.js";
import * as stats from "./cmd_stats.js";

/** Every verb, one file each (cmd_<verb>.ts). */
const COMMANDS = [init, backup, snapshots, ls, restore, dump, key, check, stats, diff, forget, prune, copy, pg, audit, platform];

export function buildProgram(): Command {
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
  for (const c of COMMANDS) c.register(program);
  for (const c of program.commands) c.exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
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

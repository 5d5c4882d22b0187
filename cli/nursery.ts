/**
 * The young generation ("nursery") of the `cairn` process. V8 sizes it up to 16 MiB per
 * semi-space by default; a command moving hundreds of thousands of small blobs fills
 * it at a high rate, and a large nursery only turns that garbage into resident memory
 * (a re-backup of 200,000 files: 289 MiB with the default, 192 MiB with 1 MiB). The
 * size can only be given when V8 starts, so bin/cairn.js replaces its own process
 * (execve: same pid, same standard streams and signals, the exit code is the new
 * program's) with node started with NURSERY_FLAG, once, before loading anything else.
 * Commands started once per WAL segment skip that: a second start of node costs more
 * than their memory is worth.
 */
export const NURSERY_FLAG = "--max-semi-space-size=1";

/**
 * Given with NURSERY_FLAG: the old generation may grow by a fifth before the next full
 * collection, not by V8's default factor (up to 4x for a heap that grows fast). With a
 * 1 MiB nursery much short-lived garbage (a directory's tree nodes, a batch of restore
 * plans) is promoted, and the default factor let it pile up: on 200,000 small files
 * (REPS=1 each, same machine) an unchanged re-backup peaked at 135 MiB with the default
 * and 121 with this, a restore at 301 and 240, at about the same CPU time; on the
 * 1 GiB set, where the heap stays small, every row was within 5 MiB of the default.
 */
export const HEAP_GROWTH_FLAG = "--heap-growing-percent=20";

/**
 * Given with NURSERY_FLAG: V8 maps its built-in code a second time near each isolate's code
 * ("short builtin calls"), 2 MiB of the node binary counted again for the main thread and
 * for every codec thread. Without it, 1 GiB set backup after the 5% change, four runs each:
 * 117-124 MiB instead of 125-129, at the same CPU time (2.54-3.04 s user against 2.54-2.91);
 * first backup 133 instead of 137-138.
 */
export const BUILTINS_FLAG = "--no-short-builtin-calls";

/**
 * glibc's malloc arenas for the restarted process, unless the environment names its own
 * count: by default every thread that allocates (main, codec threads, libuv's pool, V8's
 * helpers) may get an arena of its own, each keeping freed memory. Two arenas, 200,000
 * small files, two runs each: first backup 157-158 -> 151-153 MiB, unchanged re-backup
 * 110-113 -> 107, at the same CPU time.
 */
export const MALLOC_ARENAS = "2";

/** Global options that take a value, so the verb can be found after them. */
export const VALUE_OPTIONS = new Set(["-r", "--repo", "--password-file", "--retry-lock"]);

/** Verbs that read or write much data, and so get the small nursery. */
const DATA_VERBS = new Set(["backup", "restore", "check", "prune", "forget", "copy", "dump", "ls", "diff", "stats", "pg", "mysql"]);
/** Sub-verbs of those started once per file by a database server (archive_command, restore_command). */
const PER_FILE = new Set(["pg wal-push", "pg wal-fetch"]);

/** The words of an argument list that are neither global options nor their values: the verb, then its sub-verb and operands. */
export function positionals(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (VALUE_OPTIONS.has(a)) i++;
    else if (!a.startsWith("-")) out.push(a);
  }
  return out;
}

/** True when this command should run with the small nursery and node was not started with a semi-space size of its own. */
export function wantsNursery(argv: readonly string[], execArgv: readonly string[], nodeOptions = ""): boolean {
  const [verb, sub] = positionals(argv);
  if (!verb || !DATA_VERBS.has(verb) || PER_FILE.has(`${verb} ${sub}`)) return false;
  if (argv.includes("--help") || argv.includes("-h")) return false;
  return ![...execArgv, ...nodeOptions.split(/\s+/)].some((a) => a.startsWith("--max-semi-space-size"));
}

/**
 * Replaces this process with node started with NURSERY_FLAG when `wantsNursery`; returns
 * only when it does not (then the command runs here, with V8's default nursery: on a
 * Node without process.execve, or where execve fails).
 */
export function restartWithNursery(argv: readonly string[]): void {
  if (!wantsNursery(argv, process.execArgv, process.env.NODE_OPTIONS)) return;
  const execve = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve;
  if (typeof execve !== "function") return;
  try {
    execve.call(process, process.execPath, [process.execPath, NURSERY_FLAG, HEAP_GROWTH_FLAG, BUILTINS_FLAG, ...process.execArgv, process.argv[1], ...argv], { MALLOC_ARENA_MAX: MALLOC_ARENAS, ...process.env });
  } catch {
    // Running with the default nursery costs memory, nothing else.
  }
}

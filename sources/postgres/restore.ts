import { promises as fs } from "node:fs";
import * as path from "node:path";
import { CairnError } from "../../engine/errors.js";
import type { Repository } from "../../engine/repository.js";
import { Restorer, type RestoreResult } from "../../engine/restorer.js";
import { TreeLoader } from "../../engine/tree.js";
import { PGDATA_DIR, physicalVersionRefusal } from "./basebackup.js";
import type { BaseBackup, RecoveryTarget } from "./recovery.js";
import { PREFETCH_DIR, type WalArchive } from "./archive.js";
import { PREFETCH_PID } from "./prefetch.js";
import { formatLsn, systemIdFromControl } from "./wal.js";

export type TargetAction = "promote" | "pause" | "shutdown";

export interface DataDirOptions {
  targetDir: string;
  target: RecoveryTarget;
  /** The target as the user wrote it, passed to PostgreSQL as it is (a time keeps its microseconds and zone). */
  targetText?: string;
  action: TargetAction;
  /** restore_command with %f and %p left for PostgreSQL. */
  restoreCommand: string;
  /**
   * Restore over the stopped data directory of the same cluster (checked with
   * ensureDeltaTarget first): files whose size and content match the backup are left
   * as they are, only differing blocks are written, files the backup does not have go.
   */
  delta?: boolean;
  /**
   * recovery (default): recover to the target, then act. standby: a standby that
   * keeps replaying archived WAL as it comes (the target must be latest).
   */
  mode?: "recovery" | "standby";
  /**
   * The first WAL segments recovery will ask for, fetched while the base backup is
   * restored into PREFETCH_DIR: restore_command hands them over at once while the first
   * wal-fetch starts the prefetcher (prefetch.ts).
   */
  walAhead?: { archive: WalArchive; systemId: string; segments: string[] };
}

/** Segments fetched ahead by the restore itself; the prefetcher takes over from the last of them. */
export const WAL_AHEAD_AT_RESTORE = 4;

/**
 * Refuses a data directory that is in use or holds anything: recovery writes a whole
 * cluster, and must never mix it with files already there.
 */
export async function ensureEmptyTarget(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw new CairnError(`cannot read ${dir}: ${(err as Error).message}`);
  }
  if (names.includes("postmaster.pid")) throw new CairnError(`${dir} is the data directory of a running (or crashed) PostgreSQL server; stop it and restore into another, empty directory`);
  if (names.length) throw new CairnError(`${dir} is not empty; restore into a new or empty directory (Cairn never overwrites a data directory)`);
}

/**
 * Refuses a directory a delta restore must not touch: one that is not a data
 * directory, is in use (postmaster.pid), or belongs to another cluster than the
 * backup's (its pg_control names another system identifier).
 */
export async function ensureDeltaTarget(dir: string, systemId: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    throw new CairnError(`cannot read ${dir}: ${(err as Error).message}; --delta restores over an existing data directory (leave it out to restore into a new one)`);
  }
  if (names.includes("postmaster.pid")) {
    throw new CairnError(`${dir} has postmaster.pid: a server runs on it (or crashed); stop it with pg_ctl -D ${dir} stop before a delta restore (after a crash, make sure no server runs, then remove postmaster.pid)`);
  }
  let control: Buffer;
  try {
    control = await fs.readFile(path.join(dir, "global", "pg_control"));
  } catch {
    throw new CairnError(`${dir} has no global/pg_control: it is not a PostgreSQL data directory; --delta only restores over the data directory of the backed-up cluster (leave it out to restore into a new, empty directory)`);
  }
  const found = systemIdFromControl(control);
  if (found !== systemId) {
    throw new CairnError(`${dir} is the data directory of database system ${found}, but the base backup is of system ${systemId}; a delta restore never writes over another cluster: restore into a new, empty directory instead`);
  }
}

/** Restores a base backup into `targetDir` and sets it up to recover to the target when started. */
export async function writeDataDir(repo: Repository, backup: BaseBackup, o: DataDirOptions): Promise<RestoreResult> {
  if (o.mode === "standby" && o.target.kind !== "latest") throw new CairnError("a standby replays all the WAL there is: it takes no recovery target");
  const tooOld = physicalVersionRefusal(backup.source.serverVersion);
  if (tooOld) throw new CairnError(`snapshot ${backup.id.slice(0, 8)} cannot be restored: ${tooOld}; restore a logical dump instead`);
  const dir = path.resolve(o.targetDir);
  if (o.delta) await ensureDeltaTarget(dir, backup.source.systemId);
  else await ensureEmptyTarget(dir);
  const loader = new TreeLoader(repo);
  let treeId = backup.tree;
  let owner: { uid: number; gid: number } | undefined;
  for (const name of ["postgres", backup.source.systemId, PGDATA_DIR]) {
    const node = (await loader.load(treeId)).nodes.find((n) => n.name === name && n.type === "dir");
    if (!node?.subtree) throw new CairnError(`snapshot ${backup.id.slice(0, 8)} has no ${name} directory where a base backup keeps its data; it is not a base backup Cairn can restore`);
    treeId = node.subtree;
    owner = { uid: node.uid, gid: node.gid };
  }
  // The directories above are Cairn's own (owned by whoever took the backup, root for a root worker); the
  // server's files carry their owner from pg_basebackup's stream, and the data directory must be theirs.
  const version = (await loader.load(treeId)).nodes.find((n) => n.name === "PG_VERSION" && n.type === "file");
  if (version) owner = { uid: version.uid, gid: version.gid };
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  // Beside the restore, in a directory of the target's root that the tree has no entry for; a delta restore removes what its tree lacks, so it fetches after.
  const ahead = path.join(dir, ".cairn-wal-ahead");
  // Its failure is held until the restore is done (an unheld rejection would end the process).
  const fetchingAhead = o.walAhead && !o.delta ? fetchWalAhead(o.walAhead, ahead).then(() => undefined, (err: unknown) => err) : undefined;
  const result = await new Restorer(repo, { target: dir, ...(o.delta ? { overwrite: "if-changed" as const, delete: true } : {}) }).restore(treeId);
  if (o.walAhead) {
    if (o.delta) await fetchWalAhead(o.walAhead, ahead);
    else {
      const failed = await fetchingAhead;
      if (failed) throw failed;
    }
    await fs.rm(path.join(dir, PREFETCH_DIR), { recursive: true, force: true });
    await fs.rename(ahead, path.join(dir, PREFETCH_DIR));
  }
  await fs.chmod(dir, 0o700);
  if (process.getuid?.() === 0 && owner) await fs.chown(dir, owner.uid, owner.gid);
  const lines = [
    "",
    `# Added by cairn pg restore from base backup ${backup.id.slice(0, 8)} (${backup.source.stopTime}, LSN ${backup.source.stopLsn})`,
    `restore_command = '${o.restoreCommand.replace(/'/g, "''")}'`,
    "recovery_target_timeline = 'latest'",
  ];
  const t = o.target;
  const quoted = (v: string) => `'${v.replace(/'/g, "''")}'`;
  if (t.kind === "immediate") lines.push("recovery_target = 'immediate'");
  if (t.kind === "time") lines.push(`recovery_target_time = ${quoted(o.targetText ?? t.time.toISOString())}`);
  if (t.kind === "lsn") lines.push(`recovery_target_lsn = '${formatLsn(t.lsn)}'`);
  if (t.kind === "xid") lines.push(`recovery_target_xid = '${t.xid}'`);
  if (t.kind === "name") lines.push(`recovery_target_name = ${quoted(t.name)}`);
  if (t.kind !== "latest") lines.push(`recovery_target_action = '${o.action}'`);
  const auto = path.join(dir, "postgresql.auto.conf");
  await fs.appendFile(auto, lines.join("\n") + "\n");
  const signal = path.join(dir, o.mode === "standby" ? "standby.signal" : "recovery.signal");
  await fs.writeFile(signal, "", { mode: 0o600 });
  if (process.getuid?.() === 0 && owner) {
    await fs.chown(signal, owner.uid, owner.gid);
    await fs.chown(auto, owner.uid, owner.gid);
    if (o.walAhead) {
      const prefetched = path.join(dir, PREFETCH_DIR);
      await fs.chown(prefetched, owner.uid, owner.gid);
      for (const n of await fs.readdir(prefetched)) await fs.chown(path.join(prefetched, n), owner.uid, owner.gid);
    }
  }
  return result;
}

/** Fetches whole segments (never a .partial, which a later whole segment replaces) into `dir`, stopping at the first the archive lacks. */
async function fetchWalAhead(w: NonNullable<DataDirOptions["walAhead"]>, dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  for (const name of w.segments.slice(0, WAL_AHEAD_AT_RESTORE)) if (!(await w.archive.fetch(w.systemId, name, path.join(dir, name), false))) break;
}

/** One word for the shell that runs restore_command, in double quotes (", \, $ and ` escaped). */
function q(s: string): string {
  return `"${s.replace(/(["\\$`])/g, "\\$1")}"`;
}

/** Rounds of 20 ms that restore_command waits for the prefetcher's answer before it runs cairn itself. */
const PREFETCHER_WAIT_ROUNDS = 3000;

/**
 * PostgreSQL 12 and older expand restore_command into a buffer of MAXPGPATH (1024)
 * bytes and silently cut what does not fit, so the shell would run half a command;
 * 13 builds it in a growing string.
 */
export const RESTORE_COMMAND_MAX_BEFORE_13 = 1023;

/**
 * restore_command's length once PostgreSQL replaced its placeholders: %f by a file
 * name (a segment's 24 characters at most: recovery asks for segments and .history
 * files) and %p by pg_wal/RECOVERYXLOG (a path relative to the data directory, so the
 * data directory's own path never counts).
 */
export function expandedLength(command: string): number {
  return command.replace(/%(.)/g, (_, c: string) => (c === "f" ? "0".repeat(24) : c === "p" ? "pg_wal/RECOVERYXLOG" : c === "r" ? "0".repeat(24) : c === "%" ? "%" : "")).length;
}

/**
 * restore_command that fetches each WAL file from the repository with `cairn pg
 * wal-fetch`: `program` runs cairn (node and its script), `repository` is where
 * the repository is, and its password is read from `passwordFile` (never on the
 * command line, which any user can see). Starting Node and opening the repository
 * costs far more than a WAL file, so the shell first asks the prefetcher that the
 * first wal-fetch started (prefetch.ts, PREFETCH_DIR relative to the data directory
 * where restore_command runs): a segment it fetched ahead is moved into place, any
 * other file is asked for with a `.want` file and its answer awaited. Only when no
 * prefetcher runs, or it could not read the file, does cairn start.
 *
 * `pgMajor` is the PostgreSQL major version of the data directory: before 13 the
 * expanded command must fit in RESTORE_COMMAND_MAX_BEFORE_13 bytes. When the shell
 * part does not fit beside long paths, the command is cairn alone (wal-fetch still
 * takes segments fetched ahead and starts the prefetcher, it only costs a Node start
 * per file); when even that does not fit, it is refused, naming the paths to shorten.
 */
export function walFetchCommand(o: { program: string[]; repository: string; passwordFile?: string; systemId: string; pgMajor?: number }): string {
  const cairn = (f: string, p: string) => [...o.program.map(q), "-r", q(o.repository), ...(o.passwordFile ? ["--password-file", q(o.passwordFile)] : []), "pg", "wal-fetch", "--system-id", o.systemId, f, p].join(" ");
  // %f and %p are set once: each use below would otherwise count their expanded length again.
  const d = PREFETCH_DIR;
  const take = (file: string) => `test -f ${file} && mv -f ${file} "$p" && exit 0`;
  const withPrefetcher = [
    `f=%f; p="%p"; d=${d}`,
    take("$d/$f"),
    "x=$(cat $d/" + PREFETCH_PID + " 2>/dev/null)",
    `if test -n "$x" && kill -0 "$x" 2>/dev/null && rm -f $d/$f.ready $d/$f.missing $d/$f.error && : > $d/$f.want; then n=0; ` +
      `while test $n -lt ${PREFETCHER_WAIT_ROUNDS} && kill -0 "$x" 2>/dev/null; do ${take("$d/$f.ready")}; ${take("$d/$f")}; ` +
      `test -f $d/$f.missing && rm -f $d/$f.missing && exit 1; test -f $d/$f.error && break; sleep 0.02; n=$((n+1)); done; rm -f $d/$f.want; fi`,
    cairn("$f", '"$p"'),
  ].join("; ");
  if (o.pgMajor === undefined || o.pgMajor >= 13 || expandedLength(withPrefetcher) <= RESTORE_COMMAND_MAX_BEFORE_13) return withPrefetcher;
  const alone = cairn("%f", '"%p"');
  if (expandedLength(alone) <= RESTORE_COMMAND_MAX_BEFORE_13) return alone;
  throw new CairnError(
    `restore_command would be ${expandedLength(alone)} bytes once PostgreSQL expands it, and PostgreSQL ${o.pgMajor} cuts it at ${RESTORE_COMMAND_MAX_BEFORE_13} bytes ` +
      `(13 and newer do not): shorten the paths in it (node ${o.program[0]}, cairn ${o.program.slice(1).join(" ")}, the repository ${o.repository}${o.passwordFile ? `, the password file ${o.passwordFile}` : ""}), for example with symbolic links, and restore again`,
  );
}

/**
 * restore_command that asks the worker serving `socket` for each WAL file (`cairn pg
 * wal-fetch --via`): no repository, password or credentials on the command line, in
 * the server's environment or in its data directory.
 */
export function walFetchViaCommand(o: { program: string[]; socket: string }): string {
  return [...o.program.map(q), "pg", "wal-fetch", "--via", q(o.socket), "%f", '"%p"'].join(" ");
}

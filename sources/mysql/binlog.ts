import { spawn } from "node:child_process";
import { createWriteStream, promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { BackupResult } from "../../engine/archiver.js";
import { CairnError } from "../../engine/errors.js";
import type { Repository } from "../../engine/repository.js";
import { loadSnapshots, type SnapshotEntry } from "../../engine/snapshot.js";
import { subtreeAt, TreeLoader } from "../../engine/tree.js";
import { blobs, mysqlPhysicalBackups, restoreMysqlPhysical, serverDir, type MysqlPhysicalInfo } from "./physical.js";
import { loadBinlogPartial, readBinlogPartial, type BinlogPartial } from "./binlog-stream.js";
import { BINLOG_DIR, binlogArchives, binlogSequence as sequence, requireLogBin, storeBinlogs } from "./binlog-store.js";
import { mysqlTool, query, startTool } from "./tools.js";

export { binlogArchives, MYSQL_BINLOG_TAG, type MysqlBinlogInfo } from "./binlog-store.js";

export interface BinlogArchiveOptions {
  optionFile: string;
  /** Close the current binary log first (FLUSH BINARY LOGS), so everything written until now is archived. */
  rotate?: boolean;
  tags?: string[];
  host?: string;
}

/**
 * Copies the server's closed binary logs that the repository does not have yet into a
 * new snapshot, read over the replication protocol (`mariadb-binlog
 * --read-from-remote-server --raw`), so it works from any host the server lets the
 * user connect from. Idempotent: a log already archived is not fetched again; with
 * nothing new, no snapshot is written. The user needs REPLICATION SLAVE, BINLOG
 * MONITOR and (to rotate) RELOAD.
 */
export async function archiveBinlogs(repo: Repository, snapshots: SnapshotEntry[], o: BinlogArchiveOptions): Promise<{ server: string; files: string[]; result?: BackupResult }> {
  const server = await requireLogBin(o.optionFile);
  if (o.rotate !== false) await query(o.optionFile, "FLUSH BINARY LOGS");
  const logs = (await query(o.optionFile, "SHOW BINARY LOGS")).map(([name, size]) => ({ name, size: Number(size) }));
  const closed = logs.slice(0, -1);
  const have = new Set(binlogArchives(snapshots, server).flatMap((s) => s.source.files.map((f) => `${f.name}/${f.size}`)));
  const fresh = closed.filter((f) => !have.has(`${f.name}/${f.size}`));
  if (!fresh.length) return { server, files: [] };
  const work = await fs.mkdtemp(path.join(process.env.CAIRN_TMPDIR ?? tmpdir(), "cairn-binlog-"));
  try {
    for (const f of fresh) await startTool("mariadb-binlog", ["--read-from-remote-server", "--raw", `--result-file=${work}/`, f.name], { optionFile: o.optionFile }).done;
    const result = await storeBinlogs(repo, server, work, fresh, { tags: o.tags, host: o.host, check: "exact" });
    return { server, files: fresh.map((f) => f.name), result };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** Where to stop replaying: the end of the archive, a time, or a binary log position (file and offset). */
export type MysqlTarget = { kind: "latest" } | { kind: "time"; time: Date } | { kind: "position"; file: string; position: number };

/** `binlog.000012:4711` as a target. */
export function parsePosition(text: string): MysqlTarget {
  const m = /^(.+):(\d+)$/.exec(text);
  if (!m) throw new CairnError(`write the binary log position as FILE:OFFSET, such as binlog.000012:4711, not ${text}`);
  return { kind: "position", file: m[1], position: Number(m[2]) };
}

export interface MysqlRecoveryPlan {
  backup: SnapshotEntry & { source: MysqlPhysicalInfo };
  /** The archived binary logs to replay, in order, from the backup's position. */
  binlogs: string[];
}

/**
 * Chooses the newest physical backup taken before the target and the archived binary
 * logs that lead from it to the target. Throws naming a missing log when the chain
 * has a gap. `partial` (the continuous archiver's copy of the log the server writes
 * now, binlog-stream.ts) counts as archived for its log.
 */
export function planRecovery(snapshots: SnapshotEntry[], target: MysqlTarget, server?: string, partial?: BinlogPartial): MysqlRecoveryPlan {
  const backups = mysqlPhysicalBackups(snapshots).filter((b) => !server || b.source.server === server);
  if (!backups.length) throw new CairnError(`there is no physical backup${server ? ` of ${server}` : ""} in this repository; take one with "cairn mysql backup --physical"`);
  const name = server ?? backups[backups.length - 1].source.server;
  const before = backups.filter((b) => {
    if (b.source.server !== name) return false;
    if (target.kind === "time") return new Date(b.source.stopTime) <= target.time;
    if (target.kind === "position") return b.source.binlogFile !== undefined && (sequence(b.source.binlogFile) < sequence(target.file) || (b.source.binlogFile === target.file && b.source.binlogPosition! <= target.position));
    return true;
  });
  const backup = before[before.length - 1];
  if (!backup) throw new CairnError(`no physical backup of ${name} ended before the target; the oldest ended ${backups.find((b) => b.source.server === name)?.source.stopTime}`);
  const ofServer = partial?.server === name ? partial : undefined;
  if (target.kind === "latest" && !binlogArchives(snapshots, name).length && !ofServer) return { backup, binlogs: [] };
  if (!backup.source.binlogFile) throw new CairnError(`backup ${backup.id.slice(0, 8)} has no binary log position (the server wrote no binary log); it can only be restored as it is`);
  const archived = new Set(binlogArchives(snapshots, name).flatMap((s) => s.source.files.map((f) => f.name)));
  if (ofServer) archived.add(ofServer.name);
  const first = sequence(backup.source.binlogFile);
  const last = target.kind === "position" ? sequence(target.file) : Math.max(first, ...[...archived].map(sequence));
  const binlogs: string[] = [];
  const base = backup.source.binlogFile.replace(/\.\d+$/, "");
  const width = /\.(\d+)$/.exec(backup.source.binlogFile)![1].length;
  for (let n = first; n <= last; n++) {
    const file = `${base}.${String(n).padStart(width, "0")}`;
    if (!archived.has(file)) throw new CairnError(`binary log ${file} of ${name} is not in the repository, so the backup of ${backup.source.stopTime} cannot be brought past it; archive it with "cairn mysql binlog-archive" if the server still has it`);
    binlogs.push(file);
  }
  return { backup, binlogs };
}

export interface PointInTimeOptions {
  targetDir: string;
  target: MysqlTarget;
  server?: string;
}

/**
 * Point-in-time recovery into a new data directory: restores and prepares the chosen
 * physical backup, then replays the archived binary logs up to the target
 * (replayBinlogs). The directory is left ready for the DBA's own server.
 */
export async function recoverToPoint(repo: Repository, snapshots: SnapshotEntry[], o: PointInTimeOptions): Promise<MysqlRecoveryPlan & { replayed: number }> {
  const server = o.server ?? mysqlPhysicalBackups(snapshots).at(-1)?.source.server;
  const plan = planRecovery(snapshots, o.target, o.server, server ? await loadBinlogPartial(repo, server) : undefined);
  const dir = path.resolve(o.targetDir);
  await restoreMysqlPhysical(repo, plan.backup, dir);
  return { ...plan, replayed: await replayBinlogs(repo, snapshots, plan, dir, o.target) };
}

/**
 * Brings a restored, prepared data directory from its backup's binary log position to
 * the target: starts a private server on it (no network, a socket inside the
 * directory, no binary log of its own), pipes the plan's archived binary logs through
 * mariadb-binlog into it, then stops it. Not idempotent: events replayed twice are
 * applied twice, so a failed replay means restoring again. Returns the logs replayed.
 */
export async function replayBinlogs(repo: Repository, snapshots: SnapshotEntry[], plan: MysqlRecoveryPlan, dir: string, target: MysqlTarget): Promise<number> {
  if (!plan.binlogs.length) return 0;
  const work = await fs.mkdtemp(path.join(process.env.CAIRN_TMPDIR ?? tmpdir(), "cairn-binlog-"));
  try {
    const files: string[] = [];
    for (const name of plan.binlogs) {
      const file = path.join(work, name);
      await pipeline(await binlogContent(repo, snapshots, plan.backup.source.server, name), createWriteStream(file, { mode: 0o600 }));
      files.push(file);
    }
    const args = ["--disable-log-bin", `--start-position=${plan.backup.source.binlogPosition}`];
    if (target.kind === "time") args.push(`--stop-datetime=${binlogTime(target.time)}`);
    if (target.kind === "position") args.push(`--stop-position=${target.position}`);
    await withPrivateServer(dir, async (socket) => {
      const reader = startTool("mariadb-binlog", [...args, ...files], { env: { TZ: "UTC" } });
      const applying = startTool("mariadb", [`--socket=${socket}`, "--protocol=socket", "--user=root", "--binary-mode"], { input: withPreamble("FLUSH PRIVILEGES;\n", reader.child.stdout) });
      await Promise.all([reader.done, applying.done]);
    });
    return files.length;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** What a server's repository can recover to: from the end of its oldest physical backup to the end of the archived binary logs that follow its newest. */
export interface MysqlWindow {
  server?: string;
  physicalBackups: number;
  /** Binary logs of the server in the repository. */
  archivedBinlogs: number;
  earliest?: { time: string; snapshotId: string; binlogFile?: string; binlogPosition?: number };
  /** The end of the archived chain from the newest backup: its last log, and when it was archived (every event in it is older). */
  latest?: { time: string; binlogFile?: string };
  /** A binary log missing from the archive after the newest backup: recovery cannot pass it. */
  missing?: string;
  /** The log the server writes now, as far as the continuous archiver stored it (through: every event before that time). */
  partial?: { binlogFile: string; size: number; through: string };
}

/**
 * The recovery window of `server` (default: the one with the newest physical backup)
 * from these snapshots, and the continuous archiver's partial of the current log,
 * which reaches the time it was stored through.
 */
export function recoveryWindow(snapshots: SnapshotEntry[], server?: string, partial?: BinlogPartial): MysqlWindow {
  const all = mysqlPhysicalBackups(snapshots);
  const name = server ?? all[all.length - 1]?.source.server;
  const backups = all.filter((b) => b.source.server === name);
  if (!name || !backups.length) return { physicalBackups: 0, archivedBinlogs: 0 };
  const archives = binlogArchives(snapshots, name);
  const archivedAt = new Map<string, string>();
  for (const a of archives) for (const f of a.source.files) if (!archivedAt.has(f.name)) archivedAt.set(f.name, a.time);
  const partialOf = partial?.server === name && !archivedAt.has(partial.name) ? partial : undefined;
  const oldest = backups[0];
  const newest = backups[backups.length - 1];
  const window: MysqlWindow = {
    server: name,
    physicalBackups: backups.length,
    archivedBinlogs: archivedAt.size,
    ...(partialOf ? { partial: { binlogFile: partialOf.name, size: partialOf.size, through: partialOf.through } } : {}),
    earliest: { time: oldest.source.stopTime, snapshotId: oldest.id, ...(oldest.source.binlogFile ? { binlogFile: oldest.source.binlogFile, binlogPosition: oldest.source.binlogPosition } : {}) },
    latest: { time: newest.source.stopTime, ...(newest.source.binlogFile ? { binlogFile: newest.source.binlogFile } : {}) },
  };
  const start = newest.source.binlogFile;
  if (!start) return window;
  const base = start.replace(/\.\d+$/, "");
  const width = /\.(\d+)$/.exec(start)![1].length;
  if (partialOf) archivedAt.set(partialOf.name, partialOf.through);
  const last = Math.max(...[...archivedAt.keys()].map(sequence));
  for (let n = sequence(start); n <= last; n++) {
    const file = `${base}.${String(n).padStart(width, "0")}`;
    const at = archivedAt.get(file);
    if (!at) return { ...window, missing: file };
    window.latest = { time: at > newest.source.stopTime ? at : newest.source.stopTime, binlogFile: file };
  }
  return window;
}

/**
 * A target time as mariadb-binlog's --stop-datetime (read in UTC here): binary log
 * events carry whole seconds, so every event of the target's second is replayed and
 * none after it.
 */
function binlogTime(t: Date): string {
  return new Date(Math.floor(t.getTime() / 1000) * 1000 + 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
}

async function* withPreamble(first: string, rest: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  yield Buffer.from(first);
  yield* rest;
}

/** The content of an archived binary log: its newest whole copy, else the continuous archiver's newest partial of it. */
async function binlogContent(repo: Repository, snapshots: SnapshotEntry[], server: string, name: string): Promise<AsyncIterable<Buffer>> {
  const holding = (all: SnapshotEntry[]) => binlogArchives(all, server).filter((s) => s.source.files.some((f) => f.name === name)).pop();
  let archive = holding(snapshots);
  if (!archive) {
    // Superseded between listing and reading: the log was archived whole meanwhile, or a longer partial replaced it.
    for (let attempt = 0; attempt < 3; attempt++) {
      const partial = await loadBinlogPartial(repo, server);
      if (!partial) continue;
      if (partial.name !== name) break;
      const data = await readBinlogPartial(repo, partial);
      if (data) return (async function* () {
        yield data;
      })();
    }
    archive = holding(await loadSnapshots(repo));
  }
  if (!archive) {
    throw new CairnError(`binary log ${name} of ${server} is no longer in the repository (neither whole nor as the continuous archiver's partial); recover again`);
  }
  const loader = new TreeLoader(repo);
  const node = (await loader.load(await subtreeAt(loader, archive.tree, `${serverDir(server)}/${BINLOG_DIR}`))).nodes.find((n) => n.name === name);
  if (!node) throw new CairnError(`snapshot ${archive.id.slice(0, 8)} lists binary log ${name} but does not hold it; run "cairn check"`);
  return blobs(repo, node.content ?? []);
}

/**
 * Runs `fn` with a server on `dir` that only this process can reach: a Unix socket in
 * the directory, no TCP, grant tables skipped until the replay's FLUSH PRIVILEGES. It
 * is stopped (SIGTERM, a clean shutdown) afterwards, whatever happened.
 */
async function withPrivateServer(dir: string, fn: (socket: string) => Promise<void>): Promise<void> {
  const socket = path.join(dir, "cairn-replay.sock");
  const log = path.join(dir, "cairn-replay.err");
  const args = ["--no-defaults", `--datadir=${dir}`, `--socket=${socket}`, "--skip-networking", "--skip-grant-tables", "--skip-log-bin", `--log-error=${log}`, `--pid-file=${path.join(dir, "cairn-replay.pid")}`, "--innodb-buffer-pool-size=128M"];
  if (process.getuid?.() === 0) args.push("--user=root");
  const server = spawn(mysqlTool("mariadbd"), args, { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => server.once("exit", () => resolve()));
  try {
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (server.exitCode !== null) throw new CairnError(`the server started on ${dir} to replay binary logs exited:\n${(await fs.readFile(log, "utf8").catch(() => "")).slice(-2000)}`);
      if (await fs.stat(socket).then(() => true, () => false)) break;
      if (Date.now() > deadline) throw new CairnError(`the server started on ${dir} did not open its socket in 120 s; see ${log}`);
      await sleep(100);
    }
    await fn(socket);
  } finally {
    if (server.exitCode === null) server.kill("SIGTERM");
    await exited;
  }
  for (const f of ["cairn-replay.sock", "cairn-replay.pid", "cairn-replay.err"]) await fs.rm(path.join(dir, f), { force: true });
}

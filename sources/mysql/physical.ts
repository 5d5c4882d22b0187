import { existsSync, promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { Archiver, type BackupProgress, type BackupResult, type SourceEntry } from "../../engine/archiver.js";
import { CairnError } from "../../engine/errors.js";
import type { Repository } from "../../engine/repository.js";
import type { SnapshotEntry, SnapshotSource } from "../../engine/snapshot.js";
import { Restorer } from "../../engine/restorer.js";
import { subtreeAt, TreeLoader } from "../../engine/tree.js";
import { query, runTool, startTool } from "./tools.js";
import { readXbstream } from "./xbstream.js";

/** Tag every MySQL / MariaDB physical backup carries. */
export const MYSQL_PHYSICAL_TAG = "mysql-physical";
/** Directory of the backed-up data files inside a physical backup snapshot. */
export const DATADIR_DIR = "datadir";
/** InnoDB's files: pages change in place, so they are stored page by page. */
const INNODB_FILE = /(\.ibd|^ibdata\d+|^undo\d+)$/;

/** What a physical backup snapshot records (`snapshot.source`). */
export interface MysqlPhysicalInfo extends SnapshotSource {
  type: "mysql";
  mode: "physical";
  /** Which server (host:port as it names itself): binary logs are archived under the same name. */
  server: string;
  serverVersion: string;
  startTime: string;
  stopTime: string;
  /** Where the backup stands in the binary log (absent when the server writes none). */
  binlogFile?: string;
  binlogPosition?: number;
  gtid?: string;
}

/** A server's name in the repository: its host name and port, as it reports them. */
export async function serverName(optionFile: string): Promise<{ server: string; serverVersion: string; datadir: string; pageSize: number }> {
  const [[host, port, serverVersion, datadir, pageSize]] = await query(optionFile, "SELECT @@hostname, @@port, VERSION(), @@datadir, @@innodb_page_size");
  return { server: `${host}:${port}`, serverVersion, datadir, pageSize: Number(pageSize) };
}

/** The directory of one server's files in a snapshot. */
export const serverDir = (server: string) => `mysql/${encodeURIComponent(server)}`;

export interface MysqlPhysicalOptions {
  optionFile: string;
  tags?: string[];
  host?: string;
  onProgress?: (p: BackupProgress) => void;
  signal?: AbortSignal;
}

/**
 * Takes a physical backup with `mariadb-backup --backup --stream=xbstream`, streamed
 * through this process into the repository (never written to disk here), file by
 * file: InnoDB files in page-sized blocks, so a second backup after scattered updates
 * stores about the pages that changed, everything else content-defined. mariadb-backup
 * reads the server's data files, so it runs on the database host with read access to
 * its data directory; it connects with the login for the locks and binary log position.
 */
export async function takeMysqlPhysical(repo: Repository, o: MysqlPhysicalOptions): Promise<BackupResult & { info: MysqlPhysicalInfo }> {
  const { server, serverVersion, datadir, pageSize } = await serverName(o.optionFile);
  if (!existsSync(datadir)) throw new CairnError(`the server's data directory ${datadir} is not on this machine: mariadb-backup reads the data files, so run the physical backup on the database host (or use a logical dump)`);
  const info: MysqlPhysicalInfo = { type: "mysql", mode: "physical", server, serverVersion, startTime: new Date().toISOString(), stopTime: "" };
  const scratch = await fs.mkdtemp(path.join(process.env.CAIRN_TMPDIR ?? tmpdir(), "cairn-mariadb-backup-"));
  try {
    const archiver = new Archiver(repo, { tags: [MYSQL_PHYSICAL_TAG, ...(o.tags ?? [])], host: o.host, onProgress: o.onProgress, signal: o.signal, source: info });
    const result = await archiver.backupEntries(streamEntries(o.optionFile, datadir, scratch, pageSize, info), [`/${serverDir(server)}`]);
    return { ...result, info };
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

async function* streamEntries(optionFile: string, datadir: string, scratch: string, pageSize: number, info: MysqlPhysicalInfo): AsyncGenerator<SourceEntry> {
  const { child, done } = startTool("mariadb-backup", ["--backup", "--stream=xbstream", "--parallel=1", `--target-dir=${scratch}`, `--datadir=${datadir}`], { optionFile });
  done.catch(() => undefined);
  const root = `${serverDir(info.server)}/${DATADIR_DIR}`;
  try {
    for await (const m of readXbstream(child.stdout)) {
      yield { path: `${root}/${m.path}`, type: "file", mode: 0o640, mtime: Date.now(), content: m.content, blockSize: INNODB_FILE.test(m.path) ? pageSize : undefined };
    }
  } catch (err) {
    child.kill("SIGTERM");
    await done;
    throw err;
  }
  const stderr = await done;
  if (!/completed OK!/.test(stderr)) throw new CairnError(`mariadb-backup did not report success; the backup was not recorded:\n${stderr.slice(-2000)}`);
  const pos = /binlog position: filename '([^']+)', position '(\d+)'(?:, GTID of the last change '([^']*)')?/.exec(stderr);
  if (pos) Object.assign(info, { binlogFile: pos[1], binlogPosition: Number(pos[2]), gtid: pos[3] || undefined });
  info.stopTime = new Date().toISOString();
}

/** The physical backups among the snapshots, oldest first. */
export function mysqlPhysicalBackups(snapshots: SnapshotEntry[]): (SnapshotEntry & { source: MysqlPhysicalInfo })[] {
  return snapshots.filter((s): s is SnapshotEntry & { source: MysqlPhysicalInfo } => s.source?.type === "mysql" && s.source.mode === "physical" && s.tags.includes(MYSQL_PHYSICAL_TAG));
}

/** Refuses a directory that holds anything: a restore writes a whole data directory and never mixes it with files already there. */
export async function ensureEmptyDir(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw new CairnError(`cannot read ${dir}: ${(err as Error).message}`);
  }
  if (names.length) throw new CairnError(`${dir} is not empty; restore into a new or empty directory (Cairn never overwrites a data directory)`);
}

/**
 * Restores a physical backup into `targetDir` (new or empty), then
 * `mariadb-backup --prepare` makes the files consistent. The directory is then a data
 * directory a server can start on, at the moment the backup ended.
 */
export async function restoreMysqlPhysical(repo: Repository, backup: SnapshotEntry & { source: MysqlPhysicalInfo }, targetDir: string): Promise<{ bytes: number; files: number }> {
  const dir = path.resolve(targetDir);
  await ensureEmptyDir(dir);
  const loader = new TreeLoader(repo);
  const tree = await subtreeAt(loader, backup.tree, `${serverDir(backup.source.server)}/${DATADIR_DIR}`).catch(() => {
    throw new CairnError(`snapshot ${backup.id.slice(0, 8)} has no ${DATADIR_DIR} directory; it is not a physical backup Cairn can restore`);
  });
  await fs.mkdir(dir, { recursive: true, mode: 0o750 });
  const result = await new Restorer(repo, { target: dir, owners: false }).restore(tree);
  await runTool("mariadb-backup", ["--prepare", `--target-dir=${dir}`]);
  return { bytes: result.totalBytes, files: result.files };
}

export async function* blobs(repo: Repository, ids: string[]): AsyncGenerator<Buffer> {
  for (const id of ids) yield await repo.loadBlob(Buffer.from(id, "hex"));
}

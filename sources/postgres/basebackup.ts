import { Archiver, type BackupProgress, type BackupResult, type SourceEntry } from "../../engine/archiver.js";
import { CairnError } from "../../engine/errors.js";
import type { Repository } from "../../engine/repository.js";
import { loadSnapshots, type SnapshotEntry, type SnapshotSource } from "../../engine/snapshot.js";
import { subtreeAt, TreeLoader, type TreeNode } from "../../engine/tree.js";
import { readTar } from "./tar.js";
import { query, startTool } from "./tools.js";
import { formatLsn, parseLsn, systemIdFromControl } from "./wal.js";

/** Tag every physical base backup carries. */
export const BASE_BACKUP_TAG = "pg-base";
/** Directory of the data files inside a base backup snapshot. */
export const PGDATA_DIR = "pgdata";

/**
 * Relation files are stored by 8 KiB page: PostgreSQL rewrites pages in place, and
 * updates scattered over a table touch nearly every megabyte-sized chunk of it, so
 * only pages keep a second base backup down to what changed. In a repository of
 * format version 2 they are page-mapped (super-blocks of pages, each compared with
 * the previous base backup of the cluster page by page, engine/pagemap.ts); in a
 * version 1 repository each page is a blob of its own.
 */
export const RELATION_BLOCK = 8192;
const RELATION_FILE = /^(global|base\/\d+|pg_tblspc\/\d+\/[^/]+\/\d+)\/\d+(_fsm|_vm|_init)?(\.\d+)?$/;

/** What a physical base backup snapshot records (`snapshot.source`). */
export interface PgBaseBackupInfo extends SnapshotSource {
  type: "postgres";
  mode: "physical";
  systemId: string;
  timeline: number;
  startLsn: string;
  stopLsn: string;
  startTime: string;
  stopTime: string;
  /** PostgreSQL major version (PG_VERSION) and the server's full version. */
  version: string;
  serverVersion: string;
  segmentSize: number;
  /** Next transaction id when the backup ended: transactions from this one on commit after it. */
  nextXid: string;
  backupLabel: string;
}

export interface BaseBackupOptions {
  url: string;
  tags?: string[];
  host?: string;
  label?: string;
  onProgress?: (p: BackupProgress) => void;
  signal?: AbortSignal;
  /** Environment of the PostgreSQL programs (PGPASSWORD when the password is not in the URL); the process's own by default. */
  env?: NodeJS.ProcessEnv;
}

/** The oldest PostgreSQL whose base backups Cairn takes and restores (server_version_num). */
export const OLDEST_PHYSICAL = 120000;

/**
 * Why a cluster of this version cannot have physical backups, or undefined when it can.
 * PostgreSQL 10 and 11 (past their end of life) read recovery settings from recovery.conf,
 * which Cairn's restores do not write: a backup of them could not be recovered to a point.
 */
export function physicalVersionRefusal(serverVersion: string, versionNum = versionNumOf(serverVersion)): string | undefined {
  if (versionNum >= OLDEST_PHYSICAL) return undefined;
  return `the cluster runs PostgreSQL ${serverVersion}; Cairn's physical backups and point-in-time recovery need PostgreSQL 12 or newer (older versions recover through recovery.conf, which Cairn does not write)`;
}

/** server_version_num from a server_version string ("15.4 (Debian 15.4-1)" -> 150004, "9.6.24" -> 90624). */
function versionNumOf(serverVersion: string): number {
  const [major = 0, minor = 0, patch = 0] = (serverVersion.match(/^\d+(\.\d+)*/)?.[0] ?? "0").split(".").map(Number);
  return major >= 10 ? major * 10000 + minor : major * 10000 + minor * 100 + patch;
}

/**
 * Takes a base backup of a running cluster with pg_basebackup (tar format, streamed
 * through this process, never written to disk) into a new snapshot: relation files in
 * page-sized blocks, everything else content-defined. WAL needed to make it consistent
 * is fetched into it (-X fetch), so it restores even without the archive.
 */
export async function takeBaseBackup(repo: Repository, o: BaseBackupOptions): Promise<BackupResult & { info: PgBaseBackupInfo }> {
  const [[versionNum, serverVersion, segmentSize, systemId]] = await query(
    o.url,
    "SELECT current_setting('server_version_num'), current_setting('server_version'), setting, (SELECT system_identifier FROM pg_control_system()) FROM pg_settings WHERE name = 'wal_segment_size'",
    o.env,
  );
  const unsupported = physicalVersionRefusal(serverVersion, Number(versionNum));
  if (unsupported) throw new CairnError(`${unsupported}; back it up in logical mode (cairn pg dump) instead`);
  const info = { type: "postgres", mode: "physical", systemId, serverVersion, segmentSize: Number(segmentSize) } as PgBaseBackupInfo;
  // Only a version 2 repository stores relation files page-mapped (the archiver ignores
  // pageMapped below it): there is no earlier backup to compare pages with.
  const parent = repo.config.version >= 2 ? baseBackups(await loadSnapshots(repo)).filter((s) => s.source.systemId === systemId).pop() : undefined;
  const previous = parent ? previousFiles(repo, parent.tree, systemId) : undefined;
  const archiver = new Archiver(repo, { tags: [BASE_BACKUP_TAG, ...(o.tags ?? [])], host: o.host, onProgress: o.onProgress, signal: o.signal, source: info });
  const result = await archiver.backupEntries(baseBackupEntries(o, info, previous), [`/postgres/${systemId}/${PGDATA_DIR}`]);
  return { ...result, info };
}

/** The members of pg_basebackup's tar stream as snapshot entries; fills `info` in as it learns it. */
async function* baseBackupEntries(o: BaseBackupOptions, info: PgBaseBackupInfo, previous?: (path: string) => Promise<TreeNode | undefined>): AsyncGenerator<SourceEntry> {
  const { child, done } = startTool("pg_basebackup", ["-d", o.url, "-D", "-", "-F", "t", "-X", "fetch", "-c", "fast", "-v", "-l", o.label ?? "cairn base backup"], o.env);
  done.catch(() => undefined);
  let control: Buffer | undefined;
  const root = `postgres/${info.systemId}/${PGDATA_DIR}`;
  try {
    for await (const m of readTar(child.stdout)) {
      const entry: SourceEntry = { path: `${root}/${m.path}`, type: m.type, mode: m.mode, uid: m.uid, gid: m.gid, mtime: m.mtime, linktarget: m.linkname };
      if (m.type === "file") {
        const keep = m.path === "backup_label" || m.path === "global/pg_control" || m.path === "PG_VERSION";
        const parts: Buffer[] = [];
        entry.content = keep ? tee(m.content, parts) : m.content;
        if (RELATION_FILE.test(m.path)) {
          entry.blockSize = RELATION_BLOCK;
          entry.pageMapped = { previous: await previous?.(m.path) };
        }
        yield entry;
        if (m.path === "backup_label") info.backupLabel = Buffer.concat(parts).toString("utf8");
        if (m.path === "global/pg_control") control = Buffer.concat(parts);
        if (m.path === "PG_VERSION") info.version = Buffer.concat(parts).toString("utf8").trim();
      } else yield entry;
    }
  } catch (err) {
    child.kill("SIGTERM");
    // pg_basebackup's own message says more than a cut tar stream.
    await done;
    throw err;
  }
  const stderr = await done;
  if (!info.backupLabel || !control) throw new CairnError("pg_basebackup sent no backup_label or global/pg_control; the backup is incomplete and was not recorded");
  if (systemIdFromControl(control) !== info.systemId) throw new CairnError(`the backed-up pg_control names system ${systemIdFromControl(control)}, but the server said ${info.systemId}; the backup was not recorded`);
  const label = parseBackupLabel(info.backupLabel);
  const end = /write-ahead log end point: ([0-9A-F]+\/[0-9A-F]+)/i.exec(stderr);
  if (!end) throw new CairnError(`pg_basebackup did not report where the backup ends; the backup was not recorded:\n${stderr}`);
  const [[nextXid]] = await query(o.url, "SELECT txid_snapshot_xmax(txid_current_snapshot())", o.env);
  Object.assign(info, {
    timeline: label.timeline,
    startLsn: formatLsn(label.startLsn),
    stopLsn: formatLsn(parseLsn(end[1])),
    startTime: label.startTime,
    stopTime: new Date().toISOString(),
    nextXid,
  });
}

/**
 * The files of an earlier base backup by their path below pgdata, for comparing a
 * new one page by page. A file (or directory) that cannot be read is just absent:
 * the new backup then stores it whole.
 */
function previousFiles(repo: Repository, tree: string, systemId: string): (path: string) => Promise<TreeNode | undefined> {
  const loader = new TreeLoader(repo);
  const root = subtreeAt(loader, tree, `postgres/${systemId}/${PGDATA_DIR}`);
  root.catch(() => undefined); // awaited (and its failure caught) by each lookup below
  return async (path) => {
    try {
      const slash = path.lastIndexOf("/");
      const dir = await subtreeAt(loader, await root, path.slice(0, Math.max(slash, 0)));
      const node = (await loader.load(dir)).nodes.find((n) => n.name === path.slice(slash + 1));
      return node?.type === "file" ? node : undefined;
    } catch {
      return undefined;
    }
  };
}

async function* tee(source: AsyncIterable<Buffer>, into: Buffer[]): AsyncGenerator<Buffer> {
  for await (const b of source) {
    into.push(Buffer.from(b));
    yield b;
  }
}

/** The fields of a backup_label file that recovery and base backup selection need. */
export function parseBackupLabel(text: string): { startLsn: bigint; timeline: number; startTime: string } {
  const start = /START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+)/i.exec(text);
  const tli = /START TIMELINE: (\d+)/.exec(text);
  const time = /START TIME: (.+)/.exec(text);
  if (!start || !tli || !time) throw new CairnError("the backup_label of this base backup cannot be read; the backup was not recorded");
  const parsed = new Date(time[1].trim().replace(/ ([A-Z]{3,4})$/, (_, zone: string) => (zone === "UTC" || zone === "GMT" ? "Z" : ` ${zone}`)));
  return { startLsn: parseLsn(start[1]), timeline: Number(tli[1]), startTime: Number.isNaN(parsed.getTime()) ? time[1].trim() : parsed.toISOString() };
}

/** The base backup snapshots in a repository, oldest first. */
export function baseBackups(snapshots: SnapshotEntry[]): (SnapshotEntry & { source: PgBaseBackupInfo })[] {
  return snapshots.filter((s): s is SnapshotEntry & { source: PgBaseBackupInfo } => s.source?.type === "postgres" && s.source.mode === "physical" && s.tags.includes(BASE_BACKUP_TAG));
}

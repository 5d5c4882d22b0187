/**
 * What the one-shot binary log archive (binlog.ts, `cairn mysql binlog-archive`) and
 * the continuous one (binlog-stream.ts) share: the archive snapshot's shape, the
 * check that the server writes a binary log at all, and the writing of closed logs
 * as one snapshot. Both import it; neither imports the other for it.
 */
import { createReadStream, promises as fs } from "node:fs";
import * as path from "node:path";
import { Archiver, type BackupResult, type SourceEntry } from "../../engine/archiver.js";
import { CairnError } from "../../engine/errors.js";
import type { Repository } from "../../engine/repository.js";
import type { SnapshotEntry, SnapshotSource } from "../../engine/snapshot.js";
import { serverDir, serverName } from "./physical.js";
import { query } from "./tools.js";

/** Tag every binary log archive snapshot carries. */
export const MYSQL_BINLOG_TAG = "mysql-binlog";
/** Where a snapshot keeps a server's logs, under its serverDir. */
export const BINLOG_DIR = "binlog";

/** What a binary log archive snapshot records: the closed binary logs it added. */
export interface MysqlBinlogInfo extends SnapshotSource {
  type: "mysql";
  mode: "binlog";
  server: string;
  files: { name: string; size: number }[];
}

export function binlogArchives(snapshots: SnapshotEntry[], server?: string): (SnapshotEntry & { source: MysqlBinlogInfo })[] {
  return snapshots.filter((s): s is SnapshotEntry & { source: MysqlBinlogInfo } => s.source?.type === "mysql" && s.source.mode === "binlog" && (!server || s.source.server === server));
}

/** The sequence number of a log name: 12 for binlog.000012. */
export const binlogSequence = (name: string) => Number(/\.(\d+)$/.exec(name)?.[1] ?? NaN);

/** The server's name; throws saying what to do when it writes no binary log. */
export async function requireLogBin(optionFile: string): Promise<string> {
  const { server } = await serverName(optionFile);
  const [[logBin]] = await query(optionFile, "SELECT @@log_bin");
  if (logBin !== "1") throw new CairnError(`the server ${server} writes no binary log: start it with log_bin (and a server_id) to archive binary logs for point-in-time recovery`);
  return server;
}

export interface StoreBinlogsOptions {
  tags?: string[];
  host?: string;
  /**
   * "exact": each file in `from` is the whole log, fetched for this store; one of
   * another size than the server lists is a broken fetch and stores nothing.
   * "prefix": store the first `size` bytes of each file (a spool mariadb-binlog writes).
   */
  check: "exact" | "prefix";
}

/** Stores closed logs read from the directory `from` as one binary log archive snapshot. */
export async function storeBinlogs(repo: Repository, server: string, from: string, files: { name: string; size: number }[], o: StoreBinlogsOptions): Promise<BackupResult> {
  const info: MysqlBinlogInfo = { type: "mysql", mode: "binlog", server, files };
  const dir = `${serverDir(server)}/${BINLOG_DIR}`;
  const entries = async function* (): AsyncGenerator<SourceEntry> {
    for (const f of files) {
      const file = path.join(from, f.name);
      const st = await fs.stat(file);
      if (o.check === "exact" && st.size !== f.size) throw new CairnError(`binary log ${f.name} came to ${st.size} bytes, but the server lists ${f.size}; nothing was archived, try again`);
      yield { path: `${dir}/${f.name}`, type: "file", mode: 0o600, mtime: st.mtimeMs, content: createReadStream(file, o.check === "exact" ? undefined : { start: 0, end: f.size - 1 }) };
    }
  };
  return new Archiver(repo, { tags: [MYSQL_BINLOG_TAG, ...(o.tags ?? [])], host: o.host, source: info }).backupEntries(entries(), [`/${dir}`]);
}

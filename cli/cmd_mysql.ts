import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Command } from "commander";
import { CairnError } from "../engine/errors.js";
import { findSnapshot, loadSnapshots } from "../engine/snapshot.js";
import { archiveBinlogs, parsePosition, recoverToPoint, type MysqlTarget } from "../sources/mysql/binlog.js";
import { streamBinlogs } from "../sources/mysql/binlog-stream.js";
import { loginOf, parseMysqlUrl, withOptionFile } from "../sources/mysql/connection.js";
import { mysqlDumps, restoreMysqlDump, takeMysqlDump } from "../sources/mysql/logical.js";
import { ensureEmptyDir, mysqlPhysicalBackups, restoreMysqlPhysical, takeMysqlPhysical } from "../sources/mysql/physical.js";
import { formatBytes, globals, output, ProgressLine, untilSignalled, withRepository } from "./common.js";

const collect = (v: string, prev: string[]) => [...prev, v];
const URL_HELP = "the server: mysql://user@host:3306 (the password in MYSQL_PWD or --db-password-file, never in the URL)";
const PASSWORD_HELP = "read the database user's password from this file (default: MYSQL_PWD)";

/** Runs `fn` with an option file holding the login of --url; the password never reaches a command line. */
function withLogin<T>(o: { url: string; dbPasswordFile?: string }, fn: (optionFile: string) => Promise<T>): Promise<T> {
  const c = parseMysqlUrl(o.url);
  if (c.password !== undefined) throw new CairnError("do not put the password in --url (it would show in the process list and shell history); give it in MYSQL_PWD or with --db-password-file");
  let password = process.env.MYSQL_PWD;
  if (o.dbPasswordFile) {
    try {
      password = readFileSync(o.dbPasswordFile, "utf8").replace(/\r?\n$/, "");
    } catch (err) {
      throw new CairnError(`cannot read the database password file ${o.dbPasswordFile}: ${(err as Error).message}`);
    }
  }
  return withOptionFile(loginOf(c, password), fn);
}

/** `cairn mysql ...`: MySQL / MariaDB logical dumps, physical backups, binary log archiving and point-in-time recovery. */
export function register(program: Command): void {
  const mysql = program.command("mysql").description("MySQL / MariaDB: logical dumps, physical backups (mariadb-backup), binary log archiving, point-in-time recovery");

  mysql
    .command("backup")
    .description("back up a server: --logical (mariadb-dump --single-transaction, one entry per table) or --physical (mariadb-backup --stream, on the database host)")
    .requiredOption("--url <url>", URL_HELP)
    .option("--db-password-file <file>", PASSWORD_HELP)
    .option("--logical", "logical dump (the default)")
    .option("--physical", "physical backup of the data directory (needs local read access to it)")
    .option("--database <name>", "logical: dump this database (repeatable; default: every database but the system ones)", collect, [])
    .option("--table <name>", "logical: dump only this table, as TABLE or DATABASE.TABLE (repeatable)", collect, [])
    .option("--tag <tag>", "tag the snapshot (repeatable)", collect, [])
    .option("--host <name>", "host name to record (default: this machine's)")
    .action(async (o: { url: string; dbPasswordFile?: string; logical?: boolean; physical?: boolean; database: string[]; table: string[]; tag: string[]; host?: string }, cmd: Command) => {
      const opts = globals(cmd);
      if (o.logical && o.physical) throw new CairnError("give --logical or --physical, not both");
      if (o.physical && (o.database.length || o.table.length)) throw new CairnError("a physical backup takes the whole server; --database and --table are for --logical");
      const result = await withLogin(o, (optionFile) =>
        withRepository(opts, "shared", "mysql backup", async (repo) => {
          const progress = new ProgressLine(opts);
          try {
            const common = { optionFile, tags: o.tag, host: o.host, onProgress: (p: Parameters<ProgressLine["update"]>[0]) => progress.update(p) };
            return o.physical ? await takeMysqlPhysical(repo, common) : await takeMysqlDump(repo, { ...common, databases: o.database, tables: o.table });
          } finally {
            progress.done();
          }
        }),
      );
      const s = result.snapshot.summary!;
      const i = result.info;
      output(opts, { id: result.id, ...result.snapshot }, () =>
        [
          i.mode === "physical"
            ? `physical backup of ${i.server} (${i.serverVersion})${i.binlogFile ? `, binary log ${i.binlogFile}:${i.binlogPosition}` : ""}`
            : `dumped ${i.databases.map((d) => `${d.name} (${d.tables.length} tables)`).join(", ")} (${i.serverVersion})`,
          `processed ${formatBytes(s.totalBytes)} in ${s.durationSeconds.toFixed(2)}s; added ${formatBytes(s.dataAdded)} (${formatBytes(s.dataAddedPacked)} stored)`,
          `snapshot ${result.id.slice(0, 8)} saved`,
        ].join("\n"),
      );
    });

  mysql
    .command("restore")
    .description("logical (--url): a dumped database into a new one, or chosen tables into an existing one, dropping nothing without --clean; physical (--target-dir): a prepared data directory, brought to a point in time from the archived binary logs")
    .argument("[snapshot]", 'snapshot id (or a unique prefix) or "latest"; for --target-dir without it, the backup is chosen for the target')
    .option("--url <url>", `logical: ${URL_HELP}`)
    .option("--db-password-file <file>", PASSWORD_HELP)
    .option("--database <name>", "logical: which dumped database")
    .option("--into <name>", "logical: database to restore into (default: the dumped one's name); created when restoring a whole database")
    .option("--table <name>", "logical: restore only this table into the existing database (repeatable)", collect, [])
    .option("--clean", "logical: drop each restored table (or the dump's objects) before recreating it")
    .option("--preview", "logical: list what would be restored and change nothing")
    .option("--target-dir <dir>", "physical: new or empty directory for the data directory")
    .option("--time <time>", "physical: replay binary logs up to this time (ISO 8601, e.g. 2025-01-31T12:00:00Z; whole seconds)")
    .option("--position <file:offset>", "physical: replay binary logs up to this position, e.g. binlog.000012:4711")
    .option("--server <host:port>", "physical: which server (default: the one with the newest physical backup)")
    .action(async (ref: string | undefined, o: RestoreFlags, cmd: Command) => {
      const opts = globals(cmd);
      if (o.targetDir) return restorePhysical(ref, o, opts);
      if (!o.url || !o.database) throw new CairnError("give --url and --database to restore a logical dump into a server, or --target-dir to restore a physical backup");
      const result = await withLogin({ url: o.url, dbPasswordFile: o.dbPasswordFile }, (optionFile) =>
        withRepository(opts, "shared", "mysql restore", async (repo) => {
          const dumps = mysqlDumps(await loadSnapshots(repo));
          if (!dumps.length) throw new CairnError('there is no MySQL / MariaDB dump in this repository; take one with "cairn mysql backup --logical"');
          const id = !ref || ref === "latest" ? dumps[dumps.length - 1].id : (await findSnapshot(repo, ref)).id;
          const snap = dumps.find((d) => d.id === id);
          if (!snap) throw new CairnError(`snapshot ${ref} is not a logical dump; list them with "cairn snapshots --tag mysql-logical"`);
          return restoreMysqlDump(repo, snap, { optionFile, database: o.database!, into: o.into, tables: o.table, clean: o.clean, preview: o.preview });
        }),
      );
      output(opts, result, () =>
        o.preview
          ? [
              `would restore into "${result.into}"${result.preview!.intoExists ? "" : " (created)"}:`,
              ...result.tables.map((t) => `  table ${t}${result.preview!.existing.includes(t) ? " (exists)" : ""}`),
              ...result.preview!.drops.map((d) => `  drop first: ${d}`),
              ...(result.preview!.refusal ? [`it would be refused: ${result.preview!.refusal}`] : []),
            ].join("\n")
          : `restored ${o.table.length ? `${o.table.join(", ")} of ` : ""}"${result.database}" into "${result.into}"${result.created ? " (created)" : ""}: ${result.tables.length} tables`,
      );
    });

  mysql
    .command("binlog-archive")
    .description("copy the server's closed binary logs that the repository lacks (rotating the current one first), for point-in-time recovery; run it from cron, or with --follow keep streaming")
    .requiredOption("--url <url>", `${URL_HELP}; the user needs REPLICATION SLAVE, BINLOG MONITOR and RELOAD`)
    .option("--db-password-file <file>", PASSWORD_HELP)
    .option("--no-rotate", "do not FLUSH BINARY LOGS first (archive only the logs the server has closed on its own)")
    .option("--follow", "keep streaming the binary log (mariadb-binlog --stop-never) until SIGTERM or SIGINT: each log is archived when the server closes it, and the one it writes every --interval seconds, so recovery reaches seconds ago")
    .option("--spool <dir>", "with --follow: the directory mariadb-binlog writes into (default: a new one under the temporary directory)")
    .option("--interval <seconds>", "with --follow: seconds between two stores of the log the server writes", "5")
    .option("--replica-id <n>", "with --follow: the server id mariadb-binlog connects as; unique among the server's replicas", "4000000001")
    .option("--tag <tag>", "tag the snapshot (repeatable)", collect, [])
    .option("--host <name>", "host name to record (default: this machine's)")
    .action(async (o: { url: string; dbPasswordFile?: string; rotate: boolean; follow?: boolean; spool?: string; interval: string; replicaId: string; tag: string[]; host?: string }, cmd: Command) => {
      const opts = globals(cmd);
      if (o.follow) return followBinlogs(o, opts);
      const r = await withLogin(o, (optionFile) =>
        withRepository(opts, "shared", "mysql binlog-archive", async (repo) => archiveBinlogs(repo, await loadSnapshots(repo), { optionFile, rotate: o.rotate, tags: o.tag, host: o.host })),
      );
      output(opts, { server: r.server, files: r.files, id: r.result?.id ?? null }, () =>
        r.files.length ? `archived ${r.files.length} binary logs of ${r.server} (${r.files.join(", ")}): snapshot ${r.result!.id.slice(0, 8)} saved` : `no new closed binary log on ${r.server}; nothing to archive`,
      );
    });
}

/** `binlog-archive --follow`: the continuous archiver of the platform's plans, from a shell. */
async function followBinlogs(o: { url: string; dbPasswordFile?: string; spool?: string; interval: string; replicaId: string; tag: string[]; host?: string }, opts: ReturnType<typeof globals>): Promise<void> {
  const interval = Number(o.interval);
  if (!Number.isInteger(interval) || interval < 1 || interval > 3600) throw new CairnError(`--interval ${o.interval}: give whole seconds from 1 to 3600`);
  const replicaId = Number(o.replicaId);
  if (!Number.isInteger(replicaId) || replicaId < 1 || replicaId > 4294967295) throw new CairnError(`--replica-id ${o.replicaId}: give a server id from 1 to 4294967295 that no replica of the server uses`);
  const spool = o.spool ? path.resolve(o.spool) : await mkdtemp(path.join(process.env.CAIRN_TMPDIR ?? tmpdir(), "cairn-binlog-spool-"));
  const signal = untilSignalled();
  const line = (record: Record<string, unknown>, text: string) => !opts.quiet && process.stdout.write(opts.json ? JSON.stringify(record) + "\n" : `${text}\n`);
  let last = "";
  // A spool of our own goes however the archiver stops (a failed login or repository too).
  try {
    await withLogin(o, (optionFile) =>
      withRepository(opts, "none", "mysql binlog-archive --follow", (repo) =>
        streamBinlogs(repo, {
          optionFile,
          spool,
          intervalSeconds: interval,
          replicaId,
          tags: o.tag,
          host: o.host,
          signal,
          onReport: (r) => {
            for (const name of r.closed) line({ archived: name, server: r.server }, `${name} archived whole`);
            const where = r.archivedFile ? `${r.archivedFile}:${r.archivedPosition}` : "";
            if (where && where !== last) line({ partial: where, through: r.archivedThrough, server: r.server }, `archived up to ${where} (every event before ${r.archivedThrough})`);
            last = where;
          },
          onError: (what, err) => process.stderr.write(`cairn: ${what}: ${err.message}\n`),
        }),
      ),
    );
  } finally {
    if (!o.spool) await rm(spool, { recursive: true, force: true });
  }
  output(opts, { stopped: true, archivedThrough: last || null }, () => `stopped${last ? `; archived up to ${last}` : ""}`);
}

interface RestoreFlags {
  url?: string;
  dbPasswordFile?: string;
  database?: string;
  into?: string;
  table: string[];
  clean?: boolean;
  preview?: boolean;
  targetDir?: string;
  time?: string;
  position?: string;
  server?: string;
}

async function restorePhysical(ref: string | undefined, o: RestoreFlags, opts: ReturnType<typeof globals>): Promise<void> {
  if (o.url || o.database || o.table.length || o.preview) throw new CairnError("--target-dir restores a physical backup as a data directory; --url, --database, --table and --preview are for logical dumps");
  if (o.time && o.position) throw new CairnError("give --time or --position, not both");
  if (ref && (o.time || o.position)) throw new CairnError("give either a snapshot (restored as it is) or --time / --position (the backup is chosen for you), not both");
  let target: MysqlTarget = { kind: "latest" };
  if (o.time) {
    const t = new Date(o.time);
    if (Number.isNaN(t.getTime())) throw new CairnError(`cannot read the time "${o.time}": write it like 2025-01-31T12:00:00Z`);
    target = { kind: "time", time: t };
  } else if (o.position) target = parsePosition(o.position);
  const dir = path.resolve(o.targetDir!);
  await ensureEmptyDir(dir);
  const result = await withRepository(opts, "shared", "mysql restore", async (repo) => {
    const snapshots = await loadSnapshots(repo);
    if (ref) {
      const backups = mysqlPhysicalBackups(snapshots);
      const id = ref === "latest" ? backups[backups.length - 1]?.id : (await findSnapshot(repo, ref)).id;
      const backup = backups.find((b) => b.id === id);
      if (!backup) throw new CairnError(`snapshot ${ref} is not a physical MySQL / MariaDB backup; list them with "cairn snapshots --tag mysql-physical"`);
      await restoreMysqlPhysical(repo, backup, dir);
      return { backup, binlogs: [] as string[], replayed: 0 };
    }
    return recoverToPoint(repo, snapshots, { targetDir: dir, target, server: o.server });
  });
  const b = result.backup;
  output(opts, { snapshot: b.id, server: b.source.server, stopTime: b.source.stopTime, binlogs: result.binlogs, targetDir: dir }, () =>
    [
      `restored physical backup ${b.id.slice(0, 8)} of ${b.source.server} (${b.source.stopTime}) into ${dir}`,
      result.binlogs.length ? `replayed binary logs ${result.binlogs.join(", ")} from ${b.source.binlogFile}:${b.source.binlogPosition} up to ${o.time ?? o.position ?? "their end"}` : "no binary log replayed",
      `start a server on it (as the user it runs as, who must own the directory): mariadbd --datadir=${dir}`,
    ].join("\n"),
  );
}

import { promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { Archiver, type BackupProgress, type BackupResult } from "../../engine/archiver.js";
import { dumpDirEntries } from "../dump-dir.js";
import { CairnError } from "../../engine/errors.js";
import type { Repository } from "../../engine/repository.js";
import type { SnapshotEntry, SnapshotSource } from "../../engine/snapshot.js";
import { subtreeAt, TreeLoader, type TreeNode } from "../../engine/tree.js";
import { ident, literal, query, startTool } from "./tools.js";

/** Tag every MySQL / MariaDB logical dump carries. */
export const MYSQL_LOGICAL_TAG = "mysql-logical";
const DUMP_DIR = "mysqldump";
/** Databases of the server itself, never dumped unless named. */
const SYSTEM_DATABASES = new Set(["information_schema", "performance_schema", "sys", "mysql"]);

/** What a logical dump snapshot records (`snapshot.source`). */
export interface MysqlLogicalInfo extends SnapshotSource {
  type: "mysql";
  mode: "logical";
  serverVersion: string;
  /** Per database: its tables (one entry each), and the views, routines and events of its objects.sql, by kind (VIEW, PROCEDURE, FUNCTION, EVENT). */
  databases: { name: string; tables: string[]; objects?: [string, string][] }[];
}

export interface MysqlDumpOptions {
  /** Option file with the login (connection.ts). */
  optionFile: string;
  databases?: string[];
  /** `table` (in every dumped database) or `database.table`. */
  tables?: string[];
  tags?: string[];
  host?: string;
  onProgress?: (p: BackupProgress) => void;
  signal?: AbortSignal;
}

/** A name as one safe path component (names may hold `/`). */
const fileName = (name: string) => encodeURIComponent(name);

/**
 * Dumps each database with one `mariadb-dump --single-transaction` (consistent within
 * the database, without locking InnoDB tables), split as it streams into one entry per
 * table (its structure, rows and triggers), the session settings before and after,
 * and the views, routines and events. A table that did not change costs nothing in the
 * next dump. The dump never holds a DROP of a table: restores add one only when asked.
 */
export async function takeMysqlDump(repo: Repository, o: MysqlDumpOptions): Promise<BackupResult & { info: MysqlLogicalInfo }> {
  const [[serverVersion]] = await query(o.optionFile, "SELECT VERSION()");
  const existing = (await query(o.optionFile, "SHOW DATABASES")).map((r) => r[0]);
  const names = o.databases?.length ? o.databases : existing.filter((d) => !SYSTEM_DATABASES.has(d));
  const unknown = names.filter((d) => !existing.includes(d));
  if (unknown.length) throw new CairnError(`the server has no database ${unknown.join(", ")}; it has: ${existing.join(", ")}`);
  const work = await fs.mkdtemp(path.join(process.env.CAIRN_TMPDIR ?? tmpdir(), "cairn-mysqldump-"));
  const info: MysqlLogicalInfo = { type: "mysql", mode: "logical", serverVersion, databases: [] };
  try {
    for (const db of names) {
      const all = (await query(o.optionFile, `SELECT table_name FROM information_schema.tables WHERE table_schema = ${literal(db)} AND table_type = 'BASE TABLE' ORDER BY table_name`)).map((r) => r[0]);
      const wanted = o.tables?.length ? all.filter((t) => o.tables!.some((x) => x === t || x === `${db}.${t}`)) : all;
      if (o.tables?.length && !wanted.length) continue;
      const objects = (await query(
        o.optionFile,
        `SELECT 'VIEW', table_name FROM information_schema.views WHERE table_schema = ${literal(db)}
         UNION ALL SELECT routine_type, routine_name FROM information_schema.routines WHERE routine_schema = ${literal(db)}
         UNION ALL SELECT 'EVENT', event_name FROM information_schema.events WHERE event_schema = ${literal(db)}`,
      )) as [string, string][];
      await dumpDatabase(o.optionFile, db, o.tables?.length ? wanted : [], path.join(work, fileName(db)));
      info.databases.push({ name: db, tables: wanted, objects });
    }
    if (!info.databases.length) throw new CairnError(`no table matches ${o.tables!.join(", ")} in ${names.join(", ")}; name tables as TABLE or DATABASE.TABLE`);
    const archiver = new Archiver(repo, { tags: [MYSQL_LOGICAL_TAG, ...(o.tags ?? [])], host: o.host, source: info, onProgress: o.onProgress, signal: o.signal });
    return { ...(await archiver.backupEntries(dumpDirEntries(work, DUMP_DIR), [`/${DUMP_DIR}`])), info };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

const TABLE_MARK = /^-- Table structure for table `((?:[^`]|``)+)`$/;
const OBJECT_MARK = /^-- (Temporary table structure for view|Final view structure for view|Dumping events for database|Dumping routines for database) /;
const EPILOGUE_MARK = "/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;";

/** Runs mariadb-dump on one database and writes its sections as files under `dir`. */
async function dumpDatabase(optionFile: string, db: string, tables: string[], dir: string): Promise<void> {
  await fs.mkdir(path.join(dir, "tables"), { recursive: true });
  const args = ["--single-transaction", "--quick", "--routines", "--events", "--triggers", "--skip-add-drop-table", "--skip-dump-date", "--hex-blob", "--default-character-set=utf8mb4", "--", db, ...tables];
  const { child, done } = startTool("mariadb-dump", args, { optionFile });
  done.catch(() => undefined);
  const out = new SectionWriter(path.join(dir, "prologue.sql"));
  try {
    let pending = Buffer.alloc(0);
    let stage: "prologue" | "body" | "epilogue" = "prologue";
    const line = async (l: Buffer) => {
      if (stage !== "epilogue" && (l[0] === 0x2d || l[0] === 0x2f)) {
        const text = l.toString("utf8").replace(/\r?\n$/, "");
        const table = TABLE_MARK.exec(text);
        if (table) {
          stage = "body";
          await out.switchTo(path.join(dir, "tables", `${fileName(table[1].replace(/``/g, "`"))}.sql`));
        } else if (OBJECT_MARK.test(text)) {
          stage = "body";
          await out.switchTo(path.join(dir, "objects.sql"));
        } else if (text === EPILOGUE_MARK && stage === "body") {
          stage = "epilogue";
          await out.switchTo(path.join(dir, "epilogue.sql"));
        }
      }
      await out.write(l);
    };
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      let buf = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let nl: number;
      while ((nl = buf.indexOf(0x0a)) >= 0) {
        await line(buf.subarray(0, nl + 1));
        buf = buf.subarray(nl + 1);
      }
      pending = Buffer.from(buf);
    }
    if (pending.length) await line(pending);
  } finally {
    await out.close();
  }
  await done;
  for (const name of ["objects.sql", "epilogue.sql"]) await fs.appendFile(path.join(dir, name), "");
}

/** Appends lines to one file at a time, in buffered writes. */
class SectionWriter {
  private handle?: fs.FileHandle;
  private buffered: Buffer[] = [];
  private size = 0;

  constructor(private file: string) {}

  async switchTo(file: string): Promise<void> {
    await this.close();
    this.file = file;
  }

  async write(b: Buffer): Promise<void> {
    this.buffered.push(Buffer.from(b));
    this.size += b.length;
    if (this.size >= 1 << 20) await this.flush();
  }

  private async flush(): Promise<void> {
    if (!this.size) return;
    this.handle ??= await fs.open(this.file, "a", 0o600);
    await this.handle.write(Buffer.concat(this.buffered));
    this.buffered = [];
    this.size = 0;
  }

  async close(): Promise<void> {
    await this.flush();
    await this.handle?.close();
    this.handle = undefined;
  }
}

/** The MySQL / MariaDB logical dumps among the snapshots, oldest first. */
export function mysqlDumps(snapshots: SnapshotEntry[]): (SnapshotEntry & { source: MysqlLogicalInfo })[] {
  return snapshots.filter((s): s is SnapshotEntry & { source: MysqlLogicalInfo } => s.source?.type === "mysql" && s.source.mode === "logical");
}

export interface MysqlLogicalRestoreOptions {
  optionFile: string;
  database: string;
  /** Database to restore into (default: the dumped database's name). */
  into?: string;
  tables?: string[];
  /** Drop each restored table first (chosen tables), or the restored database's tables, views and routines (whole database). */
  clean?: boolean;
  preview?: boolean;
  /** How the caller's user writes the options in the messages that tell them what to do (default: the CLI's flags). */
  words?: RestoreWords;
}

/** The options as a user writes them: CLI flags, or an API request's fields. */
export interface RestoreWords {
  clean: string;
  into: string;
  table: string;
}

const CLI_WORDS: RestoreWords = { clean: "--clean", into: "--into NAME", table: "--table" };

export interface MysqlLogicalRestoreResult {
  database: string;
  into: string;
  created: boolean;
  /** The tables restored (or, with preview, that would be). */
  tables: string[];
  /** With preview: what the restore would find and do on the server, and why it would stop (nothing changed). */
  preview?: MysqlRestorePreview;
}

export interface MysqlRestorePreview {
  /** Whether the database to restore into exists. */
  intoExists: boolean;
  /** The restored tables that exist there already. */
  existing: string[];
  /** What would be dropped first (only with clean). */
  drops: string[];
  /** Why the restore would be refused, as it would say; absent when it would run. */
  refusal?: string;
}

/**
 * Restores one database of a dump with the mariadb client, streaming the sections
 * from the repository: whole into a database that does not exist yet (created here),
 * or chosen tables into an existing one. Nothing is dropped unless `clean`: without
 * it, a chosen table that exists stops the restore before anything is changed. With
 * `preview`, the server is only read: the result says what would be restored,
 * dropped, or refused.
 */
export async function restoreMysqlDump(repo: Repository, snapshot: SnapshotEntry & { source: MysqlLogicalInfo }, o: MysqlLogicalRestoreOptions): Promise<MysqlLogicalRestoreResult> {
  const dumped = snapshot.source.databases.find((d) => d.name === o.database);
  if (!dumped) throw new CairnError(`snapshot ${snapshot.id.slice(0, 8)} has no dump of database "${o.database}"; it has: ${snapshot.source.databases.map((d) => d.name).join(", ")}`);
  const into = o.into ?? o.database;
  const missing = (o.tables ?? []).filter((t) => !dumped.tables.includes(t));
  if (missing.length) throw new CairnError(`the dump of "${o.database}" has no table ${missing.join(", ")}; it has: ${dumped.tables.join(", ")}`);
  const tables = o.tables?.length ? o.tables : dumped.tables;
  const w = o.words ?? CLI_WORDS;

  const exists = (await query(o.optionFile, `SELECT 1 FROM information_schema.schemata WHERE schema_name = ${literal(into)}`)).length > 0;
  const present = exists ? (await query(o.optionFile, `SELECT table_name FROM information_schema.tables WHERE table_schema = ${literal(into)}`)).map((r) => r[0]) : [];
  const whole = !o.tables?.length;
  const clash = tables.filter((t) => present.includes(t));
  const drops = !o.clean || !exists ? [] : whole ? await cleanStatements(o.optionFile, into, dumped) : clash.map((t) => `DROP TABLE IF EXISTS ${ident(t)};\n`);
  const refusal = whole
    ? exists && !o.clean
      ? `database "${into}" exists; restore into a new one with ${w.into}, or add ${w.clean} to drop and recreate the dump's tables, views and routines in it`
      : undefined
    : !exists
      ? `database "${into}" does not exist; tables are restored into an existing database (restore the whole database with no ${w.table} to create it)`
      : clash.length && !o.clean
        ? `table ${clash.join(", ")} exists in "${into}" and nothing is dropped without ${w.clean}; add ${w.clean} to replace it, or restore into another database with ${w.into}`
        : undefined;
  if (o.preview) {
    const dropped = drops.filter((d) => d.startsWith("DROP")).map((d) => d.replace(/^DROP (\w+) IF EXISTS (.*);\n$/, "$1 $2"));
    return { database: o.database, into, created: false, tables, preview: { intoExists: exists, existing: clash, drops: dropped, ...(refusal ? { refusal } : {}) } };
  }
  if (refusal) throw new CairnError(refusal);

  const loader = new TreeLoader(repo);
  const dirId = await subtreeAt(loader, snapshot.tree, `${DUMP_DIR}/${fileName(o.database)}`).catch(() => {
    throw new CairnError(`snapshot ${snapshot.id.slice(0, 8)} has no ${DUMP_DIR}/${o.database} directory; it is not a dump Cairn can restore`);
  });
  const nodes = (await loader.load(dirId)).nodes;
  const tableNodes = (await loader.load(nodes.find((n) => n.name === "tables")?.subtree ?? (await throwNotDump(snapshot)))).nodes;
  const file = (list: TreeNode[], name: string) => list.find((n) => n.name === name && n.type === "file") ?? throwNotDump(snapshot);

  let created = false;
  const parts: (TreeNode | string)[] = [file(nodes, "prologue.sql")];
  if (whole) {
    if (!exists) {
      await query(o.optionFile, `CREATE DATABASE ${ident(into)}`);
      created = true;
    } else parts.push(...drops);
    parts.push(...dumped.tables.map((t) => file(tableNodes, `${fileName(t)}.sql`)), file(nodes, "objects.sql"));
  } else {
    for (const t of tables) {
      if (o.clean) parts.push(`DROP TABLE IF EXISTS ${ident(t)};\n`);
      parts.push(file(tableNodes, `${fileName(t)}.sql`));
    }
  }
  parts.push(file(nodes, "epilogue.sql"));
  try {
    await startTool("mariadb", [`--database=${into}`, "--binary-mode"], { optionFile: o.optionFile, input: streamParts(repo, parts) }).done;
  } catch (err) {
    if (/already exists/.test((err as Error).message)) {
      throw new CairnError(`${(err as Error).message}\nan object of the dump already exists in "${into}" and nothing is dropped without ${w.clean}; add ${w.clean} to replace it, or restore into a new database with ${w.into}`);
    }
    throw err;
  }
  return { database: o.database, into, created, tables };
}

function throwNotDump(snapshot: SnapshotEntry): never {
  throw new CairnError(`snapshot ${snapshot.id.slice(0, 8)} lacks a part of its dump; it is not a dump Cairn can restore`);
}

/** With --clean into an existing database: drops the dump's tables, views, routines and events that are there, and nothing else. */
async function cleanStatements(optionFile: string, db: string, dumped: MysqlLogicalInfo["databases"][number]): Promise<string[]> {
  const there = await query(
    optionFile,
    `SELECT CASE table_type WHEN 'VIEW' THEN 'VIEW' ELSE 'TABLE' END, table_name FROM information_schema.tables WHERE table_schema = ${literal(db)}
     UNION ALL SELECT routine_type, routine_name FROM information_schema.routines WHERE routine_schema = ${literal(db)}
     UNION ALL SELECT 'EVENT', event_name FROM information_schema.events WHERE event_schema = ${literal(db)}`,
  );
  const ours = new Set([...dumped.tables.map((t) => `TABLE ${t}`), ...(dumped.objects ?? []).map(([kind, name]) => `${kind} ${name}`)]);
  return ["SET FOREIGN_KEY_CHECKS=0;\n", ...there.filter(([kind, name]) => ours.has(`${kind} ${name}`)).map(([kind, name]) => `DROP ${kind} IF EXISTS ${ident(name)};\n`)];
}

async function* streamParts(repo: Repository, parts: (TreeNode | string)[]): AsyncGenerator<Buffer> {
  for (const p of parts) {
    if (typeof p === "string") yield Buffer.from(p);
    else for (const id of p.content ?? []) yield await repo.loadBlob(Buffer.from(id, "hex"));
  }
}

import { promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { Archiver, type BackupProgress, type BackupResult } from "../../engine/archiver.js";
import { dumpDirEntries } from "../dump-dir.js";
import { CairnError } from "../../engine/errors.js";
import type { Repository } from "../../engine/repository.js";
import { Restorer } from "../../engine/restorer.js";
import type { SnapshotEntry, SnapshotSource } from "../../engine/snapshot.js";
import { TreeLoader } from "../../engine/tree.js";
import { query, runTool } from "./tools.js";

/** Tag every logical dump carries. */
export const LOGICAL_TAG = "pg-logical";
const DUMP_DIR = "pgdump";

/** What a logical dump snapshot records (`snapshot.source`). */
export interface PgLogicalInfo extends SnapshotSource {
  type: "postgres";
  mode: "logical";
  serverVersion: string;
  databases: { name: string; entries: number }[];
  globals: boolean;
}

export interface DumpOptions {
  url: string;
  databases?: string[];
  tables?: string[];
  excludeTables?: string[];
  schemas?: string[];
  jobs?: number;
  tags?: string[];
  host?: string;
  /** Environment of the PostgreSQL programs (PGPASSWORD when the password is not in the URL); the process's own by default. */
  env?: NodeJS.ProcessEnv;
  onProgress?: (p: BackupProgress) => void;
  signal?: AbortSignal;
}

/** A database name as one safe path component (names may hold `/`). */
const dirName = (db: string) => encodeURIComponent(db);

/** The connection URL with another database. */
export function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(db)}`;
  return u.toString();
}

/**
 * Dumps databases with pg_dump's directory format (-Fd, parallel -j, uncompressed so
 * that the repository's chunking and compression see the rows) and roles and
 * tablespaces with pg_dumpall --globals-only. Each table's data is its own file, so a
 * table that did not change costs nothing in the next dump. The directory is written
 * to a temporary folder (CAIRN_TMPDIR or the system's) and removed afterwards.
 */
export async function takeLogicalDump(repo: Repository, o: DumpOptions): Promise<BackupResult & { info: PgLogicalInfo }> {
  const [[serverVersion]] = await query(o.url, "SELECT current_setting('server_version')", o.env);
  const databases = o.databases?.length
    ? o.databases
    : (await query(o.url, "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname", o.env)).map((r) => r[0]);
  const work = await fs.mkdtemp(path.join(process.env.CAIRN_TMPDIR ?? tmpdir(), "cairn-pgdump-"));
  const info: PgLogicalInfo = { type: "postgres", mode: "logical", serverVersion, databases: [], globals: true };
  try {
    await fs.writeFile(path.join(work, "globals.sql"), await runTool("pg_dumpall", ["--globals-only", "-d", o.url], o.env));
    for (const db of databases) {
      const out = path.join(work, "databases", dirName(db));
      await fs.mkdir(path.dirname(out), { recursive: true });
      const args = ["-F", "d", "-Z", "0", "-j", String(o.jobs ?? 2), "-f", out, "-d", withDatabase(o.url, db)];
      for (const t of o.tables ?? []) args.push("-t", t);
      for (const t of o.excludeTables ?? []) args.push("-T", t);
      for (const s of o.schemas ?? []) args.push("-n", s);
      await runTool("pg_dump", args, o.env);
      info.databases.push({ name: db, entries: (await fs.readdir(out)).length });
    }
    const archiver = new Archiver(repo, { tags: [LOGICAL_TAG, ...(o.tags ?? [])], host: o.host, source: info, onProgress: o.onProgress, signal: o.signal });
    return { ...(await archiver.backupEntries(dumpDirEntries(work, DUMP_DIR), [`/${DUMP_DIR}`])), info };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

export function logicalDumps(snapshots: SnapshotEntry[]): (SnapshotEntry & { source: PgLogicalInfo })[] {
  return snapshots.filter((s): s is SnapshotEntry & { source: PgLogicalInfo } => s.source?.type === "postgres" && s.source.mode === "logical");
}

export interface LogicalRestoreOptions {
  url: string;
  database: string;
  /** Database to restore into (default: the dumped database's name). */
  into?: string;
  tables?: string[];
  clean?: boolean;
  preview?: boolean;
  jobs?: number;
  /** Environment of the PostgreSQL programs (PGPASSWORD); the process's own by default. */
  env?: NodeJS.ProcessEnv;
}

export interface LogicalRestoreResult {
  database: string;
  into: string;
  created: boolean;
  /** pg_restore's table of contents lines for what was (or, with preview, would be) restored. */
  items: string[];
}

/**
 * Restores one database of a logical dump: whole into a database that does not exist
 * yet (created here), or chosen tables into an existing one. Nothing is dropped
 * unless `clean` is set; an object that exists makes pg_restore fail instead.
 */
export async function restoreLogical(repo: Repository, snapshot: SnapshotEntry & { source: PgLogicalInfo }, o: LogicalRestoreOptions): Promise<LogicalRestoreResult> {
  if (!snapshot.source.databases.some((d) => d.name === o.database)) {
    throw new CairnError(`snapshot ${snapshot.id.slice(0, 8)} has no dump of database "${o.database}"; it has: ${snapshot.source.databases.map((d) => d.name).join(", ")}`);
  }
  const into = o.into ?? o.database;
  const work = await fs.mkdtemp(path.join(process.env.CAIRN_TMPDIR ?? tmpdir(), "cairn-pgrestore-"));
  try {
    const loader = new TreeLoader(repo);
    let treeId = snapshot.tree;
    for (const name of [DUMP_DIR, "databases", dirName(o.database)]) {
      const node = (await loader.load(treeId)).nodes.find((n) => n.name === name && n.type === "dir");
      if (!node?.subtree) throw new CairnError(`snapshot ${snapshot.id.slice(0, 8)} has no ${name} directory; it is not a logical dump Cairn can restore`);
      treeId = node.subtree;
    }
    const dir = path.join(work, "dump");
    await new Restorer(repo, { target: dir }).restore(treeId);
    const toc = (await runTool("pg_restore", ["-l", dir], o.env)).split("\n").filter((l) => l && !l.startsWith(";"));
    let items = toc;
    if (o.tables?.length) {
      const schemaSql = await runTool("pg_restore", ["--schema-only", "-f", "-", dir], o.env);
      const missing = o.tables.filter((t) => !toc.some((l) => tableItem(l, [t], "")));
      if (missing.length) throw new CairnError(`the dump of "${o.database}" has no table ${missing.join(", ")}; list its contents with --preview`);
      items = toc.filter((l) => tableItem(l, o.tables!, schemaSql));
    }
    if (o.preview) return { database: o.database, into, created: false, items };
    const exists = (await query(o.url, `SELECT 1 FROM pg_database WHERE datname = '${into.replace(/'/g, "''")}'`, o.env)).length > 0;
    let created = false;
    if (!o.tables?.length) {
      if (exists && !o.clean) throw new CairnError(`database "${into}" exists; restore into a new one with --into NAME, or add --clean to drop and recreate the objects of the dump in it`);
      if (!exists) {
        await query(o.url, `CREATE DATABASE "${into.replace(/"/g, '""')}"`, o.env);
        created = true;
      }
    } else if (!exists) throw new CairnError(`database "${into}" does not exist; tables are restored into an existing database (restore the whole database with no --table to create it)`);
    const args = ["-d", withDatabase(o.url, into), "--exit-on-error"];
    if (o.clean) args.push("--clean", "--if-exists");
    if (o.tables?.length) {
      const list = path.join(work, "list");
      await fs.writeFile(list, items.join("\n") + "\n");
      args.push("-L", list);
    } else args.push("-j", String(o.jobs ?? 2));
    try {
      await runTool("pg_restore", [...args, dir], o.env);
    } catch (err) {
      if (/already exists/.test((err as Error).message)) {
        throw new CairnError(`${(err as Error).message}\nan object of the dump already exists in "${into}" and nothing is dropped without --clean; add --clean to replace it, or restore into a new database with --into NAME`);
      }
      throw err;
    }
    return { database: o.database, into, created, items };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/**
 * True when a `pg_restore -l` line belongs to one of the tables (`name` or
 * `schema.name`): the table, its data, constraints, defaults and triggers, and (found
 * in the dump's schema SQL) its indexes and the sequences it owns.
 */
function tableItem(line: string, tables: string[], schemaSql: string): boolean {
  const m = /^\d+; \d+ \d+ (TABLE DATA|TABLE|FK CONSTRAINT|CONSTRAINT|DEFAULT|TRIGGER|INDEX|SEQUENCE OWNED BY|SEQUENCE SET|SEQUENCE) (\S+) (\S+)/.exec(line);
  if (!m) return false;
  const [, type, schema, name] = m;
  const chosen = (s: string, t: string) => tables.some((x) => x === t || x === `${s}.${t}`);
  if (type === "INDEX") {
    const on = new RegExp(`CREATE (?:UNIQUE )?INDEX ${escape(name)} ON (?:ONLY )?(\\S+)\\.(\\S+) `).exec(schemaSql);
    return Boolean(on && chosen(on[1], on[2]));
  }
  if (type.startsWith("SEQUENCE")) {
    const owner = new RegExp(`ALTER SEQUENCE ${escape(schema)}\\.${escape(name)} OWNED BY (\\S+)\\.(\\S+)\\.`).exec(schemaSql);
    return Boolean(owner && chosen(owner[1], owner[2]));
  }
  return chosen(schema, name);
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

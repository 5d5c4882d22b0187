import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync } from "node:fs";
import * as path from "node:path";
import { CairnError } from "../../engine/errors.js";

/** The MariaDB program and the MySQL name it had before, tried in this order. */
const NAMES: Record<string, string[]> = {
  mariadb: ["mariadb", "mysql"],
  "mariadb-dump": ["mariadb-dump", "mysqldump"],
  "mariadb-backup": ["mariadb-backup", "mariabackup"],
  "mariadb-binlog": ["mariadb-binlog", "mysqlbinlog"],
  mariadbd: ["mariadbd", "mysqld"],
};

/** Finds a MariaDB program in CAIRN_MYSQL_BIN, else on PATH, else in /usr/sbin (the server). */
export function mysqlTool(name: string): string {
  const dirs = [process.env.CAIRN_MYSQL_BIN, ...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/bin"].filter((d): d is string => Boolean(d));
  for (const n of NAMES[name] ?? [name]) {
    for (const d of dirs) {
      const p = path.join(d, n);
      if (existsSync(p)) return p;
    }
  }
  const pkg = name === "mariadb-backup" ? "mariadb-backup" : name === "mariadbd" ? "mariadb-server" : "mariadb-client";
  throw new CairnError(`${name} was not found: install it (Debian: apt-get install ${pkg}) or point CAIRN_MYSQL_BIN at its directory`);
}

/** The environment of the MariaDB programs: none of the worker's own MYSQL_* settings (a password, a host) leaks in. */
function toolEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^MYSQL_|^MARIADB_/.test(k)) env[k] = v;
  return { ...env, ...extra };
}

export interface ToolOptions {
  /** The option file with the login (connection.ts); passed first, as the programs require. */
  optionFile?: string;
  env?: NodeJS.ProcessEnv;
  /** Bytes written to the program's standard input. */
  input?: AsyncIterable<Uint8Array> | string;
}

/** Starts a MariaDB program; its stderr is kept for the error message. */
export function startTool(name: string, args: string[], o: ToolOptions = {}): { child: ChildProcessWithoutNullStreams; done: Promise<string> } {
  const full = o.optionFile ? [`--defaults-file=${o.optionFile}`, ...args] : ["--no-defaults", ...args];
  const child = spawn(mysqlTool(name), full, { env: toolEnv(o.env), stdio: ["pipe", "pipe", "pipe"] });
  const err: Buffer[] = [];
  child.stderr.on("data", (d: Buffer) => err.push(d));
  // A program that exits without reading all of its input reports its own error below.
  child.stdin.on("error", () => undefined);
  const fed = feed(child, o.input);
  const done = new Promise<string>((resolve, reject) => {
    child.once("error", (e) => reject(new CairnError(`cannot run ${name}: ${e.message}`)));
    child.once("close", (code, signal) => {
      const stderr = Buffer.concat(err).toString("utf8");
      if (code === 0) fed.then(() => resolve(stderr), reject);
      else reject(new CairnError(`${name} failed (${signal ?? `exit ${code}`}): ${explain(stderr.trim())}`));
    });
  });
  return { child, done };
}

async function feed(child: ChildProcessWithoutNullStreams, input: ToolOptions["input"]): Promise<void> {
  if (input === undefined) return void child.stdin.end();
  if (typeof input === "string") return void child.stdin.end(input);
  for await (const b of input) {
    if (child.exitCode !== null || child.stdin.destroyed) return;
    if (!child.stdin.write(b)) await new Promise<void>((resolve) => {
      const go = () => {
        child.stdin.off("drain", go);
        child.off("close", go);
        resolve();
      };
      child.stdin.once("drain", go);
      child.once("close", go);
    });
  }
  child.stdin.end();
}

/** Runs a program to the end; returns its stdout. */
export async function runTool(name: string, args: string[], o: ToolOptions = {}): Promise<string> {
  const { child, done } = startTool(name, args, o);
  const out: Buffer[] = [];
  child.stdout.on("data", (d: Buffer) => out.push(d));
  await done;
  return Buffer.concat(out).toString("utf8");
}

/** Runs SQL with the mariadb client; returns the rows, columns split at tabs (batch mode's escapes left as they are). */
export async function query(optionFile: string, sql: string, database?: string): Promise<string[][]> {
  const out = await runTool("mariadb", ["--batch", "--skip-column-names", ...(database ? [`--database=${database}`] : []), "-e", sql], { optionFile });
  return out.split("\n").filter((l) => l !== "").map((l) => l.split("\t"));
}

/** A name as a quoted identifier. */
export function ident(name: string): string {
  return "`" + name.replace(/`/g, "``") + "`";
}

/** A value as a quoted string literal. */
export function literal(value: string): string {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

/** Adds what to do to the messages MariaDB's programs print for the usual mistakes. */
function explain(stderr: string): string {
  if (/Access denied for user/.test(stderr)) return `${stderr}\ncheck the user and password (and that the user may connect from this host)`;
  if (/Can't connect to (MySQL|MariaDB|server)|Unknown (MySQL|MariaDB) server host|Lost connection/.test(stderr)) return `${stderr}\ncheck the host and port in --url and that the server is running`;
  if (/Unknown database/.test(stderr)) return `${stderr}\ncheck the database name; list them with SHOW DATABASES`;
  return stderr;
}

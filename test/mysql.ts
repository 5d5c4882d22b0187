import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { freePort } from "./servers.js";

/**
 * Throwaway MariaDB servers for tests: mariadb-install-db into a temporary directory,
 * mariadbd on a free loopback port with its socket in that directory, never the
 * machine's shared server on 3306. Root has no password (the tests' admin); the
 * backup user the tests give Cairn has one.
 */
export const MARIADBD = process.env.CAIRN_TEST_MARIADBD ?? "/usr/sbin/mariadbd";
export const BACKUP_USER = "cairn_backup";
export const BACKUP_PASSWORD = "s3cret 'with\" quotes";

export interface MariaDb {
  datadir: string;
  port: number;
  /** mysql://cairn_backup@127.0.0.1:PORT (the password is BACKUP_PASSWORD). */
  url: string;
  /** Runs SQL as root over the socket; returns the rows, tab-separated, one per line. */
  sql(query: string, db?: string): Promise<string>;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stops the server (if running) and removes its directory. */
  destroy(): Promise<void>;
}

function run(file: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d) => out.push(d));
    child.stderr.on("data", (d) => err.push(d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
    child.stdin.on("error", () => undefined);
    child.stdin.end(input ?? "");
  });
}

/** A temporary directory; cleanup removes it. */
export function mysqlTempDir(prefix = "cairn-mysql-test-"): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * The server's own directory for temporary tables (made when missing), not the shared /tmp:
 * a bootstrap in CI once failed when its temporary table files there vanished under it.
 */
function serverTmpdir(datadir: string): string {
  const dir = `${datadir}.tmp`;
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Initialises a new server under `base` with a binary log, starts it, and creates the backup user (all privileges, with a password). */
export async function initMariaDb(base: string): Promise<MariaDb> {
  const datadir = path.join(base, `mariadb-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(datadir, { recursive: true });
  const init = await run("mariadb-install-db", ["--no-defaults", `--datadir=${datadir}`, `--tmpdir=${serverTmpdir(datadir)}`, "--auth-root-authentication-method=normal", "--skip-test-db", "--user=root"]);
  if (init.code !== 0) throw new Error(`mariadb-install-db exited ${init.code}:\n${init.stdout}\n${init.stderr}`);
  const server = await mariaDbAt(datadir);
  await server.start();
  await server.sql(`CREATE USER '${BACKUP_USER}'@'127.0.0.1' IDENTIFIED BY '${BACKUP_PASSWORD.replace(/\\/g, "\\\\").replace(/'/g, "''")}'; GRANT ALL ON *.* TO '${BACKUP_USER}'@'127.0.0.1'`);
  return server;
}

/** A server over an existing data directory (a restored one); not started. */
export async function mariaDbAt(datadir: string): Promise<MariaDb> {
  const port = await freePort();
  const socket = `${datadir}.sock`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const server: MariaDb = {
    datadir,
    port,
    url: `mysql://${BACKUP_USER}@127.0.0.1:${port}`,
    async sql(query, db) {
      const r = await run("mariadb", ["--no-defaults", `--socket=${socket}`, "--user=root", "--default-character-set=utf8mb4", "--batch", "--skip-column-names", ...(db ? [`--database=${db}`] : []), "-e", query]);
      if (r.code !== 0) throw new Error(`mariadb -e ${query} exited ${r.code}: ${r.stderr}`);
      return r.stdout.trim();
    },
    async start() {
      const args = [
        "--no-defaults",
        "--user=root",
        `--datadir=${datadir}`,
        `--socket=${socket}`,
        `--port=${port}`,
        "--bind-address=127.0.0.1",
        `--log-bin=${path.join(datadir, "binlog")}`,
        "--server-id=1",
        "--innodb-buffer-pool-size=64M",
        "--innodb-flush-log-at-trx-commit=2",
        `--log-error=${datadir}.err`,
        `--pid-file=${datadir}.pid`,
        `--tmpdir=${serverTmpdir(datadir)}`,
      ];
      const c = spawn(MARIADBD, args, { stdio: "ignore" });
      child = c;
      exited = new Promise((resolve) => c.once("exit", () => resolve()));
      // InnoDB's start is slow on a busy machine: wait minutes rather than fail a test on a slow start.
      const deadline = Date.now() + 180_000;
      for (;;) {
        if (c.exitCode !== null) throw new Error(`mariadbd exited ${c.exitCode}; see ${datadir}.err`);
        if ((await run("mariadb", ["--no-defaults", `--socket=${socket}`, "--user=root", "-e", "SELECT 1"])).code === 0) return;
        if (Date.now() > deadline) throw new Error(`mariadbd did not answer in 180 s; see ${datadir}.err`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async stop() {
      if (child && child.exitCode === null) child.kill("SIGTERM");
      await exited;
      child = undefined;
    },
    async destroy() {
      await server.stop();
      rmSync(datadir, { recursive: true, force: true });
      for (const f of [".sock", ".err", ".pid", ".tmp"]) rmSync(`${datadir}${f}`, { recursive: true, force: true });
    },
  };
  return server;
}

/** Starts a server on a restored data directory, runs `check` against it, and removes it again. */
export async function withServerAt(datadir: string, check: (server: MariaDb) => Promise<void>): Promise<void> {
  const server = await mariaDbAt(datadir);
  try {
    await server.start();
    await check(server);
  } finally {
    await server.destroy();
  }
}

/** The tables of the `app` database the MySQL tests back up and recover. */
export const APP_TABLES = ["items", "markers"];

/** Creates the `app` database: `items` with `rows` rows, and an empty `markers` table for point-in-time targets. */
export async function createAppDatabase(server: MariaDb, rows: number): Promise<void> {
  await server.sql(
    `CREATE DATABASE app; USE app;
     CREATE TABLE items (id INT PRIMARY KEY, label VARCHAR(100), qty INT) ENGINE=InnoDB;
     INSERT INTO items SELECT seq, CONCAT('item ', MD5(seq)), seq % 97 FROM seq_1_to_${rows};
     CREATE TABLE markers (name VARCHAR(20) PRIMARY KEY, at DATETIME(6)) ENGINE=InnoDB;`,
  );
}

/** Where the server writes its binary log now (SHOW MASTER STATUS): file and offset. */
export async function serverAt(server: MariaDb): Promise<{ file: string; pos: number }> {
  const [file, pos] = (await server.sql("SHOW MASTER STATUS")).split("\t");
  return { file, pos: Number(pos) };
}

/**
 * Writes changes (items above `keepItems` deleted), a marker 'before', then, 1.5 s apart, a target time
 * and a marker 'after' with more changes: a recovery to `target` (or to `position`, the binary log right
 * after 'before') must have 'before' and the tables' `atTarget` checksums, and not 'after'.
 */
export async function markTarget(server: MariaDb, keepItems: number): Promise<{ position: string; target: string; atTarget: Record<string, string> }> {
  await server.sql(`UPDATE items SET qty = qty + 1 WHERE id % 7 = 0; DELETE FROM items WHERE id > ${keepItems}`, "app");
  await server.sql("INSERT INTO markers VALUES ('before', NOW(6))", "app");
  const at = await serverAt(server);
  await sleep(1500);
  const target = new Date().toISOString();
  const atTarget = await checksums(server, "app", APP_TABLES);
  await sleep(1500);
  await server.sql("INSERT INTO markers VALUES ('after', NOW(6)); UPDATE items SET label = 'late' WHERE id < 100", "app");
  return { position: `${at.file}:${at.pos}`, target, atTarget };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CHECKSUM TABLE of each table, by name. */
export async function checksums(server: MariaDb, db: string, tables: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of tables) out[t] = (await server.sql(`CHECKSUM TABLE \`${t}\``, db)).split("\t")[1];
  return out;
}

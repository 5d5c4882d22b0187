import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { apiClient } from "./api-client.js";
import { PASSWORD, ROOT, type CliResult } from "./helpers.js";
import { testPolicyEnv } from "./policy-fixtures.js";
import { asPostgres, cairnCommand, cairnPgOk, initCluster, PG_BIN, waitFor, type PgCluster } from "./postgres.js";
import { freePort } from "./servers.js";

/**
 * The pieces the warm-standby and failover tests (and bench/failover.mts) share:
 * a Cairn repository with a PostgreSQL primary archiving into it through `cairn pg
 * wal-push`, a worker process running as the postgres user, PgBouncer in front of
 * the primary, and reading a failover's outcome and the archive's end. Everything
 * lives under the caller's directory (owned by postgres, see pgTempDir).
 */

export interface ArchivingPrimary {
  primary: PgCluster;
  /** The repository (local, under the caller's directory) the primary archives into. */
  repo: string;
  /** The repository password (PASSWORD) in a file the postgres user can read. */
  passwordFile: string;
}

/** Initialises a repository in `dir`/repo and a cluster archiving into it (archive_mode on, `cairn pg wal-push %p`), with `conf` on top. */
export async function archivingPrimary(dir: string, conf: Record<string, string> = {}): Promise<ArchivingPrimary> {
  const repo = path.join(dir, "repo");
  const passwordFile = path.join(dir, "password");
  writeFileSync(passwordFile, PASSWORD);
  chmodSync(passwordFile, 0o644);
  await cairnPgOk(["-r", repo, "--password-file", passwordFile, "init"]);
  const primary = await initCluster(dir, { archive_mode: "on", archive_command: `${cairnCommand(repo, passwordFile)} pg wal-push %p`, ...conf });
  return { primary, repo, passwordFile };
}

/** The postmaster's pid, from its data directory. */
export function postmasterPid(pgdata: string): number {
  return Number(readFileSync(path.join(pgdata, "postmaster.pid"), "utf8").split("\n")[0]);
}

/** SIGKILLs a cluster's postmaster: the primary is lost, as in a crash (its data directory stays). */
export function killPostmaster(pg: PgCluster): void {
  process.kill(postmasterPid(pg.pgdata), "SIGKILL");
}

/** An LSN written X/Y as a number of bytes. */
export function lsnValue(text: string): bigint {
  const [hi, lo] = text.split("/");
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

const SEGMENT = /^[0-9A-F]{24}$/;

/**
 * Where the archive's WAL ends: the end of the newest segment of timeline 1 in a
 * local repository (16 MiB segments), read from its `wal/` folder, as bytes.
 */
export function archivedEnd(repo: string): bigint {
  const walDir = path.join(repo, "wal");
  const segments = readdirSync(walDir).flatMap((d) => readdirSync(path.join(walDir, d))).filter((n) => SEGMENT.test(n) && n.startsWith("00000001")).sort();
  const last = segments.at(-1);
  if (!last) throw new Error(`no WAL segment in ${walDir}`);
  return (BigInt(`0x${last.slice(8, 16)}`) * 256n + BigInt(`0x${last.slice(16)}`) + 1n) * 16n * 1024n * 1024n;
}

export interface PgBouncer {
  port: number;
  /** Its configuration file, owned by postgres (a worker running as postgres rewrites it at a cut-over). */
  configFile: string;
  /** psql through PgBouncer to `database` as the application; `;;` separates statements sent as separate -c. */
  psql(sql: string): Promise<CliResult>;
  stop(): Promise<void>;
}

/** Debian's PgBouncer as the postgres user on a free loopback port, its entry `database` pointing at 127.0.0.1:`target`; resolves once it answers. */
export async function startPgBouncer(dir: string, target: number, database = "bench"): Promise<PgBouncer> {
  const port = await freePort();
  const configFile = path.join(dir, "pgbouncer.ini");
  const pidfile = path.join(dir, "pgbouncer.pid");
  writeFileSync(path.join(dir, "userlist.txt"), '"postgres" ""\n');
  writeFileSync(
    configFile,
    [
      "[databases]",
      `${database} = host=127.0.0.1 port=${target} dbname=${database}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${path.join(dir, "userlist.txt")}`,
      "admin_users = postgres",
      "pool_mode = transaction",
      "server_login_retry = 1",
      // A client queued while its server is down (a SIGKILLed primary) gets an error after 5 s, not the default 120 s:
      // the tests' ledger stops after the kill and waited out those 120 s whenever its last insert was queued.
      "query_wait_timeout = 5",
      `pidfile = ${pidfile}`,
      `logfile = ${path.join(dir, "pgbouncer.log")}`,
      "",
    ].join("\n"),
  );
  chmodSync(configFile, 0o644);
  const owner = statSync(dir);
  chownSync(configFile, owner.uid, owner.gid);
  const child: ChildProcess = spawn("runuser", ["-u", "postgres", "--", "/usr/sbin/pgbouncer", configFile], { stdio: "ignore" });
  const psql = (sql: string) =>
    asPostgres(path.join(PG_BIN, "psql"), ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", `postgresql://postgres@127.0.0.1:${port}/${database}`, ...sql.split(";;").flatMap((s) => ["-c", s])]);
  await waitFor("PgBouncer", async () => {
    if (child.exitCode !== null) throw new Error(`PgBouncer exited ${child.exitCode}; see ${path.join(dir, "pgbouncer.log")}`);
    return (await asPostgres(path.join(PG_BIN, "pg_isready"), ["-h", "127.0.0.1", "-p", String(port)])).code === 0;
  });
  return {
    port,
    configFile,
    psql,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // runuser's child is PgBouncer itself; its pidfile names it.
      await asPostgres("/bin/sh", ["-c", `kill $(cat ${pidfile}) 2>/dev/null`]);
      await Promise.race([new Promise((r) => child.once("exit", r)), new Promise((r) => setTimeout(r, 10_000))]);
    },
  };
}

export interface WorkerProcess {
  /** The end of what it printed. */
  log(): string;
  /** SIGTERM, then SIGKILL after 20 s; resolves once it exited. */
  stop(): Promise<void>;
}

/**
 * A worker process (dist/worker.js) as the postgres user, as next to a database
 * server (a root worker refuses to run PostgreSQL), on the stack's Temporal
 * namespace with the test policy for `dir` and `env` on top.
 */
export function startPostgresWorker(stack: { env: Record<string, string> }, dir: string, env: Record<string, string> = {}): WorkerProcess {
  let log = "";
  const worker = spawn("runuser", ["-u", "postgres", "--", process.execPath, path.join(ROOT, "dist", "worker.js")], {
    env: { ...process.env, ...stack.env, CAIRN_DATA_DIR: path.join(dir, "worker-data"), ...testPolicyEnv(dir), CAIRN_WORKER_CONCURRENCY: "3", CAIRN_THREADS: "1", ...env },
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  worker.stdout!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-8000)));
  worker.stderr!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-8000)));
  const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  return {
    log: () => log,
    async stop() {
      if (!worker.pid || worker.exitCode !== null || worker.signalCode !== null) return;
      worker.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
      if (worker.exitCode === null && worker.signalCode === null) worker.kill("SIGKILL");
      await exited;
    },
  };
}

/** A failover as GET /v1/failovers/{id} answers. */
export interface FailoverView {
  status: string;
  phase: string | null;
  steps: { name: string; outcome: string }[];
  error: string | null;
  result: {
    rtoMs: number | null;
    rtoPath?: string;
    rpo: { bytes: number | null; seconds: number | null; basis: string };
    newPrimary: { host: string; port: number } | null;
    steps: { name: string; ms: number; outcome: string }[];
    validation: { plan: { name: string; action: string }[] };
    warnings: string[];
  } | null;
}

/** Polls a failover until it is no longer running. */
export async function followFailover(client: ReturnType<typeof apiClient>, id: string, timeoutMs = 300_000): Promise<FailoverView> {
  let last: FailoverView | undefined;
  await waitFor(`failover ${id}`, async () => {
    last = await client.ok<FailoverView>("GET", `/v1/failovers/${id}`);
    return last.status !== "running";
  }, timeoutMs);
  return last!;
}

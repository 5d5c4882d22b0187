import { spawn, spawnSync } from "node:child_process";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { CLI, PASSWORD, type CliResult } from "./helpers.js";
import { freePort } from "./servers.js";

/**
 * Throwaway PostgreSQL 15 clusters for tests: initdb'd as the postgres user (the
 * server refuses root) in directories it owns, on a free loopback port, never the
 * machine's shared cluster. Cairn runs as the postgres user too, as a DBA would.
 */
export const PG_BIN = process.env.CAIRN_TEST_PG_BIN ?? "/usr/lib/postgresql/15/bin";
const pgUser = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
const PG_UID = Number(pgUser.stdout.trim());
const PG_GID = Number(spawnSync("id", ["-g", "postgres"], { encoding: "utf8" }).stdout.trim());

/** A temporary directory owned by the postgres user; cleanup removes it. */
export function pgTempDir(prefix = "cairn-pg-"): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  chownSync(dir, PG_UID, PG_GID);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs a program as the postgres user; resolves with its output (never rejects on a non-zero exit). */
export function asPostgres(file: string, args: string[], opts: { env?: Record<string, string | undefined>; input?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("runuser", ["-u", "postgres", "--", file, ...args], { env: { ...process.env, ...opts.env }, cwd: "/tmp", stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d) => out.push(d));
    child.stderr.on("data", (d) => err.push(d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
    // A program that exits without reading its input must not fail the test with EPIPE.
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}

async function mustPostgres(file: string, args: string[], opts: Parameters<typeof asPostgres>[2] = {}): Promise<CliResult> {
  const r = await asPostgres(file, args, opts);
  if (r.code !== 0) throw new Error(`${path.basename(file)} ${args.join(" ")} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** The cairn CLI as the postgres user, with the test password. */
export function cairnPg(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return asPostgres(process.execPath, [CLI, ...args], { env: { CAIRN_PASSWORD: PASSWORD, ...env } });
}

export async function cairnPgOk(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const r = await cairnPg(args, env);
  if (r.code !== 0) throw new Error(`cairn ${args.join(" ")} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** The command line that runs this checkout's cairn (for archive_command and friends). */
export function cairnCommand(repo: string, passwordFile: string): string {
  return `"${process.execPath}" "${CLI}" -r "${repo}" --password-file "${passwordFile}"`;
}

export interface PgCluster {
  pgdata: string;
  port: number;
  url: string;
  /** Runs SQL with psql; returns its unaligned, tuples-only output. */
  sql(query: string, db?: string): Promise<string>;
  start(extra?: Record<string, string>): Promise<void>;
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** Stops the server (if running) and removes its directory. */
  destroy(): Promise<void>;
}

/** Initialises a new cluster under `base` (owned by postgres) and starts it with `conf`. */
export async function initCluster(base: string, conf: Record<string, string> = {}): Promise<PgCluster> {
  const pgdata = path.join(base, `data-${Math.random().toString(36).slice(2, 8)}`);
  await mustPostgres(path.join(PG_BIN, "initdb"), ["-D", pgdata, "-U", "postgres", "-A", "trust", "--no-sync", "--no-instructions"]);
  const cluster = await clusterAt(pgdata);
  await cluster.start(conf);
  return cluster;
}

/** A cluster over an existing data directory (a restored one); not started. */
export async function clusterAt(pgdata: string): Promise<PgCluster> {
  const port = await freePort();
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  let running = false;
  const cluster: PgCluster = {
    pgdata,
    port,
    url,
    async sql(query, db = "postgres") {
      const r = await mustPostgres(path.join(PG_BIN, "psql"), ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", `postgresql://postgres@127.0.0.1:${port}/${db}`, "-c", query]);
      return r.stdout.trim();
    },
    async start(extra = {}) {
      const settings = { listen_addresses: "127.0.0.1", port: String(port), unix_socket_directories: pgdata, fsync: "off", ...extra };
      const o = Object.entries(settings).map(([k, v]) => `-c ${k}=${shellQuote(v)}`).join(" ");
      await mustPostgres(path.join(PG_BIN, "pg_ctl"), ["-D", pgdata, "-l", `${pgdata}.log`, "-o", o, "-w", "-t", "120", "start"]);
      running = true;
    },
    async stop(mode = "fast") {
      if (!running) return;
      await asPostgres(path.join(PG_BIN, "pg_ctl"), ["-D", pgdata, "-m", mode, "-w", "-t", "120", "stop"]);
      running = false;
    },
    async destroy() {
      await cluster.stop("immediate");
      rmSync(pgdata, { recursive: true, force: true });
    },
  };
  return cluster;
}

function shellQuote(v: string): string {
  return `'${v.replace(/'/g, `'"'"'`)}'`;
}

/** Waits until `check` returns true, polling; throws with `what` after the timeout. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Closes the current WAL segment and waits (`timeoutMs` at most) until PostgreSQL has archived it. */
export async function archiveEverything(pg: PgCluster, timeoutMs = 120_000): Promise<void> {
  const last = await pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
  await pg.sql("SELECT pg_switch_wal()");
  await waitFor("the last segment to be archived", async () => (await pg.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")) >= last, timeoutMs);
}

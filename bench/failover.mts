/**
 * Failover RTO and RPO, measured through the API on a real stack (Temporal dev
 * server and API in this process, a worker process, PostgreSQL 15 clusters, Debian's
 * PgBouncer as the cut-over path, pgbench as the application):
 *
 * - warm: a standby replaying the archive (restore_command = cairn pg wal-fetch) is
 *   promoted after the primary is SIGKILLed under pgbench load, once per
 *   archive_timeout in ARCHIVE_TIMEOUTS: the RPO of the asynchronous archiver.
 * - cold: no standby; the plan's base backup and archived WAL are restored first.
 *
 *   npm run build && npx tsx bench/failover.mts                      # SCALE=50, ARCHIVE_TIMEOUTS=5,30, LOAD_SECONDS=30
 *   SCALE=5 ARCHIVE_TIMEOUTS=5 LOAD_SECONDS=10 npx tsx bench/failover.mts   # a quick run
 *
 * Run as root after npm run build: the clusters, PgBouncer and the worker (dist/worker.js) run as postgres.
 * Prints a Markdown table; the numbers are for this machine and this run only.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { startApiServer } from "../api/server.js";
import { randomBytes } from "node:crypto";
import { testPolicy, testPolicyEnv } from "../test/policy-fixtures.js";
import { apiClient } from "../test/api-client.js";
import { PASSWORD, ROOT } from "../test/helpers.js";
import { asPostgres, cairnCommand, cairnPgOk, clusterAt, initCluster, PG_BIN, pgTempDir, waitFor, type PgCluster } from "../test/postgres.js";
import { freePort } from "../test/servers.js";
import { startDevServer } from "../scripts/temporal.js";

const SCALE = process.env.SCALE ?? "50";
const TIMEOUTS = (process.env.ARCHIVE_TIMEOUTS ?? "5,30").split(",").map(Number);
const LOAD_SECONDS = Number(process.env.LOAD_SECONDS ?? "30");
const tmp = pgTempDir("cairn-bench-failover-");
const dataDir = path.join(tmp.dir, "data");
const repo = path.join(tmp.dir, "repo");
const passwordFile = path.join(tmp.dir, "password");
const cleanups: (() => Promise<unknown>)[] = [];

interface Result {
  rtoMs: number;
  rtoPath: string;
  rpo: { bytes: number | null; seconds: number | null; basis: string };
  steps: { name: string; ms: number }[];
}

async function must(p: Promise<{ code: number; stdout: string; stderr: string }>, what: string) {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r;
}

async function startBouncer(dir: string, port: number, target: number): Promise<{ ini: string; stop(): Promise<void> }> {
  const ini = path.join(dir, "pgbouncer.ini");
  writeFileSync(path.join(dir, "userlist.txt"), '"postgres" ""\n');
  writeFileSync(ini, `[databases]\nbench = host=127.0.0.1 port=${target} dbname=bench\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = ${port}\nunix_socket_dir =\nauth_type = trust\nauth_file = ${path.join(dir, "userlist.txt")}\npool_mode = transaction\nserver_login_retry = 1\npidfile = ${path.join(dir, "pgbouncer.pid")}\nlogfile = ${path.join(dir, "pgbouncer.log")}\n`);
  chmodSync(ini, 0o644);
  // The worker (postgres) rewrites it at the cut-over.
  chownSync(ini, Number((await asPostgres("/usr/bin/id", ["-u"])).stdout.trim()), Number((await asPostgres("/usr/bin/id", ["-g"])).stdout.trim()));
  spawn("runuser", ["-u", "postgres", "--", "/usr/sbin/pgbouncer", "-d", ini], { stdio: "ignore" });
  await waitFor("PgBouncer", async () => (await asPostgres(path.join(PG_BIN, "psql"), ["-X", "-d", `postgresql://postgres@127.0.0.1:${port}/pgbouncer`, "-c", "SHOW VERSION"])).code === 0 || (await asPostgres(path.join(PG_BIN, "pg_isready"), ["-h", "127.0.0.1", "-p", String(port)])).code === 0);
  return { ini, stop: async () => void (await asPostgres("/bin/sh", ["-c", `kill $(cat ${path.join(dir, "pgbouncer.pid")}) 2>/dev/null`])) };
}

async function main() {
  writeFileSync(passwordFile, PASSWORD);
  chmodSync(passwordFile, 0o644);
  await cairnPgOk(["-r", repo, "--password-file", passwordFile, "init"]);
  const temporal = await startDevServer({ dbFile: path.join(tmp.dir, "temporal.db"), headless: true, log: () => undefined });
  cleanups.push(() => temporal.stop());
  const policy = testPolicy(tmp.dir, dataDir, { CAIRN_FAILOVER_PATHS: tmp.dir });
  // The API (this process) and the worker share the platform secret key through the environment.
  process.env.CAIRN_SECRET_KEY = randomBytes(32).toString("base64");
  const api = await startApiServer({ policy, port: 0, dataDir, temporalAddress: temporal.address });
  cleanups.push(() => api.close());
  // The worker runs as the postgres user, next to the clusters, as a DBA would run it: it stops
  // their servers and runs a restored one as the owner of its data directory.
  await asPostgres("/bin/mkdir", ["-p", path.join(tmp.dir, "worker-data")]);
  const worker = spawn("runuser", ["-u", "postgres", "--", process.execPath, path.join(ROOT, "dist", "worker.js")], {
    env: { ...process.env, TEMPORAL_ADDRESS: temporal.address, CAIRN_DATA_DIR: path.join(tmp.dir, "worker-data"), ...testPolicyEnv(tmp.dir), CAIRN_FAILOVER_PATHS: tmp.dir, CAIRN_WORKER_CONCURRENCY: "2", CAIRN_THREADS: "1" },
    cwd: tmp.dir,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const exited = new Promise((r) => worker.once("exit", r));
  cleanups.push(async () => {
    worker.kill("SIGTERM");
    await exited;
  });
  const client = apiClient(api);
  const { id: repositoryId } = await client.ok<{ id: string }>("POST", "/v1/repositories", { name: "pg", url: repo, password: PASSWORD });
  const rows: string[] = [];

  /** A primary archiving into the repository, with pgbench's tables at SCALE, a plan for it, and PgBouncer in front. */
  async function setup(name: string, archiveTimeout: number) {
    const base = path.join(tmp.dir, name);
    await asPostgres("/bin/mkdir", ["-p", base]);
    const primary = await initCluster(base, { archive_mode: "on", archive_command: `${cairnCommand(repo, passwordFile)} pg wal-push %p`, archive_timeout: String(archiveTimeout), max_wal_size: "2GB" });
    cleanups.push(() => primary.destroy());
    await primary.sql("CREATE DATABASE bench");
    await must(asPostgres(path.join(PG_BIN, "pgbench"), ["-i", "-s", SCALE, "-q", "-d", primary.url.replace(/\/postgres$/, "/bench")]), "pgbench -i");
    const { id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", { name, repositoryId, source: { type: "postgres", mode: "physical", url: primary.url } });
    const bouncer = await startBouncer(base, await freePort(), primary.port);
    cleanups.push(() => bouncer.stop());
    return { base, primary, planId, bouncer, bouncerPort: Number(/listen_port = (\d+)/.exec(readFileSync(bouncer.ini, "utf8"))![1]) };
  }

  async function load(port: number, seconds: number): Promise<ChildProcess> {
    const p = spawn("runuser", ["-u", "postgres", "--", path.join(PG_BIN, "pgbench"), "-c", "4", "-j", "2", "-T", String(seconds + 600), "-n", "-d", `postgresql://postgres@127.0.0.1:${port}/bench`], { stdio: "ignore" });
    await new Promise((r) => setTimeout(r, seconds * 1000));
    return p;
  }

  async function failover(body: Record<string, unknown>): Promise<Result> {
    const { id } = await client.ok<{ id: string }>("POST", "/v1/failovers", body);
    let last: { status: string; result: Result | null; error: string | null } | undefined;
    await waitFor(`failover ${id}`, async () => {
      last = await client.ok("GET", `/v1/failovers/${id}`);
      return last!.status !== "running";
    }, 3_600_000);
    if (last!.status !== "completed") throw new Error(`failover ${id} ${last!.status}: ${last!.error}`);
    return last!.result!;
  }

  const kill = (pg: PgCluster) => process.kill(Number(readFileSync(path.join(pg.pgdata, "postmaster.pid"), "utf8").split("\n")[0]), "SIGKILL");
  const row = (what: string, r: Result, extra = "") => {
    const step = (n: string) => `${((r.steps.find((s) => s.name === n)?.ms ?? 0) / 1000).toFixed(1)}`;
    rows.push(`| ${what} | ${(r.rtoMs / 1000).toFixed(1)} s (${r.rtoPath}) | ${r.rpo.bytes ?? "?"} | ${r.rpo.seconds?.toFixed(2) ?? "?"} | ${step("fence")} / ${step("restore")} / ${step("promote")} / ${step("cutover")} | ${extra} |`);
    console.error(rows.at(-1), r.rpo.basis);
  };

  for (const timeout of process.env.COLD_ONLY ? [] : TIMEOUTS) {
    const s = await setup(`warm-${timeout}`, timeout);
    const standbyDir = path.join(s.base, "standby");
    await must(asPostgres(path.join(PG_BIN, "pg_basebackup"), ["-D", standbyDir, "-d", s.primary.url, "-X", "fetch", "-c", "fast", "--no-sync"]), "pg_basebackup");
    writeFileSync(path.join(standbyDir, "standby.signal"), "");
    writeFileSync(path.join(standbyDir, "postgresql.auto.conf"), `restore_command = '${cairnCommand(repo, passwordFile).replace(/'/g, "''")} pg wal-fetch %f "%p"'\n`);
    await asPostgres("/bin/chown", ["-R", "postgres:postgres", standbyDir]);
    const standby = await clusterAt(standbyDir);
    await standby.start({ hot_standby: "on" });
    cleanups.push(() => standby.destroy());
    const pgbench = await load(s.bouncerPort, LOAD_SECONDS);
    kill(s.primary);
    const r = await failover({ planId: s.planId, standby: { dataDir: standbyDir, port: standby.port }, fence: { dataDir: s.primary.pgdata }, cutover: { type: "pgbouncer", configFile: s.bouncer.ini, database: "bench" }, reason: "bench" });
    pgbench.kill("SIGKILL");
    row(`warm standby, archive_timeout ${timeout} s`, r, `pgbench -c 4 for ${LOAD_SECONDS} s, then SIGKILL`);
  }

  {
    const s = await setup("cold", TIMEOUTS[0]);
    const { jobId } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${s.planId}/run`);
    await waitFor("base backup", async () => (await client.ok<{ status: string }>("GET", `/v1/jobs/${jobId}`)).status !== "running", 3_600_000);
    const pgbench = await load(s.bouncerPort, LOAD_SECONDS);
    kill(s.primary);
    const into = path.join(tmp.dir, "restores-cold");
    const r = await failover({ planId: s.planId, into: { dataDir: into, port: await freePort() }, fence: { dataDir: s.primary.pgdata }, cutover: { type: "pgbouncer", configFile: s.bouncer.ini, database: "bench" }, reason: "bench" });
    pgbench.kill("SIGKILL");
    cleanups.push(async () => {
      const c = await clusterAt(into);
      await asPostgres(path.join(PG_BIN, "pg_ctl"), ["-D", into, "-m", "immediate", "stop"]);
      return c;
    });
    row(`cold restore (base backup + archive), archive_timeout ${TIMEOUTS[0]} s`, r, `pgbench -c 4 for ${LOAD_SECONDS} s after the base backup`);
  }

  console.log(`\nFailover, pgbench scale ${SCALE} (${new Date().toISOString()})\n`);
  console.log("| scenario | RTO (to a write through) | RPO bytes | RPO seconds | fence / restore / promote / cutover (s) | load |");
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const r of rows) console.log(r);
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    tmp.cleanup();
  });

/**
 * Failover RTO and RPO, measured through the API on a real stack (Temporal dev
 * server and API in this process, a worker process, PostgreSQL 15 clusters, Debian's
 * PgBouncer as the cut-over path, pgbench as the application), the primary SIGKILLed
 * under pgbench load, once per archive_timeout in ARCHIVE_TIMEOUTS (the asynchronous
 * archiver's RPO):
 *
 * - warm: a standby replaying the archive (restore_command = cairn pg wal-fetch) is promoted.
 * - cold: no standby; the plan's base backup and archived WAL are restored first.
 *
 * While pgbench runs, a heartbeat (public.cairn_heartbeat, the table the failover reads)
 * is written on the primary every HEARTBEAT_MS: the RPO in seconds is also measured from
 * it, as the last heartbeat the old primary committed minus the one the new primary has,
 * next to the RPO the failover's result reports.
 *
 *   npm run build && npx tsx bench/failover.mts                      # SCALE=50, ARCHIVE_TIMEOUTS=5,30, LOAD_SECONDS=30
 *   SCALE=5 ARCHIVE_TIMEOUTS=5 LOAD_SECONDS=10 npx tsx bench/failover.mts   # a quick run
 *   COLD_ONLY=1 / WARM_ONLY=1                                          # one kind of scenario
 *   RATE=20                                                            # pgbench -R 20: a lighter load, where archive_timeout, not full segments, bounds the RPO
 *
 * Run as root after npm run build: the clusters, PgBouncer and the worker (dist/worker.js) run as postgres.
 * Prints a Markdown table; the numbers are for this machine and this run only (the load average is printed).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import * as path from "node:path";
import { startApiServer } from "../api/server.js";
import { randomBytes } from "node:crypto";
import { parseConnectionUrl } from "../sources/postgres/connection.js";
import { readHeartbeat, writeHeartbeat, type Heartbeat } from "../sources/postgres/heartbeat.js";
import { testPolicy } from "../test/policy-fixtures.js";
import { apiClient } from "../test/api-client.js";
import { PASSWORD } from "../test/helpers.js";
import { followFailover, killPostmaster, startPgBouncer, startPostgresWorker } from "../test/pg-archiving.js";
import { asPostgres, cairnCommand, cairnPgOk, clusterAt, initCluster, PG_BIN, pgTempDir, waitFor } from "../test/postgres.js";
import { freePort } from "../test/servers.js";
import { startDevServer } from "../scripts/temporal.js";

const SCALE = process.env.SCALE ?? "50";
const TIMEOUTS = (process.env.ARCHIVE_TIMEOUTS ?? "5,30").split(",").map(Number);
const LOAD_SECONDS = Number(process.env.LOAD_SECONDS ?? "30");
const HEARTBEAT_MS = Number(process.env.HEARTBEAT_MS ?? "500");
/** pgbench's transactions per second (-R), all clients together; unset: as fast as it goes. */
const RATE = process.env.RATE;
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
  const worker = startPostgresWorker({ env: { TEMPORAL_ADDRESS: temporal.address } }, tmp.dir, { CAIRN_FAILOVER_PATHS: tmp.dir, CAIRN_WORKER_CONCURRENCY: "2" });
  cleanups.push(() => worker.stop());
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
    const bouncer = await startPgBouncer(base, primary.port);
    cleanups.push(() => bouncer.stop());
    return { base, primary, planId, bouncer };
  }

  /**
   * pgbench through PgBouncer for `seconds`, with a heartbeat written on the primary every
   * HEARTBEAT_MS; resolves with pgbench still running (it is killed after the failover)
   * and the heartbeat writer, which keeps the last heartbeat the primary committed.
   */
  async function load(port: number, primaryUrl: string, seconds: number) {
    const pgbench: ChildProcess = spawn("runuser", ["-u", "postgres", "--", path.join(PG_BIN, "pgbench"), "-c", "4", "-j", "2", "-T", String(seconds + 600), ...(RATE ? ["-R", RATE] : []), "-n", "-d", `postgresql://postgres@127.0.0.1:${port}/bench`], { stdio: "ignore" });
    const conn = parseConnectionUrl(primaryUrl);
    let last: Heartbeat | undefined;
    let beating = true;
    const beats = (async () => {
      while (beating) {
        // A write the dying primary does not answer fails: the last one that committed stays.
        last = (await writeHeartbeat(conn).catch(() => undefined)) ?? last;
        await new Promise((r) => setTimeout(r, HEARTBEAT_MS));
      }
    })();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    return {
      pgbench,
      /** Stops the writer (after the primary is killed) and answers the last heartbeat it committed. */
      async lastHeartbeat() {
        beating = false;
        await beats;
        return last;
      },
    };
  }

  async function failover(body: Record<string, unknown>): Promise<Result> {
    const { id } = await client.ok<{ id: string }>("POST", "/v1/failovers", body);
    const last = await followFailover(client, id, 3_600_000);
    if (last.status !== "completed") throw new Error(`failover ${id} ${last.status}: ${last.error}\n${worker.log()}`);
    return last.result as unknown as Result;
  }

  /** The heartbeat the new primary has against the last one the old primary committed: the writes lost, in time and count. */
  const heartbeatRpo = async (port: number, old: Heartbeat | undefined) => {
    const now = await readHeartbeat({ ...parseConnectionUrl(`postgresql://postgres@127.0.0.1:${port}/postgres`) });
    if (!old) return "? (no heartbeat committed)";
    if (!now) return `none replayed (all ${old.seq} lost)`;
    return `${((old.at.getTime() - now.at.getTime()) / 1000).toFixed(2)} (${old.seq - now.seq} lost)`;
  };
  const row = (what: string, r: Result, heartbeat: string, extra = "") => {
    const step = (n: string) => `${((r.steps.find((s) => s.name === n)?.ms ?? 0) / 1000).toFixed(1)}`;
    rows.push(`| ${what} | ${(r.rtoMs / 1000).toFixed(1)} s (${r.rtoPath}) | ${r.rpo.bytes ?? "?"} | ${r.rpo.seconds?.toFixed(2) ?? "?"} | ${heartbeat} | ${step("fence")} / ${step("restore")} / ${step("promote")} / ${step("cutover")} | ${extra} |`);
    console.error(rows.at(-1), r.rpo.basis);
  };
  const loads = [`start ${loadavg().map((l) => l.toFixed(2)).join(" ")}`];

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
    const app = await load(s.bouncer.port, s.primary.url, LOAD_SECONDS);
    killPostmaster(s.primary);
    const lastBeat = await app.lastHeartbeat();
    const r = await failover({ planId: s.planId, standby: { dataDir: standbyDir, port: standby.port }, fence: { dataDir: s.primary.pgdata }, cutover: { type: "pgbouncer", configFile: s.bouncer.configFile, database: "bench" }, reason: "bench" });
    app.pgbench.kill("SIGKILL");
    row(`warm standby, archive_timeout ${timeout} s`, r, await heartbeatRpo(standby.port, lastBeat), `pgbench -c 4${RATE ? ` -R ${RATE}` : ""} for ${LOAD_SECONDS} s, then SIGKILL`);
    loads.push(`after warm ${timeout} s: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  }

  for (const timeout of process.env.WARM_ONLY ? [] : TIMEOUTS) {
    const s = await setup(`cold-${timeout}`, timeout);
    const { jobId } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${s.planId}/run`);
    await waitFor("base backup", async () => (await client.ok<{ status: string }>("GET", `/v1/jobs/${jobId}`)).status !== "running", 3_600_000);
    const app = await load(s.bouncer.port, s.primary.url, LOAD_SECONDS);
    killPostmaster(s.primary);
    const lastBeat = await app.lastHeartbeat();
    const into = path.join(tmp.dir, `restored-cold-${timeout}`);
    const port = await freePort();
    cleanups.push(() => asPostgres(path.join(PG_BIN, "pg_ctl"), ["-D", into, "-m", "immediate", "stop"]));
    const r = await failover({ planId: s.planId, into: { dataDir: into, port }, fence: { dataDir: s.primary.pgdata }, cutover: { type: "pgbouncer", configFile: s.bouncer.configFile, database: "bench" }, reason: "bench" });
    app.pgbench.kill("SIGKILL");
    row(`cold restore (base backup + archive), archive_timeout ${timeout} s`, r, await heartbeatRpo(port, lastBeat), `pgbench -c 4${RATE ? ` -R ${RATE}` : ""} for ${LOAD_SECONDS} s after the base backup, then SIGKILL`);
    loads.push(`after cold ${timeout} s: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  }

  console.log(`\nFailover, pgbench scale ${SCALE}, heartbeat every ${HEARTBEAT_MS} ms (${new Date().toISOString()}); load average (1, 5, 15 min) ${loads.join("; ")}\n`);
  console.log("| scenario | RTO (to a write through) | RPO bytes (result) | RPO seconds (result) | RPO seconds (heartbeat) | fence / restore / promote / cutover (s) | load |");
  console.log("| --- | --- | --- | --- | --- | --- | --- |");
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

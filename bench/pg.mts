/**
 * Cairn and pgBackRest side by side on one PostgreSQL 15 cluster (same machine, same
 * run): full base backup, a second backup after 30 s of pgbench, 32 WAL segments
 * archived, and point-in-time recovery to a time until the cluster accepts writes.
 *
 *   npm run build && npx tsx bench/pg.mts            # SCALE=50 by default (about 750 MB)
 *   SCALE=5 PGBENCH_SECONDS=10 npx tsx bench/pg.mts  # a quick run
 *   REPS=3 ...                                        # each tool's PITR three times, alternating
 *
 * The PITRs run last, the two tools alternating, so that a change in the machine's
 * load (shared with other work) weighs on both alike; with REPS > 1 the table shows the
 * median and every run.
 * Needs Debian's postgresql-15 and pgbackrest packages. Prints a Markdown table; the
 * numbers are for this machine and this run only.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, readFileSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { CLI, PASSWORD } from "../test/helpers.js";
import { asPostgres, cairnCommand, cairnPgOk, clusterAt, initCluster, PG_BIN, pgTempDir, waitFor, type PgCluster } from "../test/postgres.js";

const SCALE = process.env.SCALE ?? "50";
const PGBENCH_SECONDS = process.env.PGBENCH_SECONDS ?? "30";
const REPS = Math.max(1, Number(process.env.REPS ?? "1") || 1);
const tmp = pgTempDir("cairn-bench-pg-");
const row: Record<string, Record<string, string>> = { cairn: {}, pgbackrest: {} };

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
async function duBytes(dir: string): Promise<number> {
  const r = await asPostgres("du", ["-sb", dir]);
  return Number(r.stdout.split("\t")[0]);
}
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = Date.now();
  await fn();
  return Date.now() - t0;
}
async function must(p: Promise<{ code: number; stdout: string; stderr: string }>, what: string) {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r;
}

async function setArchiveCommand(pg: PgCluster, command: string) {
  await pg.sql(`ALTER SYSTEM SET archive_command = '${command.replace(/'/g, "''")}'`);
  await pg.sql("SELECT pg_reload_conf()");
}

const archivedCount = async (pg: PgCluster) => Number(await pg.sql("SELECT archived_count FROM pg_stat_archiver"));

/** Writes 32 segments' worth of WAL (one switch each) and times until PostgreSQL counts them archived. */
async function archive32(pg: PgCluster): Promise<number> {
  const before = await archivedCount(pg);
  return timed(async () => {
    for (let i = 0; i < 32; i++) await pg.sql("INSERT INTO bench_wal SELECT g, md5(g::text) FROM generate_series(1, 150000) g; SELECT pg_switch_wal()");
    await waitFor("32 segments archived", async () => (await archivedCount(pg)) >= before + 32, 1_800_000);
  }).finally(() => pg.sql("TRUNCATE bench_wal; CHECKPOINT"));
}

/** A time between two marker commits, with the second marker's segment archived. */
async function pitrTarget(pg: PgCluster, tool: string): Promise<string> {
  await pg.sql(`INSERT INTO bench_marker VALUES ('${tool}-before')`);
  await new Promise((r) => setTimeout(r, 200));
  const t = await pg.sql("SELECT clock_timestamp()");
  await new Promise((r) => setTimeout(r, 200));
  await pg.sql(`INSERT INTO bench_marker VALUES ('${tool}-after')`);
  const before = await archivedCount(pg);
  await pg.sql("SELECT pg_switch_wal()");
  await waitFor("the marker segment archived", async () => (await archivedCount(pg)) > before, 600_000);
  return t;
}

/** Where the time of a point-in-time recovery went (milliseconds), from wall clocks and the server's log. */
interface PitrSplit {
  /** The tool's restore command: the base backup's files on disk and recovery set up. */
  restore: number;
  /** pg_ctl start until the server logs that it starts point-in-time recovery. */
  startup: number;
  /** From there until it logs that recovery stops at the target: every WAL file fetched and replayed. */
  replay: number;
  /** Of that, time inside restore_command (from the server's "executing restore command" to its "restored log file"). */
  fetch: number;
  /** WAL files restore_command delivered. */
  files: number;
  /** Recovery stopped at the target until a write was accepted (end-of-recovery checkpoint, promotion, our polling). */
  promote: number;
  total: number;
}

/** A server log line's time: log_line_prefix '%m ' in UTC (2026-11-30 22:58:01.123 UTC). */
function logTime(line: string): number | undefined {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3}) UTC/.exec(line);
  return m ? Date.parse(`${m[1]}T${m[2]}Z`) : undefined;
}

/** Splits the recovery the server logged into `${dir}.log`; `t1` is when pg_ctl start ran, `t2` when a write was accepted. */
function splitFromLog(dir: string, t0: number, t1: number, t2: number): PitrSplit {
  const lines = readFileSync(`${dir}.log`, "utf8").split("\n");
  const at = (re: RegExp) => {
    const line = lines.find((l) => re.test(l));
    const t = line && logTime(line);
    if (!t) throw new Error(`the server log ${dir}.log has no line matching ${re}`);
    return t;
  };
  const begin = at(/starting point-in-time recovery/);
  const stop = at(/recovery stopping (before|after)/);
  let fetch = 0;
  let files = 0;
  let executing: number | undefined;
  for (const l of lines) {
    if (/executing restore command/.test(l)) executing = logTime(l);
    else if (/restored log file/.test(l) && executing !== undefined) {
      fetch += (logTime(l) ?? executing) - executing;
      files++;
      executing = undefined;
    } else if (/could not restore file/.test(l) && executing !== undefined) {
      fetch += (logTime(l) ?? executing) - executing;
      executing = undefined;
    }
  }
  return { restore: t1 - t0, startup: begin - t1, replay: stop - begin, fetch, files, promote: t2 - stop, total: t2 - t0 };
}

/**
 * Starts a restored data directory, waits until it takes a write and splits the time
 * since `t0` (the restore command's start; `t1` its end). The server logs at DEBUG3 so
 * that each restore_command call is timed from its "executing restore command" line;
 * both tools run under the same setting.
 */
async function startAndWrite(dir: string, t0: number, t1: number): Promise<PitrSplit> {
  const restored = await clusterAt(dir);
  await restored.start({ archive_mode: "off", log_line_prefix: "%m [%p] ", log_timezone: "UTC", log_min_messages: "debug3" });
  await waitFor("promotion", async () => (await restored.sql("SELECT pg_is_in_recovery()")) === "f", 1_800_000);
  await restored.sql("CREATE TABLE written_after_recovery (i int)");
  const t2 = Date.now();
  const notes = await restored.sql("SELECT string_agg(note, ',') FROM bench_marker");
  await restored.destroy();
  if (!/before/.test(notes) || /after/.test(notes.split(",").pop() ?? "")) process.stderr.write(`warning: recovered markers ${notes}\n`);
  const split = splitFromLog(dir, t0, t1, t2);
  if (process.env.KEEP_LOGS) copyFileSync(`${dir}.log`, path.join(process.env.KEEP_LOGS, path.basename(dir) + ".log"));
  return split;
}

/** Times the restore command into a new directory `${dir}-N`, then the start until a write. */
async function pitr(dir: string, rep: number, restore: (dir: string) => Promise<unknown>): Promise<PitrSplit> {
  const into = `${dir}-${rep}`;
  const t0 = Date.now();
  await restore(into);
  const t1 = Date.now();
  return startAndWrite(into, t0, t1);
}

/** Each tool's point-in-time recovery, run once its repository holds the backups and WAL. */
const pitrs: Record<string, (rep: number) => Promise<PitrSplit>> = {};

/** Records the PITR rows: the median of each part (and every total when there are several). */
function recordPitr(r: Record<string, string>, runs: PitrSplit[]): void {
  const median = (f: (s: PitrSplit) => number) => {
    const v = runs.map(f).sort((a, b) => a - b);
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  r.pitr = seconds(median((s) => s.total)) + (runs.length > 1 ? ` (${runs.map((s) => (s.total / 1000).toFixed(1)).join(", ")})` : "");
  r.pitrRestore = seconds(median((s) => s.restore));
  r.pitrStartup = seconds(median((s) => s.startup));
  r.pitrReplay = `${seconds(median((s) => s.replay))} (fetch ${seconds(median((s) => s.fetch))}, ${median((s) => s.files)} files)`;
  r.pitrPromote = seconds(median((s) => s.promote));
}

async function benchCairn(pg: PgCluster) {
  const repo = path.join(tmp.dir, "cairn-repo");
  const spool = path.join(tmp.dir, "cairn-spool");
  const pw = path.join(tmp.dir, "password");
  writeFileSync(pw, PASSWORD);
  const r = (...a: string[]) => ["-r", repo, "--password-file", pw, ...a];
  await cairnPgOk(r("init"));
  const { uid, gid } = statSync(tmp.dir);
  const archiver: ChildProcess = spawn(process.execPath, [CLI, ...r("-q", "pg", "archiver", "--pgdata", pg.pgdata, "--spool", spool)], { uid, gid, stdio: "inherit" });
  try {
    await setArchiveCommand(pg, `${cairnCommand(repo, pw)} pg wal-push --spool ${spool} %p`);
    const c = row.cairn;
    c.full = seconds(await timed(() => cairnPgOk(r("pg", "backup", "--url", pg.url))));
    const size1 = await duBytes(repo);
    c.fullSize = mb(size1);
    await must(asPostgres(path.join(PG_BIN, "pgbench"), ["-T", PGBENCH_SECONDS, "-c", "2", "-n", pg.url]), "pgbench");
    c.second = seconds(await timed(() => cairnPgOk(r("pg", "backup", "--url", pg.url))));
    c.secondGrowth = mb((await duBytes(repo)) - size1);
    c.wal32 = seconds(await archive32(pg));
    const t = await pitrTarget(pg, "cairn");
    const dir = path.join(tmp.dir, "cairn-restored");
    pitrs.cairn = (rep) => pitr(dir, rep, (into) => cairnPgOk(r("pg", "restore", "--target-dir", into, "--time", t)));
  } finally {
    archiver.kill("SIGTERM");
  }
}

async function benchPgBackRest(pg: PgCluster) {
  const repo = path.join(tmp.dir, "pgbackrest-repo");
  const conf = path.join(tmp.dir, "pgbackrest.conf");
  writeFileSync(conf, [
    "[global]", `repo1-path=${repo}`, "repo1-retention-full=2", "start-fast=y", "process-max=2",
    `lock-path=${tmp.dir}/pgbackrest-lock`, `log-path=${tmp.dir}/pgbackrest-log`, "log-level-console=warn", "log-level-file=off",
    "[bench]", `pg1-path=${pg.pgdata}`, `pg1-port=${pg.port}`, `pg1-socket-path=${pg.pgdata}`, "pg1-user=postgres", "",
  ].join("\n"));
  const pgbr = (...a: string[]) => must(asPostgres("pgbackrest", [`--config=${conf}`, "--stanza=bench", ...a]), `pgbackrest ${a[0]}`);
  await setArchiveCommand(pg, `pgbackrest --config=${conf} --stanza=bench archive-push %p`);
  await pgbr("stanza-create");
  const b = row.pgbackrest;
  b.full = seconds(await timed(() => pgbr("backup", "--type=full")));
  const size1 = await duBytes(repo);
  b.fullSize = mb(size1);
  await must(asPostgres(path.join(PG_BIN, "pgbench"), ["-T", PGBENCH_SECONDS, "-c", "2", "-n", pg.url]), "pgbench");
  b.second = seconds(await timed(() => pgbr("backup", "--type=incr")));
  b.secondGrowth = mb((await duBytes(repo)) - size1);
  b.wal32 = seconds(await archive32(pg));
  const t = await pitrTarget(pg, "pgbackrest");
  const dir = path.join(tmp.dir, "pgbackrest-restored");
  pitrs.pgbackrest = (rep) => pitr(dir, rep, (into) => pgbr("restore", `--pg1-path=${into}`, "--type=time", `--target=${t}`, "--target-action=promote"));
}

// archive_command is set with ALTER SYSTEM only: a -c setting on the command line would override it.
const pg = await initCluster(tmp.dir, { archive_mode: "on", max_wal_size: "4GB" });
let ok = false;
try {
  await setArchiveCommand(pg, "/bin/true");
  process.stderr.write(`pgbench -i -s ${SCALE}\n`);
  await must(asPostgres(path.join(PG_BIN, "pgbench"), ["-i", "-s", SCALE, "-q", pg.url]), "pgbench -i");
  await pg.sql("CREATE TABLE bench_wal (i int, pad text); CREATE TABLE bench_marker (note text); CHECKPOINT");
  process.stderr.write(`database size: ${await pg.sql("SELECT pg_size_pretty(pg_database_size('postgres'))")}\n`);
  for (const tool of (process.env.TOOLS ?? "cairn pgbackrest").split(" ")) {
    process.stderr.write(`${tool}...\n`);
    if (tool === "cairn") await benchCairn(pg);
    else await benchPgBackRest(pg);
  }
  const runs: Record<string, PitrSplit[]> = {};
  for (let rep = 1; rep <= REPS; rep++) {
    for (const [tool, run] of Object.entries(pitrs)) {
      process.stderr.write(`${tool} point-in-time recovery ${rep}/${REPS}...\n`);
      (runs[tool] ??= []).push(await run(rep));
    }
  }
  for (const [tool, splits] of Object.entries(runs)) recordPitr(row[tool], splits);
  ok = true;
} finally {
  await pg.stop("immediate");
  if (ok) tmp.cleanup();
  else process.stderr.write(`kept ${tmp.dir} for a look\n`);
}
const lines = [
  `| scale ${SCALE} | Cairn | pgBackRest |`,
  "| --- | --- | --- |",
  ...([
    ["full base backup, time", "full"],
    ["full base backup, repository size", "fullSize"],
    [`second backup after ${PGBENCH_SECONDS} s of pgbench, time`, "second"],
    ["second backup, repository growth", "secondGrowth"],
    ["32 WAL segments archived, time", "wal32"],
    ["PITR to a time until it accepts writes", "pitr"],
    ["- restore of the base backup (files on disk)", "pitrRestore"],
    ["- server start to recovery begin", "pitrStartup"],
    ["- WAL replay to the target (fetch + apply)", "pitrReplay"],
    ["- target reached to a write accepted (promotion)", "pitrPromote"],
  ] as const).map(([label, key]) => `| ${label} | ${row.cairn[key] ?? "not run"} | ${row.pgbackrest[key] ?? "not run"} |`),
];
process.stdout.write(lines.join("\n") + "\n");

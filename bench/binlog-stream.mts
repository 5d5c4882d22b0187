/**
 * Recovery point of continuous binary log archiving, side by side in one run against
 * one MariaDB (mariadb-install-db, a writer committing a row every 50 ms):
 *
 * - by hand: `mariadb-binlog --read-from-remote-server --raw --stop-never` into a
 *   directory (what DBAs run; the log lands in a local file, in no repository);
 * - cairn: `cairn mysql binlog-archive --follow --interval I` into a local repository,
 *   for each I in INTERVALS.
 *
 * Every 500 ms the server's position (SHOW MASTER STATUS) is sampled; a tool's lag
 * for a sample is how long until it holds that position (the file's size for the
 * hand-run one, polled every 50 ms; the follower's report of a stored position for
 * cairn). Also the bytes cairn wrote into the repository per binary log byte.
 *
 *   npm run build && npx tsx bench/binlog-stream.mts                 # INTERVALS=1,5 LOAD_SECONDS=60
 *   INTERVALS=1 LOAD_SECONDS=20 npx tsx bench/binlog-stream.mts      # a quick run
 *
 * Prints a Markdown table; the numbers are for this machine and this run only.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { CLI, PASSWORD, ROOT, cairnOk } from "../test/helpers.js";
import { BACKUP_PASSWORD, initMariaDb, mysqlTempDir } from "../test/mysql.js";

const INTERVALS = (process.env.INTERVALS ?? "1,5").split(",").map(Number);
const LOAD_SECONDS = Number(process.env.LOAD_SECONDS ?? "60");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const tmp = mysqlTempDir("cairn-bench-binlog-");
const db = await initMariaDb(tmp.dir);
const children: ChildProcess[] = [];
try {
  await db.sql("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, at DATETIME(6), pad VARCHAR(200))");
  const passwordFile = path.join(tmp.dir, "db-password");
  writeFileSync(passwordFile, BACKUP_PASSWORD, { mode: 0o600 });
  const cnf = path.join(tmp.dir, "client.cnf");
  writeFileSync(cnf, `[client]\nhost=127.0.0.1\nport=${db.port}\nprotocol=tcp\nuser=cairn_backup\npassword="${BACKUP_PASSWORD.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"\n`, { mode: 0o600 });

  // The hand-run streamer.
  const raw = path.join(tmp.dir, "raw");
  await import("node:fs/promises").then((fs) => fs.mkdir(raw));
  children.push(spawn("mariadb-binlog", [`--defaults-file=${cnf}`, "--read-from-remote-server", "--raw", "--stop-never", "--stop-never-slave-server-id=4100000000", `--result-file=${raw}/`, "binlog.000001"], { stdio: "ignore" }));

  // One cairn follower (and repository) per interval; each report line is timed as it arrives.
  const followers = [];
  for (const interval of INTERVALS) {
    const repo = path.join(tmp.dir, `repo-${interval}`);
    await cairnOk(["-r", repo, "init"]);
    const reports: { at: number; file: string; pos: number }[] = [];
    const child = spawn(process.execPath, [CLI, "-r", repo, "--json", "mysql", "binlog-archive", "--follow", "--interval", String(interval), "--replica-id", String(4100000001 + interval), "--spool", path.join(tmp.dir, `spool-${interval}`), "--url", db.url, "--db-password-file", passwordFile], {
      cwd: ROOT,
      env: { ...process.env, CAIRN_PASSWORD: PASSWORD },
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(child);
    let buffered = "";
    child.stdout!.on("data", (d: Buffer) => {
      buffered += d.toString("utf8");
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const l of lines) {
        const r = JSON.parse(l) as { partial?: string };
        if (r.partial) {
          const [file, pos] = r.partial.split(":");
          reports.push({ at: Date.now(), file, pos: Number(pos) });
        }
      }
    });
    followers.push({ interval, repo, reports });
  }
  await sleep(3000);

  // The load, the samples, and the hand-run file's growth.
  let writing = true;
  const writer = (async () => {
    while (writing) {
      await db.sql(`INSERT INTO app.t (at, pad) VALUES (NOW(6), REPEAT('x', 200))`);
      await sleep(50);
    }
  })();
  const rawSeen: { at: number; file: string; size: number }[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      for (const f of readdirSync(raw)) rawSeen.push({ at: Date.now(), file: f, size: statSync(path.join(raw, f)).size });
      await sleep(50);
    }
  })();
  const samples: { at: number; file: string; pos: number }[] = [];
  const loadEnd = Date.now() + LOAD_SECONDS * 1000;
  while (Date.now() < loadEnd) {
    const at = Date.now();
    const [file, pos] = (await db.sql("SHOW MASTER STATUS")).split("\t");
    samples.push({ at, file, pos: Number(pos) });
    await sleep(500);
  }
  writing = false;
  await writer;
  await sleep(Math.max(...INTERVALS) * 1000 + 5000);
  polling = false;
  await poller;

  const lagOf = (covers: { at: number; file: string; pos: number }[]) => {
    // The first time the tool held the sample's position (0 when it already did).
    const lags = samples.map((s) => covers.find((c) => c.file === s.file && c.pos >= s.pos)?.at).map((t, i) => (t === undefined ? Infinity : Math.max(0, t - samples[i].at)));
    lags.sort((a, b) => a - b);
    return { p50: lags[Math.floor(lags.length / 2)], p95: lags[Math.floor(lags.length * 0.95)], max: lags[lags.length - 1] };
  };
  const rawLag = lagOf(rawSeen.map((r) => ({ at: r.at, file: r.file, pos: r.size })));
  const [file, pos] = (await db.sql("SHOW MASTER STATUS")).split("\t");
  const du = (dir: string): number => (existsSync(dir) ? readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).reduce((n, e) => n + statSync(path.join(e.parentPath, e.name)).size, 0) : 0);

  const { execSync } = await import("node:child_process");
  console.log(`\nMariaDB ${db.port}: ${samples.length} samples over ${LOAD_SECONDS} s, a row every 50 ms; binary log ${file}:${pos}; load: ${execSync("uptime").toString().trim()}\n`);
  console.log("| tool | lag p50 (ms) | lag p95 (ms) | lag max (ms) | p50 / by hand | stored bytes (binlog/) per binlog byte |");
  console.log("| --- | --- | --- | --- | --- | --- |");
  console.log(`| mariadb-binlog --stop-never (by hand, local file) | ${rawLag.p50} | ${rawLag.p95} | ${rawLag.max} | 1 | - |`);
  for (const f of followers) {
    const lag = lagOf(f.reports);
    console.log(`| cairn binlog-archive --follow --interval ${f.interval} | ${lag.p50} | ${lag.p95} | ${lag.max} | ${(lag.p50 / Math.max(1, rawLag.p50)).toFixed(1)} | ${(du(path.join(f.repo, "binlog")) / Number(pos)).toFixed(2)} |`);
  }
} finally {
  for (const c of children) c.kill("SIGTERM");
  await sleep(1000);
  await db.destroy();
  tmp.cleanup();
}

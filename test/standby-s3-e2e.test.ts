import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StandbyView } from "../api/standbys.js";
import { apiClient } from "./api-client.js";
import { CLI, PASSWORD, ROOT } from "./helpers.js";
import { testPolicy, testPolicyEnv } from "./policy-fixtures.js";
import { asPostgres, cairnCommand, initCluster, PG_BIN, pgTempDir, waitFor, type PgCluster } from "./postgres.js";
import { freePort, startMinio } from "./servers.js";
import { startStack, type Stack } from "./stack.js";

const minio = await startMinio();

/** Every regular file under `dir` whose bytes contain `needle`. */
function filesContaining(dir: string, needle: string): string[] {
  const hits: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && readFileSync(p).includes(needle)) hits.push(p);
    }
  };
  walk(dir);
  return hits;
}

/** One raw request on the standby's WAL socket; the whole answer. */
function askSocket(socketPath: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(socketPath, () => s.write(line));
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("error", reject);
    s.on("close", () => resolve(Buffer.concat(chunks).subarray(0, 200).toString("latin1")));
  });
}

/**
 * A warm standby of a plan whose repository is on S3 (MinIO) with credentials stored
 * through the API. The standby's restore_command asks the worker over a Unix socket
 * (`cairn pg wal-fetch --via`); the credentials and the repository password stay in
 * the worker's memory. The worker runs as the postgres user, as next to a database server.
 */
describe("warm standby on a repository with stored credentials (S3)", () => {
  const tmp = pgTempDir("cairn-standby-s3-");
  const dataDir = path.join(tmp.dir, "data");
  const standbyDir = path.join(tmp.dir, "standby");
  const socketDir = `${standbyDir}.cairn-wal`;
  const failoverPaths = { CAIRN_FAILOVER_PATHS: tmp.dir };
  const url = `s3:${minio.endpoint}/cairn-standby-${randomBytes(4).toString("hex")}/repo`;
  let stack: Stack;
  let worker: ChildProcess;
  let workerLog = "";
  let workerExited: Promise<void>;
  const previousKey = process.env.CAIRN_SECRET_KEY;
  let pg: PgCluster;
  let client: ReturnType<typeof apiClient>;
  let planId: string;
  let port: number;

  const standbySql = async (sql: string) => (await asPostgres(path.join(PG_BIN, "psql"), ["-X", "-A", "-t", "-q", "-d", `postgresql://postgres@127.0.0.1:${port}/postgres`, "-c", sql])).stdout.trim();
  const standby = () => client.ok<StandbyView>("GET", `/v1/standbys/${planId}`);
  const switchAndArchive = async () => {
    const last = await pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    await pg.sql("SELECT pg_switch_wal()");
    await waitFor("the last segment to be archived", async () => (await pg.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")) >= last);
    return last;
  };
  const startWorker = () => {
    worker = spawn("runuser", ["-u", "postgres", "--", process.execPath, path.join(ROOT, "dist", "worker.js")], {
      env: { ...process.env, ...stack.env, CAIRN_DATA_DIR: path.join(tmp.dir, "worker-data"), ...testPolicyEnv(tmp.dir), ...failoverPaths, CAIRN_WORKER_CONCURRENCY: "3", CAIRN_THREADS: "1" },
      cwd: tmp.dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    worker.stdout!.on("data", (d: Buffer) => (workerLog = (workerLog + d.toString()).slice(-8000)));
    worker.stderr!.on("data", (d: Buffer) => (workerLog = (workerLog + d.toString()).slice(-8000)));
    workerExited = new Promise((resolve) => worker.once("exit", () => resolve()));
  };
  const stopWorker = async () => {
    if (worker?.pid && worker.exitCode === null && worker.signalCode === null) {
      process.kill(worker.pid, "SIGTERM");
      await Promise.race([workerExited, new Promise((r) => setTimeout(r, 20_000))]);
      if (worker.exitCode === null && worker.signalCode === null) process.kill(worker.pid, "SIGKILL");
    }
  };

  beforeAll(async () => {
    process.env.CAIRN_SECRET_KEY = randomBytes(32).toString("base64");
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir, failoverPaths), dataDir, worker: false });
    startWorker();
    client = apiClient(stack.api);
    const { id: repositoryId } = await client.ok<{ id: string }>("POST", "/v1/repositories", {
      name: "minio",
      url,
      password: PASSWORD,
      credentials: { AWS_ACCESS_KEY_ID: minio.accessKeyId, AWS_SECRET_ACCESS_KEY: minio.secretAccessKey },
    });
    // The primary's own archive_command, as its DBA would set it up: a script outside its data directory
    // (a base backup copies the data directory, and the standby's must hold no credential).
    const passwordFile = path.join(tmp.dir, "password");
    writeFileSync(passwordFile, PASSWORD, { mode: 0o600 });
    const push = path.join(tmp.dir, "wal-push.sh");
    writeFileSync(push, `#!/bin/sh\nexport AWS_ACCESS_KEY_ID='${minio.accessKeyId}' AWS_SECRET_ACCESS_KEY='${minio.secretAccessKey}' AWS_REGION=us-east-1\nexec ${cairnCommand(url, passwordFile)} pg wal-push "$1"\n`, { mode: 0o700 });
    for (const f of [passwordFile, push]) chownSync(f, statSync(tmp.dir).uid, statSync(tmp.dir).gid);
    pg = await initCluster(tmp.dir, { archive_mode: "on", archive_command: `${push} %p` });
    await pg.sql("CREATE TABLE markers (note text); INSERT INTO markers VALUES ('base')");
    ({ id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", { name: "cluster", repositoryId, source: { type: "postgres", mode: "physical", url: pg.url } }));
    const { jobId } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    expect(await client.pollJob(jobId, (j) => j.status !== "running"), workerLog).toMatchObject({ status: "completed" });
    port = await freePort();
  }, 300_000);

  afterAll(async () => {
    if (existsSync(path.join(standbyDir, "postmaster.pid"))) await asPostgres(path.join(PG_BIN, "pg_ctl"), ["-D", standbyDir, "-m", "immediate", "-w", "stop"]);
    await stack?.close();
    await stopWorker();
    await pg?.destroy();
    await minio.stop();
    if (previousKey === undefined) delete process.env.CAIRN_SECRET_KEY;
    else process.env.CAIRN_SECRET_KEY = previousKey;
    tmp.cleanup();
  });

  it("replays WAL archived after it started, with no credential in its data directory, its configuration or its server's environment", async () => {
    await client.ok("POST", "/v1/standbys", { planId, dataDir: standbyDir, port, pollSeconds: 1 });
    await waitFor("the standby to replay", async () => {
      const s = await standby();
      if (s.phase === "stopped") throw new Error(`the standby ended: ${JSON.stringify(s)}\n${workerLog}`);
      return s.phase === "replaying";
    }, 240_000);

    await pg.sql("INSERT INTO markers VALUES ('after-standby')");
    await switchAndArchive();
    await waitFor("the standby to replay the new row", async () => (await standbySql("SELECT string_agg(note, ',' ORDER BY note) FROM markers")) === "after-standby,base", 120_000);

    const auto = readFileSync(path.join(standbyDir, "postgresql.auto.conf"), "utf8");
    expect(auto).toContain(`pg wal-fetch --via "${socketDir}/wal.sock" %f "%p"`);
    expect(auto).not.toContain(minio.endpoint);
    for (const secret of [minio.secretAccessKey, PASSWORD]) {
      expect(filesContaining(standbyDir, secret), secret).toEqual([]);
      expect(filesContaining(socketDir, secret), secret).toEqual([]);
    }
    const postmaster = Number(readFileSync(path.join(standbyDir, "postmaster.pid"), "utf8").split("\n")[0]);
    expect(readFileSync(`/proc/${postmaster}/environ`, "latin1")).not.toContain(minio.secretAccessKey);
    expect(readFileSync(`/proc/${postmaster}/cmdline`, "latin1")).not.toContain(minio.secretAccessKey);

    // The socket's directory is the server user's alone.
    const dir = statSync(socketDir);
    expect(dir.mode & 0o777).toBe(0o700);
    expect(dir.uid).toBe(statSync(standbyDir).uid);
    expect(readdirSync(socketDir).sort()).toEqual(["token", "wal.sock"]);
  });

  it("refuses a wrong token on the socket, and names other than WAL files with the right one", async () => {
    const socket = path.join(socketDir, "wal.sock");
    const token = readFileSync(path.join(socketDir, "token"), "utf8").trim();
    const segment = await pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn() - 16*1024*1024)");
    const wrong = randomBytes(32).toString("hex");
    expect(await askSocket(socket, `CAIRN-WAL 1 ${wrong} ${segment}\n`)).toBe("DENIED\n");
    expect(await askSocket(socket, `CAIRN-WAL 1 ${token} ../../token\n`)).toMatch(/^REFUSED /);
    expect(await askSocket(socket, `CAIRN-WAL 1 ${token} ${segment}\n`)).toMatch(/^OK \d+ [0-9a-f]{64}\n/);
  });

  it("waits while no worker serves its WAL, and catches up when one is back", async () => {
    const pid = Number(readFileSync(path.join(standbyDir, "postmaster.pid"), "utf8").split("\n")[0]);
    await stopWorker();
    await pg.sql("INSERT INTO markers VALUES ('without-worker')");
    const archived = await switchAndArchive();
    // What restore_command meets now: exit 1 (PostgreSQL asks again later), saying why.
    const fetch = await asPostgres(process.execPath, [CLI, "pg", "wal-fetch", "--via", path.join(socketDir, "wal.sock"), archived, path.join(tmp.dir, "fetched")]);
    expect(fetch.code, fetch.stderr).toBe(1);
    expect(fetch.stderr).toContain("no worker serves WAL");
    expect(await standbySql("SELECT count(*) FROM markers")).toBe("2");
    startWorker();
    await waitFor("the standby to replay once the worker is back", async () => (await standbySql("SELECT count(*) FROM markers")) === "3", 240_000);
    expect(Number(readFileSync(path.join(standbyDir, "postmaster.pid"), "utf8").split("\n")[0])).toBe(pid);
  });

  it("stops on DELETE and removes the socket's directory", async () => {
    await client.ok("DELETE", `/v1/standbys/${planId}`);
    await waitFor("the standby to stop", async () => (await standby()).phase === "stopped", 120_000);
    expect(existsSync(socketDir)).toBe(false);
    expect(existsSync(path.join(standbyDir, "PG_VERSION"))).toBe(true);
  });

  it("fails over to it: the promote step serves the WAL it still lacks, from the S3 archive, before it ends recovery", async () => {
    // The stopped standby, started by hand: no standby workflow serves its socket, so it waits for WAL.
    const settings = `-c port=${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c archive_mode=off -c hot_standby=on`;
    const pidFile = path.join(standbyDir, "postmaster.pid");
    expect(existsSync(pidFile), `${JSON.stringify(await standby())}\n${existsSync(pidFile) ? readFileSync(pidFile, "utf8") : ""}\n${readFileSync(path.join(standbyDir, "cairn_recovery.log"), "utf8").slice(-3000)}`).toBe(false);
    const started = await asPostgres(path.join(PG_BIN, "pg_ctl"), ["-D", standbyDir, "-l", path.join(tmp.dir, "standby.log"), "-o", settings, "-w", "-t", "120", "start"]);
    expect(started.code, started.stderr + (existsSync(path.join(tmp.dir, "standby.log")) ? readFileSync(path.join(tmp.dir, "standby.log"), "utf8") : "")).toBe(0);
    await pg.sql("INSERT INTO markers VALUES ('before-failover')");
    await switchAndArchive();
    expect(await standbySql("SELECT count(*) FROM markers")).toBe("3");

    const { id } = await client.ok<{ id: string }>("POST", "/v1/failovers", { planId, standby: { dataDir: standbyDir, port }, fence: { dataDir: pg.pgdata }, reason: "primary lost" });
    let done: { status: string; error: string | null } | undefined;
    await waitFor(`failover ${id}`, async () => {
      done = await client.ok<{ status: string; error: string | null }>("GET", `/v1/failovers/${id}`);
      return done.status !== "running";
    }, 300_000);
    expect(done!.status, `${JSON.stringify(done)}\n${workerLog}`).toBe("completed");
    expect(await standbySql("SELECT pg_is_in_recovery()")).toBe("f");
    expect(await standbySql("SELECT string_agg(note, ',' ORDER BY note) FROM markers")).toBe("after-standby,base,before-failover,without-worker");
    // Served while promoting only: the token is gone with the step.
    expect(existsSync(path.join(socketDir, "token"))).toBe(false);
    expect(filesContaining(standbyDir, minio.secretAccessKey)).toEqual([]);
  });
});

import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import type { Client } from "@temporalio/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiClient } from "./api-client.js";
import { PASSWORD, ROOT } from "./helpers.js";
import { testPolicy, testPolicyEnv } from "./policy-fixtures.js";
import { PG_BIN, archiveEverything, asPostgres, cairnCommand, cairnPgOk, initCluster, pgTempDir, type PgCluster } from "./postgres.js";
import { freePort } from "./servers.js";
import { BACKUP_PASSWORD, checksums, initMariaDb, type MariaDb } from "./mysql.js";
import { startStack, type Stack } from "./stack.js";

/**
 * PostgreSQL plans driven through the API as a user would: a real HTTP server, a
 * Temporal dev server, a worker process, and a cluster initdb'd for the test. The
 * worker runs as the postgres user, as it would next to a database server: the
 * cluster's archive_command (also postgres) pushes WAL into the same repository,
 * and the recovered server runs as the user that owns its data directory.
 */
describe("PostgreSQL plans through the API (Temporal dev server + worker + initdb'd cluster)", () => {
  const tmp = pgTempDir("cairn-pg-api-");
  const dataDir = path.join(tmp.dir, "data");
  const repo = path.join(tmp.dir, "repo");
  const passwordFile = path.join(tmp.dir, "password");
  const dbPassword = "s3cret-db-pass-5f1e";
  let stack: Stack;
  let worker: ChildProcess;
  let workerLog = "";
  let workerExited: Promise<void>;
  const secretKey = randomBytes(32).toString("base64");
  const previousKey = process.env.CAIRN_SECRET_KEY;
  let client: Client;
  let pg: PgCluster;
  let maria: MariaDb | undefined;
  let repositoryId: string;
  let call: ReturnType<typeof apiClient>["call"];
  let ok: ReturnType<typeof apiClient>["ok"];
  let pollJob: ReturnType<typeof apiClient>["pollJob"];

  beforeAll(async () => {
    writeFileSync(passwordFile, PASSWORD);
    await cairnPgOk(["-r", repo, "--password-file", passwordFile, "init"]);
    pg = await initCluster(tmp.dir, { archive_mode: "on", archive_command: `${cairnCommand(repo, passwordFile)} pg wal-push %p` });
    // One user signs in with a password, as a production server would ask.
    await pg.sql(`CREATE ROLE dumper LOGIN SUPERUSER PASSWORD '${dbPassword}'`);
    await pg.sql("CREATE DATABASE shop");
    await pg.sql("CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1000) g", "shop");
    writeFileSync(path.join(pg.pgdata, "pg_hba.conf"), "host all dumper 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\nlocal all all trust\n");
    await pg.sql("SELECT pg_reload_conf()");

    // The API (this process) and the worker share the platform secret key through the environment.
    process.env.CAIRN_SECRET_KEY = secretKey;
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, worker: false });
    worker = spawn("runuser", ["-u", "postgres", "--", process.execPath, path.join(ROOT, "dist", "worker.js")], {
      env: { ...process.env, ...stack.env, CAIRN_DATA_DIR: path.join(tmp.dir, "worker-data"), ...testPolicyEnv(tmp.dir), CAIRN_WORKER_CONCURRENCY: "2", CAIRN_THREADS: "1" },
      cwd: tmp.dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    worker.stdout!.on("data", (d: Buffer) => (workerLog = (workerLog + d.toString()).slice(-8000)));
    worker.stderr!.on("data", (d: Buffer) => (workerLog = (workerLog + d.toString()).slice(-8000)));
    workerExited = new Promise((resolve) => worker.once("exit", () => resolve()));
    ({ call, ok, pollJob } = apiClient(stack.api));
    client = stack.client;
    ({ id: repositoryId } = await ok<{ id: string }>("POST", "/v1/repositories", { name: "pg", url: repo, password: PASSWORD }));
  }, 180_000);

  afterAll(async () => {
    if (worker?.pid && worker.exitCode === null && worker.signalCode === null) {
      process.kill(worker.pid, "SIGTERM");
      await Promise.race([workerExited, new Promise((r) => setTimeout(r, 20_000))]);
      if (worker.exitCode === null && worker.signalCode === null) process.kill(worker.pid, "SIGKILL");
    }
    await stack?.close();
    await pg?.destroy();
    await maria?.destroy();
    if (previousKey === undefined) delete process.env.CAIRN_SECRET_KEY;
    else process.env.CAIRN_SECRET_KEY = previousKey;
    tmp.cleanup();
  });

  const dbUrl = (user: string, db = "postgres") => `postgresql://${user}@127.0.0.1:${pg.port}/${db}`;

  it("backs up a logical plan whose password is sealed: never shown, never in the workflow history", async () => {
    const { id: planId } = await ok<{ id: string }>("POST", "/v1/plans", {
      name: "shop-logical",
      repositoryId,
      source: { type: "postgres", mode: "logical", url: dbUrl("dumper"), password: dbPassword, databases: ["shop"] },
    });
    const plan = await ok<{ source: Record<string, unknown> }>("GET", `/v1/plans/${planId}`);
    expect(plan.source).toEqual({ type: "postgres", mode: "logical", url: dbUrl("dumper"), databases: ["shop"], passwordStored: true });
    expect(JSON.stringify(plan)).not.toContain(dbPassword);

    const { jobId } = await ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    const job = await pollJob(jobId, (j) => j.status !== "running");
    expect(job, JSON.stringify(job) + workerLog).toMatchObject({ status: "completed", kind: "backup", planId });
    const history = JSON.stringify(await client.workflow.getHandle(jobId).fetchHistory());
    expect(history).not.toContain(dbPassword);
    expect(history).not.toContain(Buffer.from(dbPassword).toString("base64"));

    // The dump is a real one: the CLI restores it into a new database with every row.
    await cairnPgOk(["-r", repo, "--password-file", passwordFile, "pg", "restore-logical", job.snapshotId!, "--url", pg.url, "--database", "shop", "--into", "shop_copy"]);
    expect(await pg.sql("SELECT count(*), sum(id) FROM items", "shop_copy")).toBe("1000|500500");

    // The same through the API: a new database, then refused into one that exists (nothing dropped without clean).
    const restore = await ok<{ jobId: string }>("POST", "/v1/restores/logical", { planId, snapshotId: "latest", database: "shop", into: "shop_api" });
    const restored = await pollJob(restore.jobId, (j) => j.status !== "running");
    expect(restored, JSON.stringify(restored) + workerLog).toMatchObject({ kind: "restore", status: "completed", result: { database: "shop", into: "shop_api", created: true } });
    expect(await pg.sql("SELECT count(*), sum(id) FROM items", "shop_api")).toBe("1000|500500");
    await pg.sql("DELETE FROM items WHERE id > 10", "shop_api");
    const again = await ok<{ jobId: string }>("POST", "/v1/restores/logical", { planId, snapshotId: "latest", database: "shop", into: "shop_api" });
    const refused = await pollJob(again.jobId, (j) => j.status !== "running");
    expect(refused.status).toBe("failed");
    expect(refused.error).toContain('database "shop_api" exists');
    expect(await pg.sql("SELECT count(*) FROM items", "shop_api")).toBe("10");
  });

  it("fails a run with a wrong database password at once, saying what to check", async () => {
    const { id: planId } = await ok<{ id: string }>("POST", "/v1/plans", {
      name: "shop-wrong-password",
      repositoryId,
      source: { type: "postgres", mode: "logical", url: dbUrl("dumper"), password: "not-the-password", databases: ["shop"] },
    });
    const { jobId } = await ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    const job = await pollJob(jobId, (j) => j.status !== "running");
    expect(job.status).toBe("failed");
    expect(job.error).toContain("password authentication failed");
    expect(job.error).toContain("check the user and password");
  });

  it("refuses a database host the execution policy refuses, and a password in the URL", async () => {
    const metadata = await call("POST", "/v1/plans", { name: "meta", repositoryId, source: { type: "postgres", mode: "physical", url: "postgresql://postgres@169.254.169.254:5432/postgres" } });
    expect(metadata.status).toBe(403);
    expect(JSON.stringify(metadata.body)).toContain("metadata");
    const inUrl = await call("POST", "/v1/plans", { name: "in-url", repositoryId, source: { type: "postgres", mode: "logical", url: `postgresql://dumper:${dbPassword}@127.0.0.1:${pg.port}/shop` } });
    expect(inUrl.status).toBe(400);
    expect(JSON.stringify(inUrl.body)).toContain("password field");
    expect(JSON.stringify(inUrl.body)).not.toContain(dbPassword);
    const socket = await call("POST", "/v1/plans", { name: "socket", repositoryId, source: { type: "postgres", mode: "logical", url: "postgresql://postgres@127.0.0.1/shop?host=/var/run/postgresql" } });
    expect(socket.status).toBe(400);
    expect((socket.body as { detail: string }).detail).toContain('parameter "host" is not accepted');
  });

  let physicalPlanId: string;
  let baseBackupId: string;

  it("takes a physical base backup through a plan", async () => {
    await pg.sql("CREATE TABLE markers (note text)");
    await pg.sql("INSERT INTO markers VALUES ('base')");
    ({ id: physicalPlanId } = await ok<{ id: string }>("POST", "/v1/plans", { name: "cluster", repositoryId, source: { type: "postgres", mode: "physical", url: dbUrl("postgres") } }));
    const { jobId } = await ok<{ jobId: string }>("POST", `/v1/plans/${physicalPlanId}/run`);
    const job = await pollJob(jobId, (j) => j.status !== "running");
    expect(job, JSON.stringify(job) + workerLog).toMatchObject({ status: "completed", kind: "backup", planId: physicalPlanId });
    baseBackupId = job.snapshotId!;
    const check = JSON.parse((await cairnPgOk(["-r", repo, "--password-file", passwordFile, "--json", "pg", "check"])).stdout);
    expect(check.clusters[0].backups.map((b: { id: string }) => b.id)).toContain(baseBackupId);
  });

  it("recovers to a time between two marker commits through POST /v1/recoveries, verified and promoted", async () => {
    const mark = (note: string) => pg.sql(`INSERT INTO markers VALUES ('${note}')`);
    const pause = () => new Promise((res) => setTimeout(res, 150));
    await mark("time-before");
    await pause();
    const time = await pg.sql("SELECT to_json(clock_timestamp()) #>> '{}'");
    await pause();
    await mark("time-after");
    await archiveEverything(pg, 60_000);

    const window = await ok<{ baseBackups: number; earliest: { snapshotId: string; time: string }; latest: { time: string; lsn: string } }>("GET", `/v1/plans/${physicalPlanId}/recovery-window`);
    expect(window.baseBackups).toBe(1);
    expect(window.earliest.snapshotId).toBe(baseBackupId);
    expect(window.latest.time > time).toBe(true);

    const dataDir = path.join(tmp.dir, "recovered");
    const port = await freePort();
    const { jobId } = await ok<{ jobId: string }>("POST", "/v1/recoveries", {
      planId: physicalPlanId,
      target: { time },
      into: { dataDir, port },
      verify: { sql: ["SELECT string_agg(note, ',' ORDER BY note) FROM markers"] },
    });
    expect(jobId).toMatch(new RegExp(`^recovery-${physicalPlanId}-`));
    const job = await pollJob(jobId, (j) => j.status !== "running");
    expect(job, JSON.stringify(job) + workerLog).toMatchObject({ kind: "recovery", status: "completed", phase: "done", planId: physicalPlanId });
    const result = job.result as { lsn: string; timeline: number; baseBackup: { snapshotId: string }; secondsToAcceptingConnections: number; verified: { rows: string[] }[] };
    expect(result.baseBackup.snapshotId).toBe(baseBackupId);
    expect(result.timeline).toBe(2);
    expect(result.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(result.secondsToAcceptingConnections).toBeGreaterThan(0);
    // Verified while paused at the target: the row before is there, the row after is not.
    expect(result.verified[0].rows).toEqual(["base,time-before"]);

    const recovered = (sql: string) => asPostgres(path.join(PG_BIN, "psql"), ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", `postgresql://postgres@127.0.0.1:${port}/postgres`, "-c", sql]);
    try {
      const notes = (await recovered("SELECT note FROM markers")).stdout.trim().split("\n");
      expect(notes).toContain("time-before");
      expect(notes).not.toContain("time-after");
      // Promoted: it takes writes.
      expect((await recovered("INSERT INTO markers VALUES ('after-recovery') RETURNING note")).stdout.trim()).toBe("after-recovery");
    } finally {
      await asPostgres(path.join(PG_BIN, "pg_ctl"), ["-D", dataDir, "-m", "fast", "-w", "stop"]);
    }
  });

  it("refuses a recovery into a running cluster's directory, outside the restore roots, or of a logical plan", async () => {
    const port = await freePort();
    const running = await ok<{ jobId: string }>("POST", "/v1/recoveries", { planId: physicalPlanId, target: { latest: true }, into: { dataDir: pg.pgdata, port } });
    const failed = await pollJob(running.jobId, (j) => j.status !== "running");
    expect(failed.status).toBe("failed");
    expect(failed.error).toContain("running");

    const outside = await call("POST", "/v1/recoveries", { planId: physicalPlanId, target: { latest: true }, into: { dataDir: "/var/lib/postgresql/elsewhere", port } });
    expect(outside.status).toBe(403);
    expect(JSON.stringify(outside.body)).toContain("into.dataDir");

    const { plans } = await ok<{ plans: { id: string; name: string }[] }>("GET", "/v1/plans");
    const logical = plans.find((p) => p.name === "shop-logical")!;
    const wrongKind = await call("POST", "/v1/recoveries", { planId: logical.id, target: { latest: true }, into: { dataDir: path.join(tmp.dir, "never"), port } });
    expect(wrongKind.status).toBe(409);
    expect((wrongKind.body as { detail: string }).detail).toContain('"mode": "physical"');
  });

  it("backs up a logical MariaDB plan with a sealed password; the dump restores with identical checksums, and bad input is refused", async () => {
    maria = await initMariaDb(tmp.dir);
    await maria.sql("CREATE DATABASE shop");
    await maria.sql("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50)); INSERT INTO items SELECT seq, CONCAT('item ', seq) FROM seq_1_to_1000", "shop");
    const { id: planId } = await ok<{ id: string }>("POST", "/v1/plans", {
      name: "maria-logical",
      repositoryId,
      source: { type: "mysql", mode: "logical", url: maria.url, password: BACKUP_PASSWORD, databases: ["shop"] },
    });
    const plan = await ok<{ source: Record<string, unknown> }>("GET", `/v1/plans/${planId}`);
    expect(plan.source).toEqual({ type: "mysql", mode: "logical", url: maria.url, databases: ["shop"], passwordStored: true });
    expect(JSON.stringify(plan)).not.toContain(BACKUP_PASSWORD);

    const { jobId } = await ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    const job = await pollJob(jobId, (j) => j.status !== "running");
    expect(job, JSON.stringify(job) + workerLog).toMatchObject({ status: "completed", kind: "backup", planId });
    expect(JSON.stringify(await client.workflow.getHandle(jobId).fetchHistory())).not.toContain(BACKUP_PASSWORD);
    await cairnPgOk(["-r", repo, "--password-file", passwordFile, "mysql", "restore", job.snapshotId!, "--url", maria.url, "--database", "shop", "--into", "shop_copy"], { MYSQL_PWD: BACKUP_PASSWORD });
    expect(await checksums(maria, "shop_copy", ["items"])).toEqual(await checksums(maria, "shop", ["items"]));

    const { id: wrongId } = await ok<{ id: string }>("POST", "/v1/plans", { name: "maria-wrong", repositoryId, source: { type: "mysql", mode: "logical", url: maria.url, password: "not-the-password" } });
    const wrong = await pollJob((await ok<{ jobId: string }>("POST", `/v1/plans/${wrongId}/run`)).jobId, (j) => j.status !== "running");
    expect(wrong.status).toBe("failed");
    expect(wrong.error).toContain("Access denied");
    expect(wrong.error).toContain("check the user and password");

    const metadata = await call("POST", "/v1/plans", { name: "maria-meta", repositoryId, source: { type: "mysql", mode: "physical", url: "mysql://root@169.254.169.254:3306" } });
    expect(metadata.status).toBe(403);
    const inUrl = await call("POST", "/v1/plans", { name: "maria-in-url", repositoryId, source: { type: "mysql", mode: "logical", url: `mysql://cairn_backup:${encodeURIComponent(BACKUP_PASSWORD)}@127.0.0.1:${maria.port}` } });
    expect(inUrl.status).toBe(400);
    expect(JSON.stringify(inUrl.body)).toContain("password field");
  }, 180_000);
});

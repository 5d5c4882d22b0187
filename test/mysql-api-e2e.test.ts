import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiClient, type Job } from "./api-client.js";
import { PASSWORD } from "./helpers.js";
import { APP_TABLES, BACKUP_PASSWORD, checksums, createAppDatabase, initMariaDb, markTarget, mysqlTempDir, type MariaDb } from "./mysql.js";
import { testPolicy } from "./policy-fixtures.js";
import { freePort } from "./servers.js";
import { startStack, type Stack } from "./stack.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const run = promisify(execFile);

/**
 * MySQL / MariaDB plans driven through the API as a user would: the run's Temporal
 * dev server, a worker and the API (test/stack.ts), and throwaway MariaDB servers
 * (test/mysql.ts). A physical plan backs up and archives binary logs at each run;
 * the API recovers it to a time between two marker rows into a new data directory
 * and starts a server there; a logical plan's table is restored into an existing
 * database without touching its other tables.
 */
describe("MySQL / MariaDB plans through the API (Temporal + worker + mariadb-install-db servers)", () => {
  const tmp = mysqlTempDir("cairn-mysql-api-");
  const dataDir = path.join(tmp.dir, "data");
  const repo = path.join(tmp.dir, "repo");
  const tables = APP_TABLES;
  let stack: Stack;
  let db: MariaDb;
  let repositoryId: string;
  let call: ReturnType<typeof apiClient>["call"];
  let ok: ReturnType<typeof apiClient>["ok"];
  let pollJob: ReturnType<typeof apiClient>["pollJob"];
  const recoveredPids: number[] = [];

  /** Waits (up to 10 minutes: a physical backup on a busy machine is slow) until the job is no longer running. */
  const finished = async (jobId: string): Promise<Job> => {
    const deadline = Date.now() + 600_000;
    for (;;) {
      try {
        return await pollJob(jobId, (j) => j.status !== "running");
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
    }
  };

  /** SQL as root over the recovered server's own socket (inside its data directory). */
  const recovered = async (dir: string, sql: string): Promise<string> =>
    (await run("mariadb", ["--no-defaults", `--socket=${path.join(dir, "cairn-recovered.sock")}`, "--user=root", "--batch", "--skip-column-names", "-e", sql])).stdout.trim();

  beforeAll(async () => {
    db = await initMariaDb(tmp.dir);
    await createAppDatabase(db, 5000);
    await db.sql(
      `CREATE DATABASE shop; USE shop;
       CREATE TABLE orders (id INT PRIMARY KEY, total DECIMAL(10,2)) ENGINE=InnoDB;
       INSERT INTO orders SELECT seq, seq * 1.25 FROM seq_1_to_2000;
       CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50)) ENGINE=InnoDB;
       INSERT INTO customers SELECT seq, CONCAT('customer ', seq) FROM seq_1_to_300;
       CREATE DATABASE reports; USE reports;
       CREATE TABLE keep_me (id INT PRIMARY KEY) ENGINE=InnoDB;
       INSERT INTO keep_me SELECT seq FROM seq_1_to_42;`,
    );
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir });
    ({ call, ok, pollJob } = apiClient(stack.api));
    ({ id: repositoryId } = await ok<{ id: string }>("POST", "/v1/repositories", { name: "maria", url: repo, password: PASSWORD }));
  }, 240_000);

  afterAll(async () => {
    for (const pid of recoveredPids) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        // already stopped
      }
    }
    await stack?.close();
    await db?.destroy();
    tmp.cleanup();
  });

  let physicalPlanId = "";
  let firstBackup = "";
  let target = "";
  let position = "";
  let atTarget: Record<string, string> = {};

  it("backs up a physical plan and archives the binary logs at each run, so the recovery window reaches the last run", async () => {
    ({ id: physicalPlanId } = await ok<{ id: string }>("POST", "/v1/plans", {
      name: "maria-physical",
      repositoryId,
      source: { type: "mysql", mode: "physical", url: db.url, password: BACKUP_PASSWORD, binlogs: true },
    }));
    const plan = await ok<{ source: Record<string, unknown> }>("GET", `/v1/plans/${physicalPlanId}`);
    expect(plan.source).toEqual({ type: "mysql", mode: "physical", url: db.url, binlogs: true, passwordStored: true });

    const first = await finished((await ok<{ jobId: string }>("POST", `/v1/plans/${physicalPlanId}/run`)).jobId);
    expect(first, JSON.stringify(first)).toMatchObject({ status: "completed", kind: "backup", result: { binlogs: ["binlog.000001"] } });
    firstBackup = first.snapshotId!;

    // After the backup: changes, a first marker, the target time, a second marker and more changes.
    ({ position, target, atTarget } = await markTarget(db, 4500));

    // The second run's backup ends after the target; its archive holds the log with both markers.
    const second = await finished((await ok<{ jobId: string }>("POST", `/v1/plans/${physicalPlanId}/run`)).jobId);
    expect(second, JSON.stringify(second)).toMatchObject({ status: "completed", result: { binlogs: ["binlog.000002"] } });

    const window = await ok<{ server: string; physicalBackups: number; archivedBinlogs: number; earliest: { snapshotId: string; time: string; binlogFile: string }; latest: { time: string; binlogFile: string } }>(
      "GET",
      `/v1/plans/${physicalPlanId}/recovery-window`,
    );
    expect(window).toMatchObject({ server: expect.stringMatching(new RegExp(`:${db.port}$`)), physicalBackups: 2, archivedBinlogs: 2, earliest: { snapshotId: firstBackup, binlogFile: "binlog.000001" }, latest: { binlogFile: "binlog.000002" } });
    expect(window.earliest.time < target && window.latest.time > target).toBe(true);
  }, 900_000);

  it("recovers to a time between two marker rows through POST /v1/recoveries/mysql: the earlier marker there, the later absent, checksums as at that time", async () => {
    const dir = path.join(tmp.dir, "recovered");
    const port = await freePort();
    const { jobId } = await ok<{ jobId: string }>("POST", "/v1/recoveries/mysql", {
      planId: physicalPlanId,
      target: { time: target },
      into: { dataDir: dir, port },
      verify: { sql: ["SELECT GROUP_CONCAT(name ORDER BY name) FROM app.markers"] },
    });
    expect(jobId).toMatch(new RegExp(`^recovery-${physicalPlanId}-`));
    const job = await finished(jobId);
    expect(job, JSON.stringify(job)).toMatchObject({ kind: "recovery", status: "completed", phase: "done", planId: physicalPlanId });
    const result = job.result as { pid: number; backup: { snapshotId: string }; binlogsReplayed: string[]; verified: { rows: string[] }[]; port: number; dataDir: string };
    recoveredPids.push(result.pid);
    expect(result).toMatchObject({ backup: { snapshotId: firstBackup }, binlogsReplayed: ["binlog.000001", "binlog.000002"], port, dataDir: dir });
    expect(result.verified[0].rows).toEqual(["before"]);

    expect(await recovered(dir, "SELECT name FROM app.markers ORDER BY name")).toBe("before");
    const sums: Record<string, string> = {};
    for (const t of tables) sums[t] = (await recovered(dir, `CHECKSUM TABLE app.${t}`)).split("\t")[1];
    expect(sums).toEqual(atTarget);
    // It listens on the port asked for, and the plan's user signs in there with its password.
    const viaTcp = await run("mariadb", ["--no-defaults", "--protocol=tcp", "--host=127.0.0.1", `--port=${port}`, "--user=cairn_backup", `--password=${BACKUP_PASSWORD}`, "--batch", "--skip-column-names", "-e", "SELECT COUNT(*) FROM app.items"]);
    expect(viaTcp.stdout.trim()).toBe("4500");

    process.kill(result.pid, "SIGTERM");
    for (let i = 0; i < 300; i++) {
      try {
        process.kill(result.pid, 0);
      } catch {
        break;
      }
      await sleep(200);
    }
  }, 900_000);

  it("recovers to a binary log position through the API, and refuses a directory that is not empty", async () => {
    const dir = path.join(tmp.dir, "recovered-position");
    const port = await freePort();
    const job = await finished((await ok<{ jobId: string }>("POST", "/v1/recoveries/mysql", { planId: physicalPlanId, target: { position }, into: { dataDir: dir, port } })).jobId);
    expect(job, JSON.stringify(job)).toMatchObject({ kind: "recovery", status: "completed" });
    const result = job.result as { pid: number; binlogsReplayed: string[] };
    recoveredPids.push(result.pid);
    expect(result.binlogsReplayed).toEqual(["binlog.000001", "binlog.000002"]);
    expect(await recovered(dir, "SELECT name FROM app.markers ORDER BY name")).toBe("before");
    process.kill(result.pid, "SIGTERM");

    const busy = await finished((await ok<{ jobId: string }>("POST", "/v1/recoveries/mysql", { planId: physicalPlanId, target: { latest: true }, into: { dataDir: dir, port: await freePort() } })).jobId);
    expect(busy.status).toBe("failed");
    expect(busy.error).toContain("is not empty");
  }, 900_000);

  it("refuses a data directory outside the restore roots, a time before the oldest backup, and a plan of another kind, before any job starts", async () => {
    const port = await freePort();
    const outside = await call<{ detail: string; errors?: { path: string }[] }>("POST", "/v1/recoveries/mysql", { planId: physicalPlanId, target: { latest: true }, into: { dataDir: "/var/lib/mysql-elsewhere", port } });
    expect(outside.status).toBe(403);
    expect(JSON.stringify(outside.body)).toContain("into.dataDir");

    const early = await call<{ detail: string }>("POST", "/v1/recoveries/mysql", { planId: physicalPlanId, target: { time: "2020-01-01T00:00:00Z" }, into: { dataDir: path.join(tmp.dir, "never"), port } });
    expect(early.status).toBe(409);
    expect(early.body.detail).toContain("before the end of plan maria-physical's oldest physical backup");

    const late = await call<{ detail: string }>("POST", "/v1/recoveries/mysql", { planId: physicalPlanId, target: { time: "2999-01-01T00:00:00Z" }, into: { dataDir: path.join(tmp.dir, "never"), port } });
    expect(late.status).toBe(409);
    expect(late.body.detail).toContain("after the last archived binary log");

    const badPosition = await call<{ detail: string }>("POST", "/v1/recoveries/mysql", { planId: physicalPlanId, target: { position: "binlog 12" }, into: { dataDir: path.join(tmp.dir, "never"), port } });
    expect(badPosition.status).toBe(400);
    expect(JSON.stringify(badPosition.body)).toContain("FILE:OFFSET");

    const pg = await call<{ detail: string }>("POST", "/v1/recoveries", { planId: physicalPlanId, target: { latest: true }, into: { dataDir: path.join(tmp.dir, "never"), port } });
    expect(pg.status).toBe(409);
    expect(pg.body.detail).toContain("POST /v1/recoveries/mysql");

    const notLogical = await call<{ detail: string }>("POST", "/v1/restores/mysql", { planId: physicalPlanId, snapshotId: "latest", database: "app" });
    expect(notLogical.status).toBe(409);
    expect(notLogical.body.detail).toContain('"mode": "logical"');
  }, 120_000);

  it("restores one table of a logical plan's dump into an existing database, leaving its other tables; previews first; refuses a table that exists without clean", async () => {
    const { id: planId } = await ok<{ id: string }>("POST", "/v1/plans", { name: "maria-logical", repositoryId, source: { type: "mysql", mode: "logical", url: db.url, password: BACKUP_PASSWORD, databases: ["shop"] } });
    const backup = await finished((await ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`)).jobId);
    expect(backup, JSON.stringify(backup)).toMatchObject({ status: "completed", kind: "backup" });
    const source = await checksums(db, "shop", ["orders"]);

    const preview = await ok<Record<string, unknown>>("POST", "/v1/restores/mysql", { planId, snapshotId: "latest", database: "shop", into: "reports", tables: ["orders"], preview: true });
    const noWindow = await call<{ detail: string }>("GET", `/v1/plans/${planId}/recovery-window`);
    expect(noWindow.status).toBe(409);
    expect(noWindow.body.detail).toContain('{"type": "mysql", "mode": "physical"}');

    expect(preview).toEqual({ snapshotId: backup.snapshotId, snapshotTime: expect.any(String), database: "shop", into: "reports", tables: ["orders"], intoExists: true, existing: [], drops: [] });
    expect(await db.sql("SHOW TABLES", "reports")).toBe("keep_me");

    const { jobId } = await ok<{ jobId: string }>("POST", "/v1/restores/mysql", { planId, snapshotId: "latest", database: "shop", into: "reports", tables: ["orders"] });
    const restored = await finished(jobId);
    expect(restored, JSON.stringify(restored)).toMatchObject({ kind: "restore", status: "completed", result: { database: "shop", into: "reports", created: false, tables: ["orders"] } });
    expect(await db.sql("SHOW TABLES", "reports")).toBe("keep_me\norders");
    expect(await checksums(db, "reports", ["orders"])).toEqual(source);
    expect(await db.sql("SELECT COUNT(*) FROM keep_me", "reports")).toBe("42");

    // Again: the table exists now; the preview says so and what clean would drop, the restore is refused and changes nothing.
    await db.sql("DELETE FROM orders WHERE id > 10", "reports");
    const again = await ok<{ existing: string[]; refusal: string }>("POST", "/v1/restores/mysql", { planId, snapshotId: "latest", database: "shop", into: "reports", tables: ["orders"], preview: true });
    expect(again.existing).toEqual(["orders"]);
    expect(again.refusal).toContain('nothing is dropped without "clean": true');
    const cleanPreview = await ok<{ drops: string[]; refusal?: string }>("POST", "/v1/restores/mysql", { planId, snapshotId: "latest", database: "shop", into: "reports", tables: ["orders"], clean: true, preview: true });
    expect(cleanPreview).toMatchObject({ drops: ["TABLE `orders`"] });
    expect(cleanPreview.refusal).toBeUndefined();
    const refused = await finished((await ok<{ jobId: string }>("POST", "/v1/restores/mysql", { planId, snapshotId: "latest", database: "shop", into: "reports", tables: ["orders"] })).jobId);
    expect(refused.status).toBe("failed");
    expect(refused.error).toContain("table orders exists");
    expect(await db.sql("SELECT COUNT(*) FROM orders", "reports")).toBe("10");

    const missing = await call<{ detail: string }>("POST", "/v1/restores/mysql", { planId, snapshotId: "latest", database: "shop", tables: ["nope"], preview: true });
    expect(missing.status).toBe(400);
    expect(missing.body.detail).toContain("has no table nope");
  }, 600_000);
});

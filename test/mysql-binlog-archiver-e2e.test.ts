import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BinlogArchiverView } from "../api/binlog-archivers.js";
import { apiClient, type Job } from "./api-client.js";
import { PASSWORD } from "./helpers.js";
import { BACKUP_PASSWORD, createAppDatabase, initMariaDb, markTarget, mysqlTempDir, serverAt, type MariaDb } from "./mysql.js";
import { testPolicy } from "./policy-fixtures.js";
import { freePort } from "./servers.js";
import { startStack, type Stack } from "./stack.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const run = promisify(execFile);

type Archiver = BinlogArchiverView;

/**
 * A physical MySQL / MariaDB plan's continuous binary log archiver through the API
 * (Temporal dev server, worker, API; a mariadb-install-db server): rows written
 * after it started, with no plan run and no FLUSH afterwards, are recovered to a time
 * between two marker rows by POST /v1/recoveries/mysql; it reconnects when the server
 * restarts and reports where it archived up to.
 */
describe("continuous binary log archiving of a physical MySQL / MariaDB plan (POST /v1/plans/{id}/binlog-archiver)", () => {
  const tmp = mysqlTempDir("cairn-binlog-archiver-");
  const dataDir = path.join(tmp.dir, "data");
  const spoolDir = path.join(tmp.dir, "spool");
  let stack: Stack;
  let db: MariaDb;
  let planId = "";
  let call: ReturnType<typeof apiClient>["call"];
  let ok: ReturnType<typeof apiClient>["ok"];
  let pollJob: ReturnType<typeof apiClient>["pollJob"];
  const recoveredPids: number[] = [];

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
  /** Polls the archiver's status until `match` holds (two minutes at most). */
  const archiverUntil = async (what: string, match: (a: Archiver) => boolean): Promise<Archiver> => {
    const deadline = Date.now() + 120_000;
    let last: Archiver | undefined;
    for (;;) {
      const res = await call<Archiver>("GET", `/v1/plans/${planId}/binlog-archiver`);
      if (res.status === 200) {
        last = res.body;
        if (match(last)) return last;
      }
      if (Date.now() > deadline) throw new Error(`the archiver did not reach ${what} in 120 s: ${JSON.stringify(last ?? res.body)}`);
      await sleep(300);
    }
  };
  /** The plan's cairn_binlog_archive_* samples in GET /metrics, by the name's end. */
  const binlogMetrics = async (): Promise<Record<string, number>> => {
    const text = await ok<string>("GET", "/metrics");
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/^cairn_binlog_archive_(\w+)\{plan_id="([^"]+)",plan="maria-physical"\} (\S+)$/gm)) if (m[2] === planId) out[m[1]] = Number(m[3]);
    return out;
  };
  const recovered = async (dir: string, sql: string): Promise<string> =>
    (await run("mariadb", ["--no-defaults", `--socket=${path.join(dir, "cairn-recovered.sock")}`, "--user=root", "--batch", "--skip-column-names", "-e", sql])).stdout.trim();

  beforeAll(async () => {
    db = await initMariaDb(tmp.dir);
    await createAppDatabase(db, 5000);
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir });
    ({ call, ok, pollJob } = apiClient(stack.api));
    const { id: repositoryId } = await ok<{ id: string }>("POST", "/v1/repositories", { name: "maria", url: path.join(tmp.dir, "repo"), password: PASSWORD });
    ({ id: planId } = await ok<{ id: string }>("POST", "/v1/plans", { name: "maria-physical", repositoryId, source: { type: "mysql", mode: "physical", url: db.url, password: BACKUP_PASSWORD } }));
    const backup = await finished((await ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`)).jobId);
    expect(backup, JSON.stringify(backup)).toMatchObject({ status: "completed" });
  }, 900_000);

  afterAll(async () => {
    for (const pid of recoveredPids) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        // already stopped
      }
    }
    if (planId) await call("DELETE", `/v1/plans/${planId}/binlog-archiver`).catch(() => undefined);
    await stack?.close();
    await db?.destroy();
    tmp.cleanup();
  });

  it("refuses a spool directory the execution policy refuses, then starts one archiver per plan", async () => {
    const outside = await call<{ detail: string }>("POST", `/v1/plans/${planId}/binlog-archiver`, { spoolDir: "/var/lib/cairn-elsewhere/spool" });
    expect(outside.status).toBe(403);
    expect(JSON.stringify(outside.body)).toContain("spoolDir");

    expect((await call("POST", `/v1/plans/${planId}/binlog-archiver`, { spoolDir, intervalSeconds: 1 })).status).toBe(202);
    const again = await call<{ detail: string }>("POST", `/v1/plans/${planId}/binlog-archiver`, { spoolDir, intervalSeconds: 1 });
    expect(again.status).toBe(409);
    expect(again.body.detail).toContain("DELETE /v1/plans/");
    await archiverUntil("streaming", (a) => a.phase === "streaming" && a.archivedFile !== undefined);
  }, 300_000);

  it("recovers rows written after it started, with no run and no FLUSH, to a time between two markers", async () => {
    const { target, atTarget } = await markTarget(db, 4500);
    const after = await serverAt(db);
    const status = await archiverUntil(`${after.file}:${after.pos}`, (a) => a.archivedFile === after.file && (a.archivedPosition ?? 0) >= after.pos);
    expect(status).toMatchObject({ running: true, serverFile: after.file, lagBytes: 0, lagSeconds: 0, server: expect.stringMatching(new RegExp(`:${db.port}$`)) });
    expect(status.archivedThrough! > target).toBe(true);
    // /metrics shows the running archiver's lag and recovery point (measured again each second: at least as far on).
    const metrics = await binlogMetrics();
    expect(Object.keys(metrics).sort()).toEqual(["archived_through_timestamp_seconds", "lag_bytes", "lag_seconds", "last_check_timestamp_seconds"]);
    expect(metrics.lag_bytes).toBeGreaterThanOrEqual(0);
    expect(metrics.archived_through_timestamp_seconds).toBeGreaterThanOrEqual(Date.parse(status.archivedThrough!) / 1000);
    expect(metrics.last_check_timestamp_seconds).toBeGreaterThanOrEqual(Date.parse(status.lastCheckedAt!) / 1000);

    const window = await ok<{ latest: { time: string; binlogFile: string }; partial?: { binlogFile: string; size: number; through: string } }>("GET", `/v1/plans/${planId}/recovery-window`);
    expect(window.latest.binlogFile).toBe(after.file);
    expect(window.latest.time > target).toBe(true);
    expect(window.partial).toMatchObject({ binlogFile: after.file });

    const dir = path.join(tmp.dir, "recovered");
    const { jobId } = await ok<{ jobId: string }>("POST", "/v1/recoveries/mysql", { planId, target: { time: target }, into: { dataDir: dir, port: await freePort() } });
    const job = await finished(jobId);
    expect(job, JSON.stringify(job)).toMatchObject({ kind: "recovery", status: "completed" });
    const result = job.result as { pid: number; binlogsReplayed: string[] };
    recoveredPids.push(result.pid);
    expect(result.binlogsReplayed).toEqual([after.file]);
    expect(await recovered(dir, "SELECT GROUP_CONCAT(name ORDER BY name) FROM app.markers")).toBe("before");
    const sums: Record<string, string> = {};
    for (const t of ["items", "markers"]) sums[t] = (await recovered(dir, `CHECKSUM TABLE app.${t}`)).split("\t")[1];
    expect(sums).toEqual(atTarget);
  }, 900_000);

  it("reconnects after the server restarts, archives the closed log whole and follows the new one; stops on DELETE", async () => {
    await db.stop();
    await db.start();
    await db.sql("INSERT INTO markers VALUES ('restarted', NOW(6))", "app");
    const now = await serverAt(db);
    const status = await archiverUntil(`${now.file}:${now.pos} after a reconnect`, (a) => a.reconnects >= 1 && a.archivedFile === now.file && (a.archivedPosition ?? 0) >= now.pos);
    expect(status.logsArchived).toBeGreaterThanOrEqual(1);
    expect(status.events.join("\n")).toContain("starting it again");

    expect((await call("DELETE", `/v1/plans/${planId}/binlog-archiver`)).status).toBe(202);
    const stopped = await archiverUntil("stopped", (a) => !a.running);
    expect(stopped, JSON.stringify(stopped)).toMatchObject({ phase: "stopped", archivedFile: now.file });
    expect(await binlogMetrics()).toEqual({});
    expect((await call("DELETE", `/v1/plans/${planId}/binlog-archiver`)).status).toBe(404);
  }, 600_000);
});

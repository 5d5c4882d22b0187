import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync, writeSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiClient } from "./api-client.js";
import { PASSWORD, ROOT } from "./helpers.js";
import { testPolicy, testPolicyEnv } from "./policy-fixtures.js";
import { asPostgres, cairnPgOk, initCluster, PG_BIN, pgTempDir, type PgCluster } from "./postgres.js";
import { freePort } from "./servers.js";
import { startStack, type Stack } from "./stack.js";

/**
 * POST /v1/recoveries with delta: true writes a plan's base backup over the stopped
 * data directory of an earlier recovery, repairing a damaged relation file, and
 * refuses a running server's directory.
 */
describe("delta recovery through the API (Temporal + worker + initdb'd cluster)", () => {
  const tmp = pgTempDir("cairn-pg-delta-");
  const dataDir = path.join(tmp.dir, "data");
  const repo = path.join(tmp.dir, "repo");
  const recovered = path.join(tmp.dir, "recovered");
  const secretKey = randomBytes(32).toString("base64");
  const previousKey = process.env.CAIRN_SECRET_KEY;
  let stack: Stack;
  let worker: ChildProcess;
  let workerLog = "";
  let pg: PgCluster;
  let expected: string;
  const table = "SELECT count(*), sum(hashtext(note)) FROM items";

  const pgCtl = (...args: string[]) => asPostgres(path.join(PG_BIN, "pg_ctl"), ["-D", recovered, "-w", ...args]);

  beforeAll(async () => {
    await cairnPgOk(["-r", repo, "init"]);
    pg = await initCluster(tmp.dir);
    await pg.sql("CREATE TABLE items (id int, note text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 20000) g");
    expected = await pg.sql(table);
    // The worker runs as the postgres user, as next to a database server: the recovered server runs as the owner of its files.
    process.env.CAIRN_SECRET_KEY = secretKey;
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, worker: false });
    worker = spawn("runuser", ["-u", "postgres", "--", process.execPath, path.join(ROOT, "dist", "worker.js")], {
      env: { ...process.env, ...stack.env, CAIRN_DATA_DIR: path.join(tmp.dir, "worker-data"), ...testPolicyEnv(tmp.dir), CAIRN_WORKER_CONCURRENCY: "2", CAIRN_THREADS: "1" },
      cwd: tmp.dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    worker.stdout!.on("data", (d: Buffer) => (workerLog = (workerLog + d.toString()).slice(-8000)));
    worker.stderr!.on("data", (d: Buffer) => (workerLog = (workerLog + d.toString()).slice(-8000)));
  }, 180_000);

  afterAll(async () => {
    await pgCtl("-m", "immediate", "stop");
    if (worker?.pid && worker.exitCode === null) {
      const exited = new Promise((res) => worker.once("exit", res));
      process.kill(worker.pid, "SIGTERM");
      await Promise.race([exited, new Promise((res) => setTimeout(res, 20_000))]);
      if (worker.exitCode === null && worker.signalCode === null) process.kill(worker.pid, "SIGKILL");
    }
    if (previousKey === undefined) delete process.env.CAIRN_SECRET_KEY;
    else process.env.CAIRN_SECRET_KEY = previousKey;
    await stack?.close();
    await pg?.destroy();
    tmp.cleanup();
  });

  it("repairs a damaged relation file in the stopped data directory of an earlier recovery; refuses a running server's", async () => {
    const { ok, pollJob } = apiClient(stack.api);
    const { id: repositoryId } = await ok<{ id: string }>("POST", "/v1/repositories", { name: "pg", url: repo, password: PASSWORD });
    const { id: planId } = await ok<{ id: string }>("POST", "/v1/plans", { name: "cluster", repositoryId, source: { type: "postgres", mode: "physical", url: pg.url } });
    const backup = await pollJob((await ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`)).jobId, (j) => j.status !== "running");
    expect(backup, JSON.stringify(backup) + workerLog).toMatchObject({ status: "completed" });

    const recover = async (body: Record<string, unknown>) => pollJob((await ok<{ jobId: string }>("POST", "/v1/recoveries", { planId, target: { latest: true }, ...body })).jobId, (j) => j.status !== "running");
    const port = await freePort();
    const first = await recover({ into: { dataDir: recovered, port } });
    expect(first, JSON.stringify(first) + workerLog).toMatchObject({ status: "completed" });

    // Still running: a delta over it is refused before anything is written.
    const refused = await recover({ into: { dataDir: recovered, port: await freePort() }, delta: true });
    expect(refused.status).toBe("failed");
    expect(refused.error).toContain("postmaster.pid");

    const psql = (sql: string) => asPostgres(path.join(PG_BIN, "psql"), ["-X", "-A", "-t", "-q", "-d", `postgresql://postgres@127.0.0.1:${port}/postgres`, "-c", sql]);
    const relation = (await psql("SELECT pg_relation_filepath('items')")).stdout.trim();
    expect((await pgCtl("-m", "fast", "stop")).code).toBe(0);
    const fd = openSync(path.join(recovered, relation), "r+");
    writeSync(fd, Buffer.alloc(8192, 0xab), 0, 8192, 8192 * 3);
    closeSync(fd);

    const delta = await recover({ into: { dataDir: recovered, port }, delta: true, verify: { sql: [table] } });
    expect(delta, JSON.stringify(delta) + workerLog).toMatchObject({ status: "completed" });
    expect((delta.result as { verified: { rows: string[] }[] }).verified[0].rows).toEqual([expected]);
    expect((await psql(table)).stdout.trim()).toBe(expected);
  }, 300_000);
});

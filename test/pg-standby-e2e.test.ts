import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StandbyView } from "../api/standbys.js";
import { apiClient } from "./api-client.js";
import { PASSWORD } from "./helpers.js";
import { archivingPrimary, postmasterPid, startPostgresWorker, type WorkerProcess } from "./pg-archiving.js";
import { testPolicy } from "./policy-fixtures.js";
import { asPostgres, PG_BIN, pgTempDir, waitFor, type PgCluster } from "./postgres.js";
import { freePort } from "./servers.js";
import { startStack, type Stack } from "./stack.js";

/**
 * A warm standby through the API, on the test stack (the API in this process) and a
 * worker process running as the postgres user, as next to a database server (a
 * root worker refuses to run PostgreSQL). The primary archives its WAL with `cairn
 * pg wal-push` into the plan's repository; the standby replays it with `cairn pg
 * wal-fetch --via` the socket the worker serves it on.
 */
describe("PostgreSQL warm standby (POST /v1/standbys)", () => {
  const tmp = pgTempDir("cairn-standby-e2e-");
  const dataDir = path.join(tmp.dir, "data");
  const standbyDir = path.join(tmp.dir, "standby");
  let repo: string;
  let stack: Stack;
  let worker: WorkerProcess;
  const previousKey = process.env.CAIRN_SECRET_KEY;
  let pg: PgCluster;
  let client: ReturnType<typeof apiClient>;
  let planId: string;
  let port: number;

  const standbySql = async (sql: string) => {
    const r = await asPostgres(path.join(PG_BIN, "psql"), ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", `postgresql://postgres@127.0.0.1:${port}/postgres`, "-c", sql]);
    return { ...r, stdout: r.stdout.trim() };
  };
  const standby = () => client.ok<StandbyView>("GET", `/v1/standbys/${planId}`);
  /** Moves the primary past its current segment and waits until that segment is archived. */
  const switchAndArchive = async () => {
    const last = await pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    await pg.sql("SELECT pg_switch_wal()");
    await waitFor("the last segment to be archived", async () => (await pg.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")) >= last);
  };

  beforeAll(async () => {
    ({ primary: pg, repo } = await archivingPrimary(tmp.dir));
    await pg.sql("CREATE TABLE markers (note text); INSERT INTO markers VALUES ('base')");
    // The API (this process) and the worker share the platform secret key through the environment.
    process.env.CAIRN_SECRET_KEY = randomBytes(32).toString("base64");
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, worker: false });
    startWorker();
    client = apiClient(stack.api);
    const { id: repositoryId } = await client.ok<{ id: string }>("POST", "/v1/repositories", { name: "pg", url: repo, password: PASSWORD });
    ({ id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", { name: "cluster", repositoryId, source: { type: "postgres", mode: "physical", url: pg.url } }));
    const { jobId } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    expect(await client.pollJob(jobId, (j) => j.status !== "running"), worker.log()).toMatchObject({ status: "completed" });
    port = await freePort();
  }, 300_000);

  const startWorker = () => (worker = startPostgresWorker(stack, tmp.dir));
  const stopWorker = async () => worker?.stop();
  /** Whether a process runs: a zombie (exited, not reaped yet) does not. */
  const alive = (pid: number) => {
    try {
      return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
    } catch {
      return false;
    }
  };

  afterAll(async () => {
    // A failed test may leave the standby running: stop its server before removing its directory.
    if (existsSync(path.join(standbyDir, "postmaster.pid"))) await asPostgres(path.join(PG_BIN, "pg_ctl"), ["-D", standbyDir, "-m", "immediate", "-w", "stop"]);
    await stack?.close();
    await stopWorker();
    await pg?.destroy();
    if (previousKey === undefined) delete process.env.CAIRN_SECRET_KEY;
    else process.env.CAIRN_SECRET_KEY = previousKey;
    tmp.cleanup();
  });

  it("restores the latest base backup as a standby that replays archived WAL, read-only, and reports its lag", async () => {
    const started = await client.ok<{ id: string; workflowId: string }>("POST", "/v1/standbys", { planId, dataDir: standbyDir, port, pollSeconds: 1 });
    expect(started).toEqual({ id: planId, workflowId: `standby-${planId}` });
    await waitFor("the standby to replay", async () => {
      const s = await standby();
      if (s.phase === "stopped") throw new Error(`the standby ended: ${JSON.stringify(s)}\n${worker.log()}`);
      return s.phase === "replaying";
    }, 240_000);
    expect(readFileSync(path.join(standbyDir, "postgresql.auto.conf"), "utf8")).toContain(`pg wal-fetch --via "${standbyDir}.cairn-wal/wal.sock"`);
    expect(existsSync(path.join(standbyDir, "standby.signal"))).toBe(true);
    expect((await standbySql("SELECT pg_is_in_recovery()")).stdout).toBe("t");

    // Written on the primary after the base backup: only replaying archived WAL brings it.
    await pg.sql("INSERT INTO markers VALUES ('after-standby')");
    await switchAndArchive();
    await waitFor("the standby to replay the new row", async () => (await standbySql("SELECT string_agg(note, ',' ORDER BY note) FROM markers")).stdout === "after-standby,base", 120_000);
    const write = await standbySql("INSERT INTO markers VALUES ('on-standby')");
    expect(write.code).not.toBe(0);
    expect(write.stderr).toContain("read-only transaction");

    // The standby loop writes a heartbeat on the primary; once a segment holding one is replayed, lag in seconds comes from it.
    await switchAndArchive();
    await waitFor("lag measured from the heartbeat", async () => (await standby()).lagSource === "heartbeat", 120_000);
    const status = await standby();
    expect(status).toMatchObject({ planId, running: true, phase: "replaying", dataDir: standbyDir, port, restarts: 0, lagSource: "heartbeat" });
    expect(status.replayLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(status.primaryLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(status.lagBytes).toBeGreaterThanOrEqual(0);
    expect(status.lagSeconds).toBeGreaterThanOrEqual(0);
    expect(Date.parse(status.lastCheckedAt!)).not.toBeNaN();
    // The primary and the standby both answered the last check; the start-up is no longer a warning.
    expect(status.warnings).toEqual([]);
    expect(status.events).toEqual([]);
    expect(Number(await pg.sql("SELECT seq FROM public.cairn_heartbeat WHERE id = 1"))).toBeGreaterThan(0);

    const { standbys } = await client.ok<{ standbys: StandbyView[] }>("GET", "/v1/standbys");
    expect(standbys.map((s) => [s.planId, s.dataDir, s.port])).toEqual([[planId, standbyDir, port]]);

    const metrics = await client.call<string>("GET", "/metrics");
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(new RegExp(`^cairn_standby_replay_lag_bytes\\{plan_id="${planId}",plan="cluster"\\} \\d+$`, "m"));
    expect(metrics.body).toMatch(new RegExp(`^cairn_standby_replay_lag_seconds\\{plan_id="${planId}",plan="cluster"\\} [\\d.e+-]+$`, "m"));
  });

  it("refuses a second standby of the plan (409 naming the running one) and a data directory outside the restore roots", async () => {
    const second = await client.call<{ detail: string }>("POST", "/v1/standbys", { planId, dataDir: path.join(tmp.dir, "standby-2"), port: await freePort() });
    expect(second.status).toBe(409);
    expect(second.body.detail).toContain(`standby-${planId}`);
    expect(second.body.detail).toContain(standbyDir);
    expect(second.body.detail).toContain(`DELETE /v1/standbys/${planId}`);

    const outside = await client.call<{ detail: string; errors?: { path: string }[] }>("POST", "/v1/standbys", { planId, dataDir: "/var/lib/postgresql/standby", port: await freePort() });
    expect(outside.status).toBe(403);
    expect(outside.body.detail).toContain("/var/lib/postgresql/standby");
    expect(JSON.stringify(outside.body)).toContain("dataDir");
  });

  it("starts PostgreSQL again when it died, and says so", async () => {
    await asPostgres(path.join(PG_BIN, "pg_ctl"), ["-D", standbyDir, "-m", "immediate", "-w", "stop"]);
    await waitFor("the standby to be started again", async () => (await standby()).restarts === 1, 120_000);
    const status = await standby();
    expect(status.events).toHaveLength(1);
    expect(status.events[0]).toContain("started it again");
    await waitFor("the restarted standby to answer", async () => (await standbySql("SELECT count(*) FROM markers")).stdout === "2", 60_000);
  });

  it("goes on after a worker restart: the next worker finds PostgreSQL running and measures again", async () => {
    const pid = postmasterPid(standbyDir);
    const restarts = (await standby()).restarts;
    await stopWorker();
    const stoppedAt = new Date().toISOString();
    // No worker: the standby's PostgreSQL keeps running, but no one serves its restore_command (wal-fetch --via the
    // worker's socket), so it waits; the next worker serves the WAL archived meanwhile.
    await pg.sql("INSERT INTO markers VALUES ('without-worker')");
    await switchAndArchive();
    expect((await standbySql("SELECT count(*) FROM markers")).stdout).toBe("2");
    startWorker();
    await waitFor("a measurement by the new worker", async () => ((await standby()).lastCheckedAt ?? "") > stoppedAt, 180_000);
    await waitFor("the standby to replay what was archived without a worker", async () => (await standbySql("SELECT count(*) FROM markers")).stdout === "3", 120_000);
    const status = await standby();
    expect(status).toMatchObject({ running: true, phase: "replaying", restarts });
    expect(postmasterPid(standbyDir)).toBe(pid);
  });

  it("stops on DELETE: PostgreSQL shut down, the data directory kept, the WAL socket's directory removed", async () => {
    const pid = postmasterPid(standbyDir);
    expect(await client.ok("DELETE", `/v1/standbys/${planId}`)).toEqual({ id: planId, phase: "stopping", discard: false });
    await waitFor("the standby to stop", async () => (await standby()).phase === "stopped", 120_000);
    expect(existsSync(path.join(standbyDir, "postmaster.pid"))).toBe(false);
    // Its parent may be a worker that is gone, and the container's init may reap it late: a zombie has exited.
    await waitFor("the standby's postmaster to exit", async () => !alive(pid), 30_000);
    expect((await standby()).running).toBe(false);
    expect(existsSync(path.join(standbyDir, "PG_VERSION"))).toBe(true);
    expect(existsSync(path.join(standbyDir, "cairn_standby.password"))).toBe(false);
    expect(existsSync(`${standbyDir}.cairn-wal`)).toBe(false);
    expect((await client.call("DELETE", `/v1/standbys/${planId}`)).status).toBe(404);
    expect((await client.ok<{ standbys: unknown[] }>("GET", "/v1/standbys")).standbys).toEqual([]);
  });

  it("starts again once stopped, and DELETE ?discard=true removes the data directory", async () => {
    const again = path.join(tmp.dir, "standby-again");
    port = await freePort();
    await client.ok("POST", "/v1/standbys", { planId, dataDir: again, port, pollSeconds: 1 });
    await waitFor("the new standby to replay", async () => (await standby()).phase === "replaying", 240_000);
    // "replaying" means PostgreSQL runs and replays; it reaches the archive's end a moment later.
    const markers = async () => (await standbySql("SELECT count(*) FROM markers")).stdout;
    await waitFor("the new standby to replay the archived markers", async () => (await markers()) === "3", 120_000);
    expect(await markers()).toBe("3");
    expect(await client.ok("DELETE", `/v1/standbys/${planId}?discard=true`)).toEqual({ id: planId, phase: "stopping", discard: true });
    await waitFor("the standby to stop", async () => (await standby()).phase === "stopped", 120_000);
    expect(existsSync(again)).toBe(false);
    expect((await standby()).events.join("\n")).toContain(`${again} was removed`);
    // The first standby's directory, stopped earlier, is untouched.
    expect(existsSync(path.join(standbyDir, "PG_VERSION"))).toBe(true);
  });
});

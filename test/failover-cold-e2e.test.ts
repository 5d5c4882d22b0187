import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiClient } from "./api-client.js";
import { PASSWORD } from "./helpers.js";
import { archivedEnd, archivingPrimary, followFailover, killPostmaster, lsnValue, startPgBouncer, type PgBouncer } from "./pg-archiving.js";
import { testPolicy } from "./policy-fixtures.js";
import { asPostgres, PG_BIN, pgTempDir, waitFor, type PgCluster } from "./postgres.js";
import { freePort } from "./servers.js";
import { startStack, type Stack } from "./stack.js";

/**
 * Cold failover: no standby. After the primary is SIGKILLed, the failover
 * restores the plan's newest base backup and its archived WAL into an empty
 * directory, starts it, promotes it, verifies it and points PgBouncer at it. The
 * primary archives through `cairn pg wal-push` with no archive_timeout, so what
 * it wrote after its last WAL switch is never archived: the data a cold failover
 * loses, which its RPO reports. The worker runs in this process, as root, and
 * takes the base backup itself: the restored directory must still go to the
 * server's user (PostgreSQL refuses to run as root), the owner of the backed-up files.
 */
describe("PostgreSQL cold failover (no standby: restore the latest state, promote, cut over PgBouncer)", () => {
  const tmp = pgTempDir("cairn-failover-cold-");
  const dataDir = path.join(tmp.dir, "data");
  let stack: Stack;
  let client: ReturnType<typeof apiClient>;
  let primary: PgCluster;
  let repo: string;
  let bouncer: PgBouncer;
  let planId: string;
  const into = path.join(tmp.dir, "restored");

  beforeAll(async () => {
    ({ primary, repo } = await archivingPrimary(tmp.dir));
    await primary.sql("CREATE DATABASE bench");
    await primary.sql("CREATE TABLE ledger (n int PRIMARY KEY)", "bench");
    bouncer = await startPgBouncer(tmp.dir, primary.port);
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir, { CAIRN_FAILOVER_PATHS: tmp.dir }), dataDir });
    client = apiClient(stack.api);
    const { id: repositoryId } = await client.ok<{ id: string }>("POST", "/v1/repositories", { name: "pg", url: repo, password: PASSWORD });
    ({ id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", { name: "primary", repositoryId, source: { type: "postgres", mode: "physical", url: primary.url } }));
    // The base backup a cold failover starts from.
    const { jobId } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    expect(await client.pollJob(jobId, (j) => j.status !== "running")).toMatchObject({ status: "completed" });
  }, 300_000);

  afterAll(async () => {
    await bouncer?.stop();
    await stack?.close();
    // The restored server, now the primary, was started by the worker: stop it before its directory goes.
    if (existsSync(path.join(into, "postmaster.pid"))) await asPostgres(path.join(PG_BIN, "pg_ctl"), ["-D", into, "-m", "immediate", "-w", "stop"]);
    await primary?.destroy();
    tmp.cleanup();
  });

  const request = (target: { dataDir: string; port: number }) => ({
    planId,
    into: target,
    fence: { dataDir: primary.pgdata },
    cutover: { type: "pgbouncer", configFile: bouncer.configFile, database: "bench" },
    reason: "test",
  });

  /** What a refused failover must have left alone: the primary runs and takes writes through PgBouncer, which still points at it. */
  async function untouched(n: number) {
    const config = readFileSync(bouncer.configFile, "utf8");
    expect(config).toContain(`bench = host=127.0.0.1 port=${primary.port} dbname=bench`);
    const write = await bouncer.psql(`INSERT INTO ledger VALUES (${n});;SELECT inet_server_port()`);
    expect(write.code, write.stderr).toBe(0);
    expect(write.stdout.trim()).toBe(String(primary.port));
  }

  it("refuses an into directory that is not empty, and a port in use, before anything is touched, saying what to do", async () => {
    const notEmpty = path.join(tmp.dir, "not-empty");
    mkdirSync(notEmpty);
    writeFileSync(path.join(notEmpty, "keep.txt"), "the operator's file");
    const first = await client.ok<{ id: string }>("POST", "/v1/failovers", request({ dataDir: notEmpty, port: await freePort() }));
    const full = await followFailover(client, first.id);
    expect(full.status).toBe("failed");
    expect(full.error).toBe(`into.dataDir: ${notEmpty} is not empty; restore into a new or empty directory (Cairn never overwrites a data directory)`);
    expect(full.steps.map((s) => s.name)).toEqual(["validate"]);
    expect(readdirSync(notEmpty)).toEqual(["keep.txt"]);
    expect(readFileSync(path.join(notEmpty, "keep.txt"), "utf8")).toBe("the operator's file");
    await untouched(-1);

    // The primary's own port: something listens there, so the restored server could not.
    const fresh = path.join(tmp.dir, "never-created");
    const second = await client.ok<{ id: string }>("POST", "/v1/failovers", request({ dataDir: fresh, port: primary.port }));
    const busy = await followFailover(client, second.id);
    expect(busy.status).toBe("failed");
    expect(busy.error).toBe(`port ${primary.port} is in use on the worker; choose a free port for the recovered server`);
    expect(busy.steps.map((s) => s.name)).toEqual(["validate"]);
    expect(existsSync(fresh)).toBe(false);
    await untouched(-2);
  }, 600_000);

  it("after SIGKILL of the primary, restores into an empty directory every transaction the archive holds, promotes it, points PgBouncer at it, and reports RTO and RPO", async () => {
    // The ledger: rows committed through PgBouncer, each with a WAL position taken after its commit.
    const committed: { n: number; lsn: string }[] = [];
    let writing = true;
    const ledger = (async () => {
      for (let n = 1; writing; n++) {
        const r = await bouncer.psql(`INSERT INTO ledger VALUES (${n});;SELECT pg_current_wal_lsn()`);
        if (r.code === 0) committed.push({ n, lsn: r.stdout.trim() });
      }
    })();
    await waitFor("ledger rows", async () => committed.length >= 30, 120_000);
    // Part of the ledger reaches the archive for sure; the rows that follow stay in the segment being written.
    const segment = await primary.sql("SELECT pg_walfile_name(pg_switch_wal())");
    await waitFor(`${segment} archived`, async () => (await primary.sql(`SELECT coalesce(last_archived_wal >= '${segment}', false) FROM pg_stat_archiver`)) === "t", 120_000);
    // Rows from here on started after the switch: they commit into a segment that is not archived.
    const afterSwitch = committed.length + 1;
    await waitFor("ledger rows after the switch", async () => committed.length >= afterSwitch + 10, 120_000);

    killPostmaster(primary);
    writing = false;
    await ledger;

    mkdirSync(into);
    await asPostgres("/bin/chown", ["postgres:postgres", into]);
    const port = await freePort();
    const { id } = await client.ok<{ id: string }>("POST", "/v1/failovers", { ...request({ dataDir: into, port }), checkSql: ["SELECT 1 FROM pg_database WHERE datname = 'bench'"] });
    const done = await followFailover(client, id, 600_000);
    expect(done.status, JSON.stringify(done)).toBe("completed");
    const result = done.result!;
    expect(result.steps.map((s) => s.name)).toEqual(["validate", "archive", "fence", "restore", "promote", "verify", "cutover", "notify"]);
    expect(result.steps.find((s) => s.name === "archive")!.outcome).toBe(`skipped: the old primary 127.0.0.1:${primary.port} does not answer`);
    expect(result.steps.find((s) => s.name === "restore")!.outcome).toMatch(/^restored and replayed the archive to [0-9A-F]+\/[0-9A-F]+$/);
    expect(result.newPrimary).toEqual({ host: "127.0.0.1", port });
    expect(result.rtoPath).toBe("cutover");
    expect(result.rtoMs).toBeGreaterThan(0);
    // The restore is part of the recovery time: every step before the cut-over ended before the write through PgBouncer.
    const beforeCutover = result.steps.slice(0, result.steps.findIndex((s) => s.name === "cutover")).reduce((sum, s) => sum + s.ms, 0);
    expect(result.rtoMs!).toBeGreaterThanOrEqual(beforeCutover);
    // The rows after the switch were committed on the old primary but never archived: the RPO says so, from its local WAL.
    expect(result.rpo.basis).toContain("the old primary's last commit in its local WAL");
    expect(result.rpo.bytes).toBeGreaterThan(0);
    expect(result.rpo.seconds).toBeGreaterThan(0);

    const sql = (q: string) => asPostgres(path.join(PG_BIN, "psql"), ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", `postgresql://postgres@127.0.0.1:${port}/bench`, "-c", q]);
    expect((await sql("SELECT pg_is_in_recovery()")).stdout.trim()).toBe("f");
    const present = new Set((await sql("SELECT n FROM ledger")).stdout.trim().split("\n").map(Number));

    // Every row committed before the end of the last archived segment is on the new primary ...
    const end = archivedEnd(repo);
    const mustHave = committed.filter((c) => lsnValue(c.lsn) <= end).map((c) => c.n);
    expect(mustHave.length).toBeGreaterThanOrEqual(30);
    expect(mustHave.filter((n) => !present.has(n))).toEqual([]);
    // ... and those committed after the switch, in a segment never archived, are not: the data loss the RPO measures.
    expect(committed.slice(afterSwitch).filter((c) => present.has(c.n)).map((c) => c.n)).toEqual([]);

    // PgBouncer now points at the new primary, and a client through it writes there.
    expect(readFileSync(bouncer.configFile, "utf8")).toContain(`bench = host=127.0.0.1 port=${port} dbname=bench`);
    const write = await bouncer.psql("INSERT INTO ledger VALUES (1000000);;SELECT inet_server_port()");
    expect(write.code, write.stderr).toBe(0);
    expect(write.stdout.trim()).toBe(String(port));
    expect((await sql("SELECT count(*) FROM ledger WHERE n = 1000000")).stdout.trim()).toBe("1");
  }, 900_000);
});

import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiClient } from "./api-client.js";
import { PASSWORD } from "./helpers.js";
import { archivedEnd, archivingPrimary, followFailover, killPostmaster, lsnValue, startPgBouncer, type PgBouncer } from "./pg-archiving.js";
import { testPolicy } from "./policy-fixtures.js";
import { asPostgres, cairnCommand, clusterAt, PG_BIN, pgTempDir, waitFor, type PgCluster } from "./postgres.js";
import { startStack, type Stack } from "./stack.js";

/**
 * Failover of a physical plan's primary to a warm standby that replays the
 * plan's archive (restore_command = cairn pg wal-fetch), through the API on the
 * test stack, with Debian's PgBouncer in front of the primary and pgbench as the
 * application. The worker runs in this process (as root): it stops servers by
 * signal and reads their data directories, all under CAIRN_FAILOVER_PATHS.
 */
describe("PostgreSQL failover (API + Temporal + two clusters + PgBouncer + pgbench)", () => {
  const tmp = pgTempDir("cairn-failover-");
  const dataDir = path.join(tmp.dir, "data");
  let repo: string;
  let passwordFile: string;
  let stack: Stack;
  let client: ReturnType<typeof apiClient>;
  let primary: PgCluster;
  let standby: PgCluster;
  let bouncer: PgBouncer;
  let planId: string;

  beforeAll(async () => {
    ({ primary, repo, passwordFile } = await archivingPrimary(tmp.dir, { archive_timeout: "10" }));
    await primary.sql("CREATE DATABASE bench");
    await primary.sql("CREATE TABLE ledger (n int PRIMARY KEY)", "bench");

    // The warm standby: a base backup of the primary, replaying the plan's archive. A fast checkpoint: the default
    // (spread) paces its writes over most of checkpoint_timeout, and pg_basebackup waited 97 s for it.
    const standbyDir = path.join(tmp.dir, "standby");
    const bb = await asPostgres(path.join(PG_BIN, "pg_basebackup"), ["-D", standbyDir, "-d", primary.url, "-X", "fetch", "-c", "fast", "--no-sync"]);
    expect(bb.code, bb.stderr).toBe(0);
    writeFileSync(path.join(standbyDir, "standby.signal"), "");
    writeFileSync(path.join(standbyDir, "postgresql.auto.conf"), `restore_command = '${cairnCommand(repo, passwordFile).replace(/'/g, "''")} pg wal-fetch %f "%p"'\n`);
    await asPostgres("/bin/chown", ["-R", "postgres:postgres", standbyDir]);
    standby = await clusterAt(standbyDir);
    await standby.start({ hot_standby: "on" });
    expect(await standby.sql("SELECT pg_is_in_recovery()")).toBe("t");

    // PgBouncer, as the application reaches the database.
    bouncer = await startPgBouncer(tmp.dir, primary.port);

    stack = await startStack({
      policy: testPolicy(tmp.dir, dataDir, { CAIRN_FAILOVER_PATHS: tmp.dir, CAIRN_HOOK_COMMANDS: "/bin/true:/bin/false" }),
      dataDir,
    });
    client = apiClient(stack.api);
    const { id: repositoryId } = await client.ok<{ id: string }>("POST", "/v1/repositories", { name: "pg", url: repo, password: PASSWORD });
    ({ id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", { name: "primary", repositoryId, source: { type: "postgres", mode: "physical", url: primary.url } }));
  }, 600_000);

  afterAll(async () => {
    await bouncer?.stop();
    await stack?.close();
    await standby?.destroy();
    await primary?.destroy();
    tmp.cleanup();
  });

  /** psql through PgBouncer as the application. */
  const bench = (sql: string) => bouncer.psql(sql);
  const follow = (id: string) => followFailover(client, id);

  const request = (more: Record<string, unknown>) => ({
    planId,
    standby: { dataDir: standby.pgdata, port: standby.port },
    fence: { dataDir: primary.pgdata },
    cutover: { type: "pgbouncer", configFile: bouncer.configFile, database: "bench" },
    reason: "test",
    ...more,
  });

  it("refuses a PgBouncer admin URL with a password in it, which would reach the audit log and history in clear", async () => {
    const secret = "hunter2-in-the-url";
    const answer = await client.call<{ detail?: string }>("POST", "/v1/failovers", request({ cutover: { type: "pgbouncer", configFile: bouncer.configFile, database: "bench", adminUrl: `postgresql://admin:${secret}@127.0.0.1:${bouncer.port}/pgbouncer` } }));
    expect(answer.status).toBe(400);
    expect(JSON.stringify(answer.body)).toContain("give the password in the password field, not in the URL");
    expect(JSON.stringify(answer.body)).not.toContain(secret);
    const audit = await client.ok<{ items: unknown[] }>("GET", "/v1/audit?limit=50");
    expect(JSON.stringify(audit)).not.toContain(secret);
  });

  it("refuses a standby behind the RPO limit, saying the lag; a dry run says what it would do and changes nothing", async () => {
    await standby.sql("SELECT pg_wal_replay_pause()");
    await primary.sql("INSERT INTO ledger VALUES (-1)", "bench");
    await primary.sql("SELECT pg_switch_wal()");
    const { id } = await client.ok<{ id: string }>("POST", "/v1/failovers", request({ rpoLimit: { bytes: 0 } }));
    const refused = await follow(id);
    expect(refused.status).toBe("failed");
    expect(refused.error).toMatch(/the standby is \d+ bytes( and [\d.]+ s)? behind the old primary .*more than the RPO limit \(0 bytes\).*force: true/);
    await standby.sql("SELECT pg_wal_replay_resume()");

    const dry = await client.ok<{ id: string }>("POST", "/v1/failovers", request({ dryRun: true }));
    const planned = await follow(dry.id);
    expect(planned.status, JSON.stringify(planned)).toBe("completed");
    expect(planned.result!.validation.plan.map((s) => s.name)).toEqual(["validate", "archive", "fence", "promote", "verify", "cutover", "notify"]);
    expect(planned.result!.validation.plan.find((s) => s.name === "cutover")!.action).toContain(`point PgBouncer's [databases] entry bench in ${bouncer.configFile}`);
    expect(await standby.sql("SELECT pg_is_in_recovery()")).toBe("t");
    expect(await primary.sql("SELECT pg_is_in_recovery()")).toBe("f");
  }, 600_000);

  it("does not promote when fencing cannot confirm the old primary is down", async () => {
    // The hook says "fenced" (exit 0) but the primary still answers.
    const { id } = await client.ok<{ id: string }>("POST", "/v1/failovers", request({ fence: { hook: ["/bin/true"] } }));
    const failed = await follow(id);
    expect(failed.status).toBe("failed");
    expect(failed.error).toContain(`the old primary 127.0.0.1:${primary.port} still answers after fencing`);
    expect(failed.error).toContain("nothing was promoted");
    expect(failed.steps.map((s) => s.name)).toEqual(["validate", "archive", "fence"]);
    expect(await standby.sql("SELECT pg_is_in_recovery()")).toBe("t");
    // The archive step had made the old primary read-only; the message says how to undo that.
    expect(failed.error).toContain("ALTER SYSTEM RESET default_transaction_read_only");
    await primary.sql("ALTER SYSTEM RESET default_transaction_read_only");
    await primary.sql("SELECT pg_reload_conf()");
    await waitFor("the old primary writable again", async () => (await bench("INSERT INTO ledger VALUES (-2)")).code === 0);
  }, 600_000);

  it("under pgbench through PgBouncer, SIGKILL of the primary: promotes the standby, repoints PgBouncer, pgbench goes on, nothing archived is lost", async () => {
    const init = await asPostgres(path.join(PG_BIN, "pgbench"), ["-i", "-s", "2", "-q", "-d", primary.url.replace(/\/postgres$/, "/bench")]);
    expect(init.code, init.stderr).toBe(0);
    // The application: pgbench through PgBouncer, run again whenever it ends (its clients end on a lost
    // connection, as an application's requests fail and are retried), so it reconnects through PgBouncer.
    let running = true;
    let runs = 0;
    let pgbenchOut = "";
    let current: ChildProcess | undefined;
    const app = (async () => {
      while (running) {
        runs++;
        current = spawn("runuser", ["-u", "postgres", "--", path.join(PG_BIN, "pgbench"), "-c", "4", "-j", "2", "-R", "40", "-T", "5", "-n", "-d", `postgresql://postgres@127.0.0.1:${bouncer.port}/bench`], { stdio: ["ignore", "pipe", "pipe"] });
        current.stdout!.on("data", (d: Buffer) => (pgbenchOut = (pgbenchOut + d.toString()).slice(-4000)));
        current.stderr!.on("data", (d: Buffer) => (pgbenchOut = (pgbenchOut + d.toString()).slice(-4000)));
        await new Promise((resolve) => current!.once("exit", resolve));
      }
    })();

    // The ledger: rows committed through PgBouncer, each with a WAL position taken after its commit.
    const committed: { n: number; lsn: string }[] = [];
    let writing = true;
    const ledger = (async () => {
      for (let n = 1; writing; n++) {
        const r = await bench(`INSERT INTO ledger VALUES (${n});;SELECT pg_current_wal_lsn()`);
        if (r.code === 0) committed.push({ n, lsn: r.stdout.trim() });
      }
    })();
    await waitFor("pgbench and the ledger under way", async () => committed.length >= 30 && Number(await primary.sql("SELECT count(*) FROM pgbench_history", "bench")) >= 50, 120_000);
    // Part of the ledger reaches the archive for sure; more rows follow that may not.
    const archivedRows = committed.length;
    const segment = await primary.sql("SELECT pg_walfile_name(pg_switch_wal())");
    await waitFor(`${segment} archived`, async () => (await primary.sql(`SELECT coalesce(last_archived_wal >= '${segment}', false) FROM pg_stat_archiver`)) === "t", 120_000);
    await waitFor("more ledger rows", async () => committed.length >= archivedRows + 10, 120_000);

    killPostmaster(primary);
    writing = false;
    await ledger;

    const { id } = await client.ok<{ id: string }>("POST", "/v1/failovers", request({ checkSql: ["SELECT 1 FROM pg_database WHERE datname = 'bench'"] }));
    const done = await follow(id);
    expect(done.status, JSON.stringify(done)).toBe("completed");
    const result = done.result!;
    expect(result.steps.map((s) => s.name)).toEqual(["validate", "archive", "fence", "promote", "verify", "cutover", "notify"]);
    expect(result.steps.find((s) => s.name === "archive")!.outcome).toContain("skipped: the old primary");
    expect(result.newPrimary).toEqual({ host: "127.0.0.1", port: standby.port });
    expect(result.rtoPath).toBe("cutover");
    expect(result.rtoMs).toBeGreaterThan(0);
    expect(result.rpo.bytes).toEqual(expect.any(Number));
    expect(result.rpo.seconds).toEqual(expect.any(Number));
    expect(result.rpo.basis).toContain("local WAL");
    expect(await standby.sql("SELECT pg_is_in_recovery()")).toBe("f");

    // Every ledger row committed before the end of the last archived segment is on the new primary.
    const end = archivedEnd(repo);
    const mustHave = committed.filter((c) => lsnValue(c.lsn) <= end).map((c) => c.n);
    expect(mustHave.length).toBeGreaterThanOrEqual(archivedRows);
    const present = new Set((await standby.sql("SELECT n FROM ledger", "bench")).split("\n").map(Number));
    expect(mustHave.filter((n) => !present.has(n))).toEqual([]);

    // pgbench goes on through PgBouncer, now against the new primary.
    const before = Number(await standby.sql("SELECT count(*) FROM pgbench_history", "bench"));
    await waitFor(`pgbench transactions on the new primary (${runs} runs; ${pgbenchOut.slice(-500)})`, async () => Number(await standby.sql("SELECT count(*) FROM pgbench_history", "bench")) >= before + 20, 180_000);
    running = false;
    await app;
    expect((await bench("SELECT inet_server_port()")).stdout.trim()).toBe(String(standby.port));
  }, 900_000);
});

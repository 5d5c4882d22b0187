import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signBody } from "../activities/notify.js";
import type { StandbyView } from "../api/standbys.js";
import { apiClient } from "./api-client.js";
import { PASSWORD } from "./helpers.js";
import { archivingPrimary, followFailover, postmasterPid, startPostgresWorker, type WorkerProcess } from "./pg-archiving.js";
import { testPolicy } from "./policy-fixtures.js";
import { asPostgres, PG_BIN, pgTempDir, waitFor, type PgCluster } from "./postgres.js";
import { freePort } from "./servers.js";
import { startStack, type Stack } from "./stack.js";

/**
 * Failover from the platform's own warm standby (POST /v1/standbys) with
 * `standby: "workflow"`: the standby workflow is released before the promotion
 * (it stops watching and never restarts the new primary), and the plan's webhook
 * hears the outcome. The worker runs as the postgres user, as the standby needs.
 */
describe("failover from the standby workflow (POST /v1/failovers {standby: \"workflow\"})", () => {
  const tmp = pgTempDir("cairn-failover-standby-");
  const dataDir = path.join(tmp.dir, "data");
  const standbyDir = path.join(tmp.dir, "standby");
  const secret = "whsec-failover-0123456789";
  const failoverPaths = { CAIRN_FAILOVER_PATHS: tmp.dir, CAIRN_HOOK_COMMANDS: "/bin/true" };
  let stack: Stack;
  let worker: WorkerProcess;
  const previousKey = process.env.CAIRN_SECRET_KEY;
  let primary: PgCluster;
  let client: ReturnType<typeof apiClient>;
  let planId: string;
  let port: number;
  let hooks: Server;
  const received: { headers: IncomingHttpHeaders; body: string }[] = [];

  const standbySql = async (sql: string) => {
    const r = await asPostgres(path.join(PG_BIN, "psql"), ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", `postgresql://postgres@127.0.0.1:${port}/postgres`, "-c", sql]);
    return { ...r, stdout: r.stdout.trim() };
  };
  const standby = () => client.ok<StandbyView>("GET", `/v1/standbys/${planId}`);
  const alive = (pid: number) => {
    try {
      return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
    } catch {
      return false;
    }
  };

  beforeAll(async () => {
    const { primary: pg, repo } = await archivingPrimary(tmp.dir);
    primary = pg;
    await primary.sql("CREATE TABLE markers (note text); INSERT INTO markers VALUES ('base')");

    hooks = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (d: Buffer) => chunks.push(d));
      req.on("end", () => {
        received.push({ headers: req.headers, body: Buffer.concat(chunks).toString() });
        res.writeHead(200).end("ok");
      });
    });
    await new Promise<void>((r) => hooks.listen(0, "127.0.0.1", r));

    process.env.CAIRN_SECRET_KEY = randomBytes(32).toString("base64");
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir, failoverPaths), dataDir, worker: false });
    worker = startPostgresWorker(stack, tmp.dir, { ...failoverPaths, CAIRN_WORKER_CONCURRENCY: "4" });

    client = apiClient(stack.api);
    const { id: repositoryId } = await client.ok<{ id: string }>("POST", "/v1/repositories", { name: "pg", url: repo, password: PASSWORD });
    const hook = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/failover`;
    // The channel asks for failures only: a failover is sent to every channel of the plan whatever its `on`.
    ({ id: planId } = await client.ok<{ id: string }>("POST", "/v1/plans", { name: "cluster", repositoryId, source: { type: "postgres", mode: "physical", url: primary.url }, notifications: [{ type: "webhook", url: hook, secret, on: ["failure"] }] }));
    const { jobId } = await client.ok<{ jobId: string }>("POST", `/v1/plans/${planId}/run`);
    expect(await client.pollJob(jobId, (j) => j.status !== "running"), worker.log()).toMatchObject({ status: "completed" });
    port = await freePort();
  }, 300_000);

  afterAll(async () => {
    if (existsSync(path.join(standbyDir, "postmaster.pid"))) await asPostgres(path.join(PG_BIN, "pg_ctl"), ["-D", standbyDir, "-m", "immediate", "-w", "stop"]);
    await stack?.close();
    await worker?.stop();
    hooks?.close();
    await primary?.destroy();
    if (previousKey === undefined) delete process.env.CAIRN_SECRET_KEY;
    else process.env.CAIRN_SECRET_KEY = previousKey;
    tmp.cleanup();
  });

  const request = { fence: { dataDir: "" }, reason: "planned switch to the standby" };

  it("refuses standby \"workflow\" with 409 when the plan has no running standby workflow", async () => {
    const r = await client.call("POST", "/v1/failovers", { planId, standby: "workflow", ...request, fence: { dataDir: primary.pgdata } });
    expect(r.status).toBe(409);
    expect(JSON.stringify(r.body)).toContain("POST /v1/standbys");
  });

  it("releases the standby workflow, promotes its server (writable, never restarted by the loop) and sends the outcome to the plan's webhook", async () => {
    await client.ok("POST", "/v1/standbys", { planId, dataDir: standbyDir, port, pollSeconds: 1 });
    await waitFor("the standby to replay", async () => {
      const s = await standby();
      if (!s.running) throw new Error(`the standby ended: ${JSON.stringify(s)}\n${worker.log()}`);
      return s.phase === "replaying";
    }, 240_000);

    // A failover that stops at fencing (the hook says fenced, the old primary still answers): nothing is released
    // (the release comes just before the promotion), and the webhook hears of the failure.
    const refused = await client.ok<{ id: string }>("POST", "/v1/failovers", { planId, standby: "workflow", ...request, fence: { hook: ["/bin/true"] } });
    const failed = await followFailover(client, refused.id);
    expect(failed.status, JSON.stringify(failed)).toBe("failed");
    expect(failed.error).toContain("nothing was promoted");
    expect(await standby()).toMatchObject({ running: true, phase: "replaying" });
    await waitFor("the failed failover's notification", async () => received.some((r) => r.headers["x-cairn-event"] === "failover.failed"), 60_000);
    const failure = JSON.parse(received.find((r) => r.headers["x-cairn-event"] === "failover.failed")!.body);
    expect(failure).toMatchObject({ type: "failover", status: "failed", failoverId: refused.id, planId });
    expect(failure.error).toContain("still answers after fencing");
    expect(failure.steps.map((s: { name: string }) => s.name)).toEqual(["validate", "archive", "fence"]);
    // The archive step made the old primary read-only; undo that as the error says.
    await primary.sql("ALTER SYSTEM RESET default_transaction_read_only");
    await primary.sql("SELECT pg_reload_conf()");
    await waitFor("the old primary writable again", async () => {
      try {
        await primary.sql("INSERT INTO markers VALUES ('before-failover')");
        return true;
      } catch {
        return false;
      }
    });

    const { id } = await client.ok<{ id: string }>("POST", "/v1/failovers", { planId, standby: "workflow", ...request, fence: { dataDir: primary.pgdata } });
    const done = await followFailover(client, id);
    expect(done.status, `${JSON.stringify(done)}\n${worker.log()}`).toBe("completed");
    const result = done.result!;
    expect(result.newPrimary).toEqual({ host: "127.0.0.1", port });
    expect(result.steps.find((s) => s.name === "promote")!.outcome).toContain(`the standby workflow standby-${planId} released the standby`);
    expect(result.steps.find((s) => s.name === "notify")!.outcome).toBe("result recorded; sent to 1 of 1 notification channel");

    // The standby workflow ended released, naming the failover; PostgreSQL is the primary and takes writes.
    const released = await standby();
    expect(released).toMatchObject({ running: false, phase: "released", releasedTo: id, restarts: 0, dataDir: standbyDir, port });
    expect(released.events.at(-1)).toContain(`released to failover ${id}`);
    expect((await standbySql("SELECT pg_is_in_recovery()")).stdout).toBe("f");
    const write = await standbySql("INSERT INTO markers VALUES ('on-new-primary')");
    expect(write.code, write.stderr).toBe(0);
    // The old primary was stopped by the fence (its archived WAL replayed first).
    expect(existsSync(path.join(primary.pgdata, "postmaster.pid"))).toBe(false);
    expect((await standbySql("SELECT string_agg(note, ',' ORDER BY note) FROM markers")).stdout).toBe("base,before-failover,on-new-primary");

    // The webhook heard the outcome, signed, with RTO and RPO.
    await waitFor("the failover notification", async () => received.some((r) => r.headers["x-cairn-event"] === "failover.succeeded"), 60_000);
    const hook = received.find((r) => r.headers["x-cairn-event"] === "failover.succeeded")!;
    const t = Number(/t=(\d+)/.exec(String(hook.headers["x-cairn-signature"]))![1]);
    expect(hook.headers["x-cairn-signature"]).toBe(signBody(secret, hook.body, t));
    const event = JSON.parse(hook.body);
    expect(event).toMatchObject({ type: "failover", status: "succeeded", failoverId: id, planId, planName: "cluster", reason: "planned switch to the standby", newPrimary: { host: "127.0.0.1", port }, rtoMs: result.rtoMs, rpo: result.rpo });
    expect(event.steps.map((s: { name: string }) => s.name)).toEqual(["validate", "archive", "fence", "promote", "verify", "notify"]);
    expect(hook.body).not.toContain(PASSWORD);

    // Nothing watches the new primary any more: stopped by its operator, it stays stopped (the loop measured every second,
    // and a running loop starts a stopped standby again within about 2 s: pg-standby-e2e's restart, at load 6).
    const pid = postmasterPid(standbyDir);
    const stop = await asPostgres(path.join(PG_BIN, "pg_ctl"), ["-D", standbyDir, "-m", "fast", "-w", "stop"]);
    expect(stop.code, stop.stderr).toBe(0);
    expect(alive(pid)).toBe(false);
    await new Promise((r) => setTimeout(r, 4000));
    expect(existsSync(path.join(standbyDir, "postmaster.pid"))).toBe(false);
    expect((await standby()).restarts).toBe(0);
  }, 900_000);
});

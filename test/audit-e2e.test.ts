import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import * as path from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startApiServer, type ApiServer } from "../api/server.js";
import { chainHash } from "../db/audit-log.js";
import { apiClient } from "./api-client.js";
import { cairn, PASSWORD, tempDir } from "./helpers.js";

interface AuditEvent {
  seq: number;
  actorId: string | null;
  actorName: string | null;
  role: string | null;
  action: string;
  resource: string;
  outcome: string;
  source: string;
  requestId: string | null;
  details: Record<string, unknown>;
}

interface Verification {
  ok: boolean;
  events: number;
  firstBrokenSeq?: number;
  reason?: string;
  checkpoints: number;
}

const ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres";

/**
 * The audit log on a real PostgreSQL catalog (a database of its own on the shared
 * cluster, dropped after): events written by requests over HTTP, then tampered
 * with by someone who controls the database. Checkpoints are signed every 5 events.
 */
describe("audit log on PostgreSQL", () => {
  const tmp = tempDir("cairn-audit-");
  const dataDir = path.join(tmp.dir, "data");
  const dbName = `cairn_audit_${randomBytes(6).toString("hex")}`;
  const databaseUrl = `postgres://postgres@127.0.0.1:5432/${dbName}`;
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => undefined });
  let db: postgres.Sql;
  let api: ApiServer;
  let client: ReturnType<typeof apiClient>;

  const start = async () => {
    api = await startApiServer({ port: 0, dataDir, databaseUrl, temporalAddress: "127.0.0.1:1", adminToken: "audit-admin-token", audit: { checkpointEvery: 5 } });
    client = apiClient(api, "audit-admin-token");
  };
  const verifyCli = async () => {
    const r = await cairn(["audit", "verify", "--json", "--data-dir", dataDir], { env: { DATABASE_URL: databaseUrl } });
    return { code: r.code, result: JSON.parse(r.stdout) as Verification };
  };

  beforeAll(async () => {
    await admin.unsafe(`create database ${dbName}`);
    db = postgres(databaseUrl, { max: 1, onnotice: () => undefined });
    await start();
  });

  afterAll(async () => {
    await api?.close();
    await db?.end();
    await admin.unsafe(`drop database if exists ${dbName} with (force)`);
    await admin.end();
    tmp.cleanup();
  });

  it("records changes, refusals and failed logins with actor, outcome, source and request id, secrets redacted", async () => {
    const { id: viewerId, token: viewerToken } = await client.ok<{ id: string; token: string }>("POST", "/v1/tokens", { name: "watcher", role: "viewer" });
    const viewer = apiClient(api, viewerToken);
    expect((await viewer.call("POST", "/v1/tokens", { name: "escalate", role: "admin" })).status).toBe(403);
    expect((await apiClient(api, "not-a-token").call("GET", "/v1/plans")).status).toBe(401);
    // A password in a request is never written to the log.
    const secret = `pw-${randomBytes(8).toString("hex")}`;
    await client.call("POST", "/v1/repositories", { name: "audited", url: path.join(tmp.dir, "repo"), password: secret });
    expect((await client.call("DELETE", `/v1/tokens/${viewerId}`)).status).toBe(204);

    const { events } = await client.ok<{ events: AuditEvent[] }>("GET", "/v1/audit?limit=500");
    expect(JSON.stringify(events)).not.toContain(secret);
    expect(JSON.stringify(events)).not.toContain(viewerToken);

    const created = events.filter((e) => e.action === "createToken" && e.actorId === "env");
    expect(created.map((e) => e.outcome).sort()).toEqual(["attempted", "succeeded"]);
    expect(created.find((e) => e.outcome === "succeeded")).toMatchObject({ actorName: "CAIRN_API_TOKEN", role: "admin", resource: `tokens/${viewerId}`, source: "127.0.0.1" });
    expect(created[0].requestId).toBe(created[1].requestId);

    const refused = events.find((e) => e.action === "createToken" && e.outcome === "denied")!;
    expect(refused).toMatchObject({ actorId: viewerId, actorName: "watcher", role: "viewer", details: { status: 403 } });
    expect(refused.details.detail).toMatch(/tokens:manage/);

    const failedLogin = events.find((e) => e.outcome === "denied" && e.details.status === 401)!;
    expect(failedLogin).toMatchObject({ actorId: null, resource: "plans", source: "127.0.0.1" });

    const registration = events.find((e) => e.action === "createRepository" && e.outcome === "attempted")!;
    expect((registration.details.input as { password: string }).password).toBe("[redacted]");
    expect(events.filter((e) => e.action === "revokeToken").map((e) => e.outcome).sort()).toEqual(["attempted", "succeeded"]);

    const filtered = await client.ok<{ events: AuditEvent[] }>("GET", `/v1/audit?actor=watcher&outcome=denied`);
    expect(filtered.events.map((e) => e.seq)).toEqual([refused.seq]);
    const onToken = await client.ok<{ events: AuditEvent[] }>("GET", `/v1/audit?resource=tokens/${viewerId}`);
    expect(onToken.events.every((e) => e.resource === `tokens/${viewerId}`)).toBe(true);
    expect(onToken.events.length).toBeGreaterThanOrEqual(3);
  });

  it("verifies an intact log, through the API and with cairn audit verify", async () => {
    for (let i = 0; i < 6; i++) await client.ok("POST", "/v1/tokens", { name: `filler-${i}`, role: "viewer" });
    const viaApi = await client.ok<Verification>("POST", "/v1/audit/verify");
    expect(viaApi.ok).toBe(true);
    expect(viaApi.events).toBeGreaterThanOrEqual(20);
    expect(viaApi.checkpoints).toBeGreaterThanOrEqual(4);
    // Checkpoints are files of their own, write-once.
    expect(readdirSync(path.join(dataDir, "audit", "checkpoints")).length).toBe(viaApi.checkpoints);

    await api.close(); // signs the head; the catalog is PostgreSQL, so the CLI may read it while nothing runs
    const cli = await verifyCli();
    expect(cli.code).toBe(0);
    expect(cli.result).toMatchObject({ ok: true, events: viaApi.events });
  });

  it("is append-only for the API's own database user until the triggers are taken off", async () => {
    await expect(db.unsafe("update audit_events set outcome = 'succeeded' where seq = 3")).rejects.toThrow(/append-only/);
    await expect(db.unsafe("delete from audit_events where seq = 3")).rejects.toThrow(/append-only/);
    await expect(db.unsafe("truncate audit_events")).rejects.toThrow(/append-only/);
    // Whoever controls the database can do this, and everything below.
    await db.unsafe("alter table audit_events disable trigger user");
  });

  it("names the first broken sequence when one event is changed, one is deleted, or the tail is cut", async () => {
    const [original] = await db`select * from audit_events where seq = 4`;
    await db`update audit_events set outcome = 'succeeded', details = ${db.json({ method: "GET" })} where seq = 4`;
    let cli = await verifyCli();
    expect(cli.code).toBe(1);
    expect(cli.result).toMatchObject({ ok: false, firstBrokenSeq: 4 });
    expect(cli.result.reason).toMatch(/event 4 does not match its hash/);
    await db`update audit_events set outcome = ${original.outcome}, details = ${db.json(original.details)} where seq = 4`;
    expect((await verifyCli()).result.ok).toBe(true);

    const [seventh] = await db`select * from audit_events where seq = 7`;
    await db`delete from audit_events where seq = 7`;
    cli = await verifyCli();
    expect(cli.result).toMatchObject({ ok: false, firstBrokenSeq: 7 });
    expect(cli.result.reason).toMatch(/event 7 is missing/);
    await db`insert into audit_events (seq, time, actor_id, actor_name, role, action, resource, outcome, source, request_id, details, hash)
      values (${seventh.seq}, ${seventh.time}, ${seventh.actor_id}, ${seventh.actor_name}, ${seventh.role}, ${seventh.action}, ${seventh.resource}, ${seventh.outcome}, ${seventh.source}, ${seventh.request_id}, ${db.json(seventh.details)}, ${seventh.hash})`;
    expect((await verifyCli()).result.ok).toBe(true);

    const total = (await db`select count(*)::int as n from audit_events`)[0].n as number;
    await db`delete from audit_events where seq > 12`;
    cli = await verifyCli();
    expect(cli.result).toMatchObject({ ok: false, firstBrokenSeq: 13, events: 12 });
    expect(cli.result.reason).toMatch(/were removed/);
    expect(total).toBeGreaterThan(12);

    // The API says so in its log as it starts, and reports it the same way once it runs.
    const logged = vi.spyOn(console, "error").mockImplementation(() => undefined);
    try {
      await start();
      expect(logged).toHaveBeenCalledWith(expect.stringMatching(/the audit log has no event \d+, which the checkpoint signed at .* vouches for: events were removed/));
    } finally {
      logged.mockRestore();
    }
    const viaApi = await client.ok<Verification>("POST", "/v1/audit/verify");
    expect(viaApi).toMatchObject({ ok: false, firstBrokenSeq: 13 });
  });

  it("catches a rewrite that re-hashes every later event, through the signed checkpoints", async () => {
    await api.close();
    await db`delete from audit_events where seq > 12`; // what the API wrote since
    const rows = await db`select * from audit_events order by seq`;
    let previous: string | undefined;
    for (const row of rows) {
      const event = {
        seq: Number(row.seq),
        time: row.time as Date,
        actorId: row.actor_id,
        actorName: row.actor_name,
        role: row.role,
        action: row.action,
        resource: row.resource,
        outcome: Number(row.seq) === 9 ? "denied" : row.outcome,
        source: row.source,
        requestId: row.request_id,
        details: row.details,
      };
      const hash = chainHash(event, previous);
      await db`update audit_events set outcome = ${event.outcome}, hash = ${hash} where seq = ${event.seq}`;
      previous = hash;
    }
    const cli = await verifyCli();
    // The chain holds together; the checkpoint signed at event 10 does not: the break is after the one at 5.
    expect(cli.result).toMatchObject({ ok: false, firstBrokenSeq: 6 });
    expect(cli.result.reason).toMatch(/checkpoint/);
    await start();
  });
});

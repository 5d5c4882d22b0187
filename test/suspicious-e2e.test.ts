import { writeFileSync, mkdirSync } from "node:fs";
import * as path from "node:path";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiServer } from "../api/server.js";
import { apiClient } from "./api-client.js";
import { cairnOk, PASSWORD, tempDir } from "./helpers.js";
import { testPolicy } from "./policy-fixtures.js";
import { startStack, type Stack } from "./stack.js";

interface SecurityEvent {
  kind: string;
  tokenName: string | null;
  blocked: boolean;
  details: { lastHour: { requests: number; bytes: number }; exceeded: string };
}

/**
 * Unusual use of a token over HTTP: an API whose policy blocks a token once it
 * restores more than once an hour or reads more than 100 times, against a Temporal
 * dev server and a worker (which checks each restore and runs it, each into its own directory).
 */
describe("suspicious activity", () => {
  const tmp = tempDir("cairn-suspicious-");
  const dataDir = path.join(tmp.dir, "data");
  let stack: Stack;
  let api: ApiServer;
  let admin: ReturnType<typeof apiClient>;
  let repositoryId: string;

  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger("WARN") });
    const repo = path.join(tmp.dir, "repo");
    const src = path.join(tmp.dir, "src");
    mkdirSync(src);
    writeFileSync(path.join(src, "ledger.csv"), "x".repeat(10_000));
    await cairnOk(["-r", repo, "init"]);
    await cairnOk(["-r", repo, "backup", src]);
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, api: { activityLimits: { restoresPerHour: 1, readsPerHour: 100, block: true } } });
    api = stack.api;
    admin = apiClient(api);
    ({ id: repositoryId } = await admin.ok<{ id: string }>("POST", "/v1/repositories", { name: "books", url: repo, password: PASSWORD }));
  });

  afterAll(async () => {
    await stack?.close();
    tmp.cleanup();
  });

  it("raises a security event when a token restores more than allowed, and blocks it by policy", async () => {
    const { token } = await admin.ok<{ token: string }>("POST", "/v1/tokens", { name: "exfil", role: "operator" });
    const operator = apiClient(api, token);
    const restore = (n: number) => operator.call<{ detail: string }>("POST", "/v1/restores", { repositoryId, snapshotId: "latest", target: path.join(tmp.dir, `out-${n}`) });
    expect((await restore(1)).status).toBe(202);
    expect((await restore(2)).status).toBe(202); // the one that crosses the limit still went through
    const blocked = await restore(3);
    expect(blocked.status).toBe(429);
    expect(blocked.body.detail).toMatch(/CAIRN_BLOCK_SUSPICIOUS/);

    const { events } = await admin.ok<{ events: SecurityEvent[] }>("GET", "/v1/security/events?kind=restore-volume");
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ tokenName: "exfil", blocked: true, details: { lastHour: { requests: 2, bytes: 20_000 }, exceeded: "more than 1 restores an hour" } });
    // The same token may still read; other tokens may still restore.
    expect((await operator.call("GET", "/v1/plans")).status).toBe(200);
    expect((await admin.call("POST", "/v1/restores", { repositoryId, snapshotId: "latest", target: path.join(tmp.dir, "out2") })).status).toBe(202);
    // The refusal is in the audit log like any other.
    const { events: audited } = await admin.ok<{ events: { action: string; outcome: string; details: { status: number } }[] }>("GET", "/v1/audit?actor=exfil&action=createRestore&outcome=denied");
    expect(audited.map((e) => e.details.status)).toEqual([429]);
  });

  it("raises one when a token reads far more than usual (more than 100 times an hour)", async () => {
    const { token } = await admin.ok<{ token: string }>("POST", "/v1/tokens", { name: "scraper", role: "viewer" });
    const viewer = apiClient(api, token);
    // Status polling (a dashboard watching jobs and plans) is not what the watch counts.
    for (let i = 0; i < 120; i++) expect((await viewer.call("GET", "/v1/plans")).status).toBe(200);
    for (let i = 0; i < 101; i++) expect((await viewer.call("GET", "/v1/repositories")).status).toBe(200);
    const refused = await viewer.call("GET", "/v1/repositories");
    expect(refused.status).toBe(429);
    expect((await viewer.call("GET", "/v1/plans")).status).toBe(200);
    const { events } = await admin.ok<{ events: SecurityEvent[] }>("GET", "/v1/security/events?kind=read-volume");
    expect(events.filter((e) => e.tokenName === "scraper")).toEqual([expect.objectContaining({ blocked: true, details: expect.objectContaining({ exceeded: "more than 100 reads an hour" }) })]);
  });
});

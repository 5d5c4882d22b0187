import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { ApplicationFailure } from "@temporalio/common";
import { afterAll, describe, expect, it } from "vitest";
import { SecretBox } from "../engine/secret-box.js";
import { loadPolicy } from "../policy/policy.js";
import { PERMANENT_FAILURES, type FailoverInput } from "../workflows/messages.js";
import { failoverActivities } from "./failover.js";

/**
 * The failover's connections are judged by the execution policy on the worker before
 * anything is reached: the plan's server (the old primary) and PgBouncer's admin console.
 * Nothing listens at these addresses: a refusal is the policy's, not a failed connection.
 */
describe("failover activities and the execution policy", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "cairn-failover-act-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const secretBox = new SecretBox(SecretBox.generateKey());
  // Loopback is not allowed (the default): 127.0.0.1 stands for a host the operator did not allow.
  const policy = loadPolicy({ env: { CAIRN_FAILOVER_PATHS: dir, CAIRN_RESTORE_ROOTS: dir, CAIRN_REPOSITORY_ROOTS: dir }, dataDir: path.join(dir, "data") });
  const activities = failoverActivities({ secretBox, policy });
  const input = (more: Partial<FailoverInput> = {}): FailoverInput => ({
    planId: "p1",
    planName: "primary",
    repository: { url: path.join(dir, "repo"), password: "x" } as unknown as FailoverInput["repository"],
    source: { type: "postgres", mode: "physical", url: "postgresql://backup@127.0.0.1:1/postgres", sealedPassword: secretBox.seal("secret") } as FailoverInput["source"],
    standby: { dataDir: path.join(dir, "standby"), port: 2 },
    fence: { dataDir: path.join(dir, "old") },
    reason: "test",
    ...more,
  });

  const refusal = async (run: Promise<unknown>) => {
    const err = await run.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe(PERMANENT_FAILURES.policyRefused);
    return (err as ApplicationFailure).message;
  };

  it("refuses an old primary whose address the policy does not allow, before connecting to it", async () => {
    expect(await refusal(activities.validateFailover(input()))).toContain("127.0.0.1");
  });

  it("refuses PgBouncer's admin console on an address the policy does not allow", async () => {
    const cutover = { type: "pgbouncer" as const, configFile: path.join(dir, "pgbouncer.ini"), database: "bench", adminUrl: "postgresql://admin@127.0.0.2:6432/pgbouncer" };
    expect(await refusal(activities.validateFailover(input({ cutover })))).toContain("127.0.0.2");
  });
});

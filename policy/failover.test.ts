import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { failoverPathRefusal, hookRefusal } from "./failover.js";
import { loadPolicy } from "./policy.js";

describe("what a failover may run and touch", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "cairn-failover-policy-"));
  const hook = path.join(dir, "fence.sh");
  writeFileSync(hook, "#!/bin/sh\nexit 0\n");
  symlinkSync("/bin/true", path.join(dir, "looks-allowed"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const policy = loadPolicy({ env: { CAIRN_HOOK_COMMANDS: `${hook}:${path.join(dir, "looks-allowed")}`, CAIRN_FAILOVER_PATHS: path.join(dir, "pg") }, dataDir: path.join(dir, "data") });

  it("runs only the hook programs the policy lists, by the same absolute path", () => {
    expect(hookRefusal(policy, hook)).toBeUndefined();
    expect(hookRefusal(policy, path.join(dir, "x", "..", "fence.sh"))).toBeUndefined();
    expect(hookRefusal(policy, "/bin/false")?.message).toMatch(/not one of the hook commands .*CAIRN_HOOK_COMMANDS=.*add its absolute path there/);
    // /bin/true is what the listed link leads to, but it is not listed itself.
    expect(hookRefusal(policy, "/bin/true")?.rule).toBe("hookCommands");
    expect(hookRefusal(policy, "fence.sh")?.message).toContain("is not an absolute path");
  });

  it("acts only on data directories and configuration files under the failover paths", async () => {
    expect(await failoverPathRefusal(policy, "the standby's data directory", path.join(dir, "pg", "standby"))).toBeUndefined();
    const refusal = await failoverPathRefusal(policy, "PgBouncer's configuration", "/etc/pgbouncer/pgbouncer.ini");
    expect(refusal?.rule).toBe("failoverPaths");
    expect(refusal?.message).toMatch(/PgBouncer's configuration \/etc\/pgbouncer\/pgbouncer.ini is not under the paths failovers may act on \(CAIRN_FAILOVER_PATHS=.*\); add it there/);
    // By default nothing: a failover needs the operator to say where.
    const none = loadPolicy({ env: {}, dataDir: path.join(dir, "data") });
    expect(none.failoverPaths).toEqual([]);
    expect(none.hookCommands).toEqual([]);
    expect((await failoverPathRefusal(none, "the old primary's data directory", "/var/lib/postgresql/15/main"))?.message).toContain("CAIRN_FAILOVER_PATHS unset: (none)");
  });
});

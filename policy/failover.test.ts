import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { hookRefusal } from "./failover.js";
import { pathRefusal, realPathRefusal } from "./paths.js";
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
    expect(await realPathRefusal(policy, "failover", path.join(dir, "pg", "standby"), "the standby's data directory")).toBeUndefined();
    expect(pathRefusal(policy, "failover", path.join(dir, "pg", "standby"), "the standby's data directory")).toBeUndefined();
    const refusal = await realPathRefusal(policy, "failover", "/etc/pgbouncer/pgbouncer.ini", "PgBouncer's configuration");
    expect(refusal?.rule).toBe("failoverPaths");
    expect(refusal?.message).toMatch(/PgBouncer's configuration \/etc\/pgbouncer\/pgbouncer.ini is outside the allowed failover paths \(CAIRN_FAILOVER_PATHS=.*\); add it there/);
    expect(pathRefusal(policy, "failover", "/etc/pgbouncer/pgbouncer.ini", "PgBouncer's configuration")?.rule).toBe("failoverPaths");
    expect(pathRefusal(policy, "failover", "pg/standby", "the standby's data directory")?.message).toBe("the standby's data directory pg/standby is not an absolute path; give it as one");
    // By default nothing: a failover needs the operator to say where.
    const none = loadPolicy({ env: {}, dataDir: path.join(dir, "data") });
    expect(none.failoverPaths).toEqual([]);
    expect(none.hookCommands).toEqual([]);
    expect((await realPathRefusal(none, "failover", "/var/lib/postgresql/15/main", "the old primary's data directory"))?.message).toContain("CAIRN_FAILOVER_PATHS unset: (none)");
  });

  it("never acts on a protected path, even one the failover paths cover", async () => {
    // The operator's failover paths take in the platform's data directory: its secret key, catalog and the directory itself stay out of reach.
    const wide = loadPolicy({ env: { CAIRN_FAILOVER_PATHS: dir }, dataDir: path.join(dir, "data") });
    const key = path.join(dir, "data", "secret.key");
    for (const refusal of [pathRefusal(wide, "failover", key, "PgBouncer's configuration"), await realPathRefusal(wide, "failover", key, "PgBouncer's configuration")]) {
      expect(refusal?.rule).toBe("never");
      expect(refusal?.message).toContain(`PgBouncer's configuration ${key} would write over the platform secret key`);
    }
    expect((await realPathRefusal(wide, "failover", path.join(dir, "data", "catalog"), "the standby's data directory"))?.rule).toBe("never");
    expect((await realPathRefusal(wide, "failover", dir, "the old primary's data directory"))?.message).toMatch(/would write over the data directory/);
    // A link under the failover paths to the key is refused by what it really names.
    mkdirSync(path.join(dir, "data"), { recursive: true });
    writeFileSync(key, "not a real key\n");
    symlinkSync(key, path.join(dir, "pgbouncer.ini"));
    const linked = await realPathRefusal(wide, "failover", path.join(dir, "pgbouncer.ini"), "PgBouncer's configuration");
    expect(linked?.rule).toBe("never");
    expect(linked?.message).toContain("(really ");
    // Elsewhere under them a failover still acts.
    expect(await realPathRefusal(wide, "failover", path.join(dir, "pg", "standby"), "the standby's data directory")).toBeUndefined();
  });
});

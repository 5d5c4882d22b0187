import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { tempDir } from "../test/helpers.js";
import { pathRefusal } from "./paths.js";
import { describeSetting, loadPolicy } from "./policy.js";

const scratch = tempDir("cairn-policy-");
afterAll(() => scratch.cleanup());
const dataDir = path.join(scratch.dir, ".cairn");

describe("loadPolicy", () => {
  it("has safe defaults: no /etc or /root to read, restores under the data directory, no loopback or private destinations, no owners or setid bits", () => {
    const policy = loadPolicy({ env: { HOME: "/root" }, dataDir });
    for (const root of ["/home", "/srv", "/var/www", "/var/lib"]) expect(policy.sourceRoots).toContain(root);
    expect(policy.sourceRoots.some((r) => r === "/etc" || r === "/root" || r === "/")).toBe(false);
    expect(policy.restoreRoots).toEqual([path.join(dataDir, "restores")]);
    expect(policy.repositoryRoots).toContain(path.join(dataDir, "repositories"));
    expect(policy.destinationKinds).toEqual(["local", "s3", "sftp", "azure", "gs"]);
    expect(policy.destinationHosts).toEqual(["*"]);
    expect(policy).toMatchObject({ allowLoopback: false, allowPrivateNetworks: false, restoreOwners: false, restoreSetid: false });
    const guarded = policy.protectedPaths.map((p) => p.path);
    for (const p of [dataDir, path.join(dataDir, "secret.key"), path.join(dataDir, "catalog"), path.join(dataDir, "temporal.db"), "/proc", "/root/.ssh", "/root/.aws"]) expect(guarded).toContain(p);
    expect(describeSetting(policy, "sourceRoots")).toBe("CAIRN_SOURCE_ROOTS unset: /home:/srv:/var/www:/var/lib");
  });

  it("reads the variables, which win over the policy file", () => {
    const file = path.join(scratch.dir, "policy.json");
    writeFileSync(file, JSON.stringify({ sourceRoots: ["/data", "/opt/app"], restoreRoots: ["/restores"], allowLoopback: true, destinationHosts: ["minio.internal"] }));
    const policy = loadPolicy({
      env: { CAIRN_POLICY_FILE: file, CAIRN_SOURCE_ROOTS: "/srv/www:/home/app/", CAIRN_DESTINATION_KINDS: "s3, sftp", CAIRN_RESTORE_SETID: "yes", CAIRN_PROTECTED_PATHS: "/srv/www/secrets" },
      dataDir,
    });
    expect(policy.sourceRoots).toEqual(["/srv/www", "/home/app"]);
    expect(policy.restoreRoots).toEqual(["/restores"]);
    expect(policy.destinationKinds).toEqual(["s3", "sftp"]);
    expect(policy.destinationHosts).toEqual(["minio.internal"]);
    expect(policy).toMatchObject({ allowLoopback: true, restoreSetid: true, restoreOwners: false });
    expect(policy.protectedPaths.map((p) => p.path)).toEqual(expect.arrayContaining([file, "/srv/www/secrets"]));
    expect(describeSetting(policy, "sourceRoots")).toBe("CAIRN_SOURCE_ROOTS=/srv/www:/home/app");
    expect(describeSetting(policy, "restoreRoots")).toBe(`"restoreRoots" in ${file}: /restores`);
  });

  it("takes an empty variable as an empty list: nothing may be backed up", () => {
    expect(loadPolicy({ env: { CAIRN_SOURCE_ROOTS: "" }, dataDir }).sourceRoots).toEqual([]);
  });

  it("refuses to start on values it cannot read, naming the variable or key", () => {
    expect(() => loadPolicy({ env: { CAIRN_SOURCE_ROOTS: "srv" }, dataDir })).toThrow(/CAIRN_SOURCE_ROOTS: "srv" is not an absolute directory/);
    expect(() => loadPolicy({ env: { CAIRN_DESTINATION_KINDS: "ftp" }, dataDir })).toThrow(/CAIRN_DESTINATION_KINDS: "ftp" is not a kind/);
    expect(() => loadPolicy({ env: { CAIRN_DESTINATION_HOSTS: "10.0.0.0/99" }, dataDir })).toThrow(/CAIRN_DESTINATION_HOSTS: "10.0.0.0\/99" is not a host rule/);
    expect(() => loadPolicy({ env: { CAIRN_ALLOW_LOOPBACK: "maybe" }, dataDir })).toThrow(/CAIRN_ALLOW_LOOPBACK must be true or false/);
    const file = path.join(scratch.dir, "bad.json");
    writeFileSync(file, JSON.stringify({ sourceRoot: ["/srv"] }));
    expect(() => loadPolicy({ env: { CAIRN_POLICY_FILE: file }, dataDir })).toThrow(/unknown keys sourceRoot/);
    expect(() => loadPolicy({ env: { CAIRN_POLICY_FILE: path.join(scratch.dir, "missing.json") }, dataDir })).toThrow(/cannot read the policy file/);
  });

  it("gives recovery drills one scratch directory, <data dir>/drills unless CAIRN_DRILL_DIR moves it, and lets them write nowhere else", () => {
    const policy = loadPolicy({ env: {}, dataDir });
    expect(policy.drillDir).toBe(path.join(dataDir, "drills"));
    expect(pathRefusal(policy, "drill", path.join(dataDir, "drills", "drill-1"))).toBeUndefined();
    const outside = pathRefusal(policy, "drill", "/var/lib/postgresql/15/main");
    expect(outside?.rule).toBe("drillDir");
    expect(outside?.message).toContain(`CAIRN_DRILL_DIR unset: ${path.join(dataDir, "drills")}`);
    expect(pathRefusal(policy, "drill", dataDir)?.rule).toBe("never");
    expect(loadPolicy({ env: { CAIRN_DRILL_DIR: "/scratch/drills" }, dataDir }).drillDir).toBe("/scratch/drills");
    expect(() => loadPolicy({ env: { CAIRN_DRILL_DIR: "/a:/b" }, dataDir })).toThrow("CAIRN_DRILL_DIR must name one directory");
  });
});

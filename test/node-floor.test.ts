/**
 * The Node.js versions Cairn promises against what its locked packages ask. npm
 * refuses to install (`engine-strict=true` in .npmrc) a package whose `engines`
 * the running Node does not satisfy, so a dependency update that raises its own
 * floor above package.json's must fail here, not on a user's fresh install.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { CLI, ROOT, tempDir } from "./helpers.js";

// npm's own range reader (installed with the toolchain; no types of its own here).
const semver = createRequire(import.meta.url)("semver") as { minVersion(range: string): { version: string } | null; satisfies(version: string, range: string): boolean };

interface LockedPackage {
  version?: string;
  engines?: { node?: string } | string[];
}

const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { engines: { node: string } };
const lock = JSON.parse(readFileSync(path.join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, LockedPackage & { engines?: unknown }> };
const floor = semver.minVersion(pkg.engines.node)!.version;

describe("the Node.js floor", () => {
  it("is one every locked package accepts, and the lock's own root says the same", () => {
    const refusing = Object.entries(lock.packages)
      .filter(([name, p]) => name !== "" && p.engines && !Array.isArray(p.engines) && typeof p.engines.node === "string" && !semver.satisfies(floor, p.engines.node))
      .map(([name, p]) => `${name.replace(/^.*node_modules\//, "")}@${p.version} needs node ${(p.engines as { node: string }).node}`);
    expect(refusing, `package.json engines.node is "${pkg.engines.node}" (from ${floor})`).toEqual([]);
    expect((lock.packages[""].engines as { node: string }).node).toBe(pkg.engines.node);
    expect(readFileSync(path.join(ROOT, ".npmrc"), "utf8")).toMatch(/^engine-strict=true$/m);
  });

  it("is what scripts/node.sh checks, and the Node 22 it installs is past it", () => {
    const script = readFileSync(path.join(ROOT, "scripts", "node.sh"), "utf8");
    expect(script).toContain(`floor=${floor}\n`);
    const pinned22 = /^\s*22\) echo (\S+) ;;$/m.exec(script)![1];
    expect(semver.satisfies(pinned22, pkg.engines.node)).toBe(true);

    // A stand-in `node` answering a version, first on PATH: --check takes the floor, not just the major.
    const tmp = tempDir("cairn-node-floor-");
    try {
      const check = (version: string) => {
        writeFileSync(path.join(tmp.dir, "node"), `#!/bin/sh\necho ${version}\n`);
        chmodSync(path.join(tmp.dir, "node"), 0o755);
        return spawnSync("bash", [path.join(ROOT, "scripts", "node.sh"), "--check"], { env: { ...process.env, PATH: `${tmp.dir}:${process.env.PATH}` }, encoding: "utf8" });
      };
      const [major, minor] = floor.split(".").map(Number);
      for (const older of ["20.19.0", `${major}.${minor - 1}.9`]) {
        const refused = check(older);
        expect(refused.status, older).toBe(1);
        expect(refused.stderr).toContain(`Cairn needs Node.js ${floor} or newer`);
      }
      for (const newer of [floor, "24.0.0"]) expect(check(newer).status, newer).toBe(0);
    } finally {
      tmp.cleanup();
    }
  });
  it("is what bin/cairn.js checks before loading anything, refusing an older Node with what to do", () => {
    expect(readFileSync(CLI, "utf8")).toContain(`const FLOOR = "${floor}";`);
    // This node made to say it is older (process.versions, read-only, redefined before the
    // CLI starts): the CLI must refuse before it loads a module, with exit code 1.
    const pretend = (version: string) => {
      const preload = `data:text/javascript,Object.defineProperty(process, "versions", { value: { ...process.versions, node: ${JSON.stringify(version)} } });`;
      return spawnSync(process.execPath, ["--import", preload, CLI, "--version"], { encoding: "utf8" });
    };
    const [major, minor] = floor.split(".").map(Number);
    for (const older of ["20.19.0", `${major}.${minor - 1}.9`]) {
      const refused = pretend(older);
      expect(refused.status, older).toBe(1);
      expect(refused.stderr).toContain(`Cairn needs Node.js ${floor} or newer; this is`);
      expect(refused.stderr).toContain("scripts/node.sh");
      expect(refused.stdout).toBe("");
    }
    const ok = pretend(floor);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

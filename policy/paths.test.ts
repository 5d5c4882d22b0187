import { linkSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { lstat } from "node:fs/promises";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { tempDir } from "../test/helpers.js";
import { pathRefusal, readGuard, realPathRefusal } from "./paths.js";
import { loadPolicy } from "./policy.js";

const scratch = tempDir("cairn-policy-paths-");
afterAll(() => scratch.cleanup());
const root = (...p: string[]) => path.join(scratch.dir, ...p);
const dataDir = root("allowed", ".cairn");
mkdirSync(dataDir, { recursive: true });
writeFileSync(path.join(dataDir, "secret.key"), "the key\n");
mkdirSync(root("allowed", "www"), { recursive: true });
mkdirSync(root("outside"), { recursive: true });
mkdirSync(root("restores"), { recursive: true });
writeFileSync(root("outside", "sentinel"), "outside");
symlinkSync(root("outside"), root("allowed", "escape"));
symlinkSync(root("allowed", "www"), root("allowed", "inner"));
linkSync(path.join(dataDir, "secret.key"), root("allowed", "www", "key-twin"));
const policy = loadPolicy({ env: { CAIRN_SOURCE_ROOTS: root("allowed"), CAIRN_RESTORE_ROOTS: root("restores") }, dataDir });

describe("paths a plan may read", () => {
  it("refuses what lies outside the source roots, also through ..", () => {
    expect(pathRefusal(policy, "source", root("allowed", "www"))).toBeUndefined();
    expect(pathRefusal(policy, "source", "/etc")?.message).toBe(`source /etc is outside the allowed source roots (CAIRN_SOURCE_ROOTS=${root("allowed")}); add it there to allow it`);
    expect(pathRefusal(policy, "source", root("allowed", "..", "outside"))?.rule).toBe("sourceRoots");
    expect(pathRefusal(policy, "source", `${root("allowed")}-not`)?.rule).toBe("sourceRoots");
  });

  it("never allows the data directory or the secret key, whatever the roots", () => {
    const refusal = pathRefusal(policy, "source", path.join(dataDir, "secret.key"));
    expect(refusal?.rule).toBe("never");
    expect(refusal?.message).toMatch(/inside the platform secret key|inside the data directory/);
    expect(pathRefusal(loadPolicy({ env: { CAIRN_SOURCE_ROOTS: "/" }, dataDir }), "source", "/proc/self/environ")?.rule).toBe("never");
  });

  it("follows links: a link out of a root is refused, one that stays inside is not", async () => {
    expect(pathRefusal(policy, "source", root("allowed", "escape"))).toBeUndefined();
    const refusal = await realPathRefusal(policy, "source", root("allowed", "escape"));
    expect(refusal?.message).toMatch(new RegExp(`really ${root("outside")}.*outside the allowed source roots`));
    expect(await realPathRefusal(policy, "source", root("allowed", "escape", "not-yet"))).toBeDefined();
    expect(await realPathRefusal(policy, "source", root("allowed", "inner"))).toBeUndefined();
    expect(await realPathRefusal(policy, "source", root("allowed", "www", "not-yet", "deeper"))).toBeUndefined();
  });

  it("guards the archiver entry by entry, recognising a hard link to the secret key", async () => {
    const guard = await readGuard(policy, "source");
    const twin = await lstat(root("allowed", "www", "key-twin"), { bigint: true });
    expect(guard(root("allowed", "www", "key-twin"), twin)).toMatch(/the platform secret key .* under another name/);
    const plain = await lstat(root("allowed", "www"), { bigint: true });
    expect(guard(root("allowed", "www"), plain)).toBeUndefined();
    expect(guard(root("outside", "sentinel"), plain)).toMatch(/outside the allowed source roots/);
    expect(guard(path.join(dataDir, "catalog"), plain)).toMatch(/no plan may read/);
  });
});

describe("paths a restore may write", () => {
  it("allows the restore roots only, and never over the worker's state", async () => {
    expect(pathRefusal(policy, "restore", root("restores", "site"))).toBeUndefined();
    expect(pathRefusal(policy, "restore", root("allowed", "www"))?.message).toMatch(/restore target .* is outside the allowed restore roots \(CAIRN_RESTORE_ROOTS=/);
    const wide = loadPolicy({ env: { CAIRN_RESTORE_ROOTS: "/" }, dataDir });
    expect(pathRefusal(wide, "restore", root("allowed"))?.message).toMatch(/would write over the data directory/);
    expect(pathRefusal(wide, "restore", path.join(dataDir, "catalog", "x"))?.message).toMatch(/inside the catalog/);
    expect(pathRefusal(wide, "restore", path.join(dataDir, "restores", "x"))).toBeUndefined();
    symlinkSync(root("outside"), root("restores", "escape"));
    expect((await realPathRefusal(policy, "restore", root("restores", "escape", "x")))?.rule).toBe("restoreRoots");
  });
});

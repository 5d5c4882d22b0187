import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { cairn, cairnOk, tempDir } from "./helpers.js";

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Total bytes of the files under a directory. */
function du(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? du(p) : statSync(p).size;
  }
  return n;
}

describe("forget and prune (CLI, local repository)", () => {
  let tmp: ReturnType<typeof tempDir>;
  let src: string;
  let repo: string;
  const r = (...args: string[]) => ["-r", repo, ...args];

  beforeEach(async () => {
    tmp = tempDir();
    src = path.join(tmp.dir, "src");
    repo = path.join(tmp.dir, "repo");
    mkdirSync(src);
    await cairnOk(r("init"));
  });
  afterEach(() => tmp.cleanup());

  /** Writes a file of random bytes (below the chunker's minimum, so one blob) and returns its SHA-256. */
  const write = (name: string, size = 400_000) => {
    const bytes = randomBytes(size);
    writeFileSync(path.join(src, name), bytes);
    return sha256(bytes);
  };
  const backup = async (...extra: string[]) => JSON.parse((await cairnOk(r("backup", src, "--json", ...extra))).stdout).id as string;
  const snapshotIds = async () => (JSON.parse((await cairnOk(r("snapshots", "--json"))).stdout) as { id: string }[]).map((s) => s.id).sort();

  /** Restores a snapshot with --verify and returns the SHA-256 of each restored file. */
  const restore = async (id: string) => {
    const target = path.join(tmp.dir, `restore-${id.slice(0, 8)}-${randomBytes(3).toString("hex")}`);
    await cairnOk(r("restore", id, "--target", target, "--verify"));
    const dir = path.join(target, src);
    return Object.fromEntries(readdirSync(dir).map((name) => [name, sha256(readFileSync(path.join(dir, name)))]));
  };

  const expectCheckPasses = async () => {
    const report = JSON.parse((await cairnOk(r("check", "--read-data", "--json"))).stdout);
    expect(report.errors).toEqual([]);
    expect(report.warnings).toEqual([]);
  };

  it("forgets older snapshots, prune frees their space, and the kept ones restore byte-identical", async () => {
    write("a.bin");
    const s1 = await backup();
    rmSync(path.join(src, "a.bin"));
    const b = write("b.bin");
    const s2 = await backup();
    const c = write("c.bin");
    const s3 = await backup();

    const forgot = JSON.parse((await cairnOk(r("forget", "--keep-last", "2", "--json"))).stdout);
    expect(forgot.removed).toEqual([s1]);
    expect(forgot.groups).toHaveLength(1);
    expect(forgot.groups[0].keep.map((k: { id: string; reasons: string[] }) => [k.id, k.reasons])).toEqual([
      [s3, ["last"]],
      [s2, ["last"]],
    ]);
    expect(await snapshotIds()).toEqual([s2, s3].sort());

    const before = du(path.join(repo, "data"));
    const pruned = JSON.parse((await cairnOk(r("prune", "--json"))).stdout);
    expect(pruned.bytes.freed).toBeGreaterThan(390_000); // a.bin, which only s1 had
    const after = du(path.join(repo, "data"));
    expect(after).toBe(before - pruned.bytes.freed);
    expect(readdirSync(path.join(repo, "index"))).toHaveLength(1);

    expect(await restore(s2)).toEqual({ "b.bin": b });
    expect(await restore(s3)).toEqual({ "b.bin": b, "c.bin": c });
    await expectCheckPasses();
  });

  it("repacks a partly used pack when the unused share exceeds --max-unused", async () => {
    const a = write("a.bin");
    write("b.bin");
    const s1 = await backup(); // a.bin and b.bin share one pack
    rmSync(path.join(src, "b.bin"));
    const s2 = await backup();
    await cairnOk(r("forget", "--keep-last", "1"));
    expect(await snapshotIds()).toEqual([s2]);
    expect(s1).not.toBe(s2);

    const tolerated = JSON.parse((await cairnOk(r("prune", "--max-unused", "unlimited", "--json"))).stdout);
    expect(tolerated.packs.repacked).toBe(0);
    expect(tolerated.bytes.unusedAfter).toBeGreaterThan(390_000);

    const before = du(path.join(repo, "data"));
    const repacked = JSON.parse((await cairnOk(r("prune", "--max-unused", "5%", "--json"))).stdout);
    expect(repacked.packs.repacked).toBe(1);
    expect(repacked.bytes.unusedAfter).toBe(0);
    expect(du(path.join(repo, "data"))).toBeLessThan(before - 390_000);

    expect(await restore(s2)).toEqual({ "a.bin": a });
    await expectCheckPasses();
  });

  it("forget --prune does both under one lock; --dry-run changes nothing", async () => {
    write("a.bin");
    await backup("--tag", "release");
    rmSync(path.join(src, "a.bin"));
    write("b.bin");
    const middle = await backup();
    rmSync(path.join(src, "b.bin"));
    const c = write("c.bin");
    const newest = await backup();
    const release = (await snapshotIds()).find((id) => id !== middle && id !== newest)!;
    const size = du(repo);

    const dry = JSON.parse((await cairnOk(r("forget", "--keep-last", "1", "--keep-tag", "release", "--prune", "--dry-run", "--json"))).stdout);
    expect(dry.dryRun).toBe(true);
    expect(dry.removed).toEqual([middle]);
    expect(dry.prune.dryRun).toBe(true);
    expect(dry.prune.bytes.freed).toBeGreaterThan(390_000);
    expect(du(repo)).toBe(size);
    expect(await snapshotIds()).toHaveLength(3);

    const text = (await cairnOk(r("forget", "--keep-last", "1", "--keep-tag", "release", "--prune"))).stdout;
    expect(text).toMatch(/keep 2:/);
    expect(text).toMatch(/tag release/);
    expect(text).toMatch(/removed 1 snapshot$/m);
    expect(await snapshotIds()).toEqual([release, newest].sort());
    expect(du(path.join(repo, "data"))).toBeLessThan(size - 390_000);
    expect(await restore(newest)).toEqual({ "c.bin": c });
    expect(Object.keys(await restore(release))).toEqual(["a.bin"]);
    await expectCheckPasses();
  });

  it("refuses a forget without any --keep-* option and removes nothing", async () => {
    write("a.bin");
    await backup();
    const res = await cairn(r("forget"));
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/no retention policy given.*--keep-daily 7/);
    expect(await snapshotIds()).toHaveLength(1);
    expect(existsSync(path.join(repo, "locks")) ? readdirSync(path.join(repo, "locks")) : []).toEqual([]);
  });
});

import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Change } from "../engine/diff.js";
import type { RepositoryStats } from "../cli/cmd_stats.js";
import { cairnOk, tempDir } from "./helpers.js";

describe("stats and diff (CLI, local repository)", () => {
  const tmp = tempDir("cairn-stats-");
  const src = path.join(tmp.dir, "src");
  const repo = path.join(tmp.dir, "repo");
  const r = (...args: string[]) => ["-r", repo, ...args];
  const put = (name: string, content: string | Buffer) => {
    mkdirSync(path.dirname(path.join(src, name)), { recursive: true });
    writeFileSync(path.join(src, name), content);
  };
  const files = {
    "noise.bin": randomBytes(1536 * 1024),
    "text.txt": Buffer.from("the same sentence, over and over again\n".repeat(30_000)),
    "docs/readme.md": Buffer.from("# readme\n"),
    "docs/old.md": Buffer.from("going away\n"),
    "becomes-dir": Buffer.from("a file for now\n"),
  };
  const fileBytes = Object.values(files).reduce((n, b) => n + b.length, 0);
  const ids: string[] = [];
  const backup = async () => ids.push(JSON.parse((await cairnOk(r("backup", src, "--json"))).stdout).id);
  const stats = async (...refs: string[]) => JSON.parse((await cairnOk(r("stats", "--json", ...refs))).stdout) as RepositoryStats;
  const diff = async (a: string, b: string) => JSON.parse((await cairnOk(r("diff", a, b, "--json"))).stdout) as { changes: Change[]; totals: Record<string, number> };

  beforeAll(async () => {
    for (const [name, content] of Object.entries(files)) put(name, content);
    await cairnOk(r("init"));
    await backup();
    await backup();
  });
  afterAll(() => tmp.cleanup());

  it("counts the same tree backed up twice once in raw data: dedup ratio about 2", async () => {
    const both = await stats();
    expect(both.snapshots).toBe(2);
    expect(both.restoreSize).toBe(2 * fileBytes);
    // Raw data is the file bytes once, plus a few small tree blobs.
    expect(both.rawData).toBeGreaterThanOrEqual(fileBytes);
    expect(both.rawData).toBeLessThan(fileBytes + 64 * 1024);
    expect(both.dedupRatio).toBeCloseTo(2, 1);
    expect(both.dedupRatio).toBeLessThanOrEqual(2);
    // The text compresses, the noise does not: stored is well below raw, and all of it is in the packs.
    expect(both.compressionRatio).toBeGreaterThan(1.3);
    expect(both.storedSize).toBeLessThanOrEqual(both.packBytes);
    expect(both.packs).toBeGreaterThanOrEqual(2);
    expect(both.dataBlobs).toBeGreaterThanOrEqual(Object.keys(files).length);

    const one = await stats(ids[0]);
    expect(one.snapshots).toBe(1);
    expect(one.restoreSize).toBe(fileBytes);
    expect(one.rawData).toBeGreaterThanOrEqual(fileBytes);
    expect(one.rawData).toBeLessThanOrEqual(both.rawData);
    expect(one.dedupRatio).toBeCloseTo(1, 1);
    expect(one.packBytes).toBe(both.packBytes);

    const text = (await cairnOk(r("stats"))).stdout;
    expect(text).toMatch(/dedup ratio:\s+(1\.99|2\.00)x/);
  });

  it("lists exactly the added, removed, modified and retyped files between two snapshots", async () => {
    const same = await diff(ids[0], ids[1]);
    expect(same.changes.filter((c) => c.change !== "U")).toEqual([]);

    put("docs/readme.md", "# readme, now longer\n");
    put("docs/new.md", "brand new\n");
    rmSync(path.join(src, "docs/old.md"));
    rmSync(path.join(src, "becomes-dir"));
    put("becomes-dir/inside.txt", "now a directory\n");
    await backup();

    const d = await diff(ids[1], ids[2]);
    const of = (kind: string) => d.changes.filter((c) => c.change === kind).map((c) => path.relative(src, c.path)).sort();
    expect(of("+")).toEqual(["becomes-dir/inside.txt", "docs/new.md"]);
    expect(of("-")).toEqual(["docs/old.md"]);
    expect(of("M")).toEqual(["becomes-dir", "docs/readme.md"]);
    // Only directories (whose mtime changed with their entries) may differ in metadata alone.
    expect(d.changes.filter((c) => c.change === "U").every((c) => c.type === "dir")).toBe(true);
    expect(d.totals).toEqual({ added: 2, removed: 1, modified: 2, metadata: of("U").length });

    const text = (await cairnOk(r("diff", ids[1], ids[2]))).stdout;
    expect(text).toContain(`+    ${path.join(src, "docs/new.md")}\n`);
    expect(text).toContain(`-    ${path.join(src, "docs/old.md")}\n`);
    expect(text).toMatch(/2 added, 1 removed, 2 modified/);
  });
});
